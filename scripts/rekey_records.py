"""Maintainers: give records the official identity of the data they were scored on, after a (re-)pin.

A record whose dataset has no ``fingerprint``, or one that is not the pinned fingerprint any more (the pin was
renewed, e.g. when the fingerprint's definition changed), is re-keyed when its content sha256 equals the content
hash of the pinned reference of that official dataset (``benchmark/references.json``): the data it was scored on
are then exactly the pinned data, so the pinned fingerprint names them. The record gains ``dataset.fingerprint``,
``dataset.tier`` and ``solver.sandbox`` ("none": those runs predate the sandbox), its files are renamed to the
new id, and the board is re-rendered. Records that do not match are listed and left alone.

    python scripts/rekey_records.py [--board leaderboard]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from phantombench import leaderboard as L
from phantombench.evaluate import record_id, record_json
from phantombench.official import all_official, references


def rekey(board: Path) -> tuple[int, list[str]]:
    refs = references()
    by_name = {f"{od.generator}/{od.preset}": od for od in all_official()}
    done, left = 0, []
    for p in sorted((board / L.RECORDS).glob("*/*.json")):
        r = json.loads(p.read_text())
        d = r["dataset"]
        od = by_name.get(d["name"])
        ref = refs.get(od.key) if od else None
        if ref is not None and d.get("fingerprint") == ref["fingerprint"]:
            continue
        if ref is None or ref.get("content_hash") != d["content_hash"]:
            left.append(p.name)
            continue
        d["fingerprint"], d["tier"] = ref["fingerprint"], od.tier
        r["solver"].setdefault("sandbox", "none")
        s = r["solver"]
        r["id"] = record_id(r["task"]["name"], s["name"], s["version"], {"name": d["name"], "version": d["version"]},
                            s["params"], s["seed"], d["split"], ref["fingerprint"])
        old = L.record_files(board, r["task"]["name"], p.name[: -len(".json")])
        new = L.record_files(board, r["task"]["name"], r["id"])
        new["record"].write_text(record_json(r))
        for kind in ("thumb", "cases"):
            if old[kind].exists() and old[kind] != new[kind]:
                old[kind].rename(new[kind])
        if p != new["record"]:
            p.unlink()
        done += 1
    L.render(board)
    return done, left


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--board", type=Path, default=Path("leaderboard"))
    a = ap.parse_args()
    done, left = rekey(a.board)
    print(f"re-keyed {done} record(s); left alone {len(left)}" + (f": {', '.join(left)}" if left else ""))


if __name__ == "__main__":
    main()
