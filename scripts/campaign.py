"""The fault campaign: attack the store, the harness and the board many times over and count what held.

Rows (each "tried" is one independent attempt; "held" means the defence behaved as specified):

* ``kill generate``        SIGKILL of ``phantombench generate`` at a random instant (a third of them inside the
                           first second), then the same command: it must finish, ``verify`` must pass and every
                           array must equal an uninterrupted run's.
* ``flip <file kind>``     one random bit flipped in a chunk, a zarr.json, manifest.json, plan.json or the README
                           card of a finished dataset: ``verify`` must exit 1 naming that file, with no traceback.
* ``hostile <solver>``     the solvers of tests/hostile_solvers.py through ``evaluate`` (and the two that must be
                           rejected through ``submit``): rejected or no better than the constant baseline's main
                           metric, with the board folder and the dataset byte-identical (unless a record was
                           legitimately added by an accepted submit).
* ``concurrent submit x4`` four submits at once into one board: all finish, none lost, ``leaderboard --check`` ok.
* ``corrupt record``       a record file replaced by ``[]`` or truncated: ``leaderboard`` must exit non-zero
                           naming the file, with no traceback.

Usage: ``python scripts/campaign.py --quick`` (a few minutes on two cores), ``--rounds N`` for more attempts per
row, ``--seed S`` for another random draw. Everything happens in a temporary folder.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests import hostile_solvers as H  # noqa: E402
from tests.bench_helpers import make_brain_dataset, tree_digest  # noqa: E402

BIN = Path(sys.executable).parent / "phantombench"
HOSTILE = Path(H.__file__).resolve()
TASK, MAIN = "brain-elasticity", "MARE_E"
QUICK = {"h_fine": 0.0025, "h_coarse": 0.006, "grid_h": 36, "grid_w": 26, "order": 1}
QUICK_SETS = [a for k, v in QUICK.items() for a in ("--set", f"{k}={json.dumps(v)}")]


def run(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, cwd=cwd, timeout=timeout)


def hashes(ds: Path) -> dict:
    m = json.loads((ds / "manifest.json").read_text())
    return {sid: r["sha256"] for sid, r in m["samples"].items()}


class Campaign:
    def __init__(self, work: Path, rounds: int, seed: int, quick: bool):
        self.work, self.rounds, self.quick = work, rounds, quick
        self.rng = random.Random(seed)
        self.rows: dict[str, list] = {}

    def tally(self, row: str, held: bool, note: str = "") -> None:
        r = self.rows.setdefault(row, [0, 0, ""])
        r[0] += 1
        r[1] += bool(held)
        if not held and not r[2]:
            r[2] = " ".join(note.split())[:160]

    # ------------------------------------------------------------------------------------ kills
    def gen_args(self, n: int, workers: int) -> list[str]:
        return ["generate", "brain-slice", "--preset", "random", "--n", str(n), "--seed", "11", "--workers",
                str(workers), "-q", *QUICK_SETS]

    def kills(self) -> Path:
        n = 2 if self.quick else 3
        ref = self.work / "ref"
        r = run(*self.gen_args(n, 0), "--out", str(ref))
        if r.returncode != 0:
            raise SystemExit(f"reference generation failed: {r.stderr[-500:]}")
        for k in range(max(3, self.rounds * 2)):
            workers = 0 if self.quick or k % 2 == 0 else 2
            delay = self.rng.uniform(0, 1) if k % 3 == 0 else self.rng.uniform(1, 8)
            out = self.work / f"kill{k}"
            proc = subprocess.Popen([str(BIN), *self.gen_args(n, workers), "--out", str(out)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            time.sleep(delay)
            os.killpg(proc.pid, signal.SIGKILL)   # the CLI and any dask workers it started
            proc.wait()
            r = run(*self.gen_args(n, 0), "--out", str(out))
            ok = r.returncode == 0 and run("verify", str(out)).returncode == 0 and hashes(out) == hashes(ref)
            self.tally("kill generate (then resume)", ok, f"killed at {delay:.2f} s: {r.stderr[-200:]}")
            shutil.rmtree(out, ignore_errors=True)
        return ref

    # ------------------------------------------------------------------------------------ byte flips
    def flips(self, ref: Path) -> None:
        files = [p for p in ref.rglob("*") if p.is_file() and not p.name.startswith(".")]
        kinds = {
            "flip chunk": [p for p in files if "/c/" in p.as_posix() or p.parent.name == "c"],
            "flip zarr.json": [p for p in files if p.name == "zarr.json"],
            "flip manifest.json": [ref / "manifest.json"],
            "flip plan.json": [ref / "plan.json"],
            "flip README.md card": [ref / "README.md"],
        }
        for kind, pool in kinds.items():
            for k in range(self.rounds * 2):
                if not pool:
                    self.tally(kind, False, "no such file in the dataset")
                    continue
                bad = self.work / f"flip{k}"
                shutil.copytree(ref, bad)
                target = bad / self.rng.choice(pool).relative_to(ref)
                raw = bytearray(target.read_bytes())
                at = self.rng.randrange(len(raw))
                raw[at] ^= 1 << self.rng.randrange(8)
                target.write_bytes(bytes(raw))
                r = run("verify", str(bad))
                rel = target.relative_to(bad).as_posix()
                named = rel in r.stderr or (kind == "flip chunk" and "/".join(rel.split("/")[1:3]) in r.stderr)
                ok = r.returncode == 1 and named and "Traceback" not in r.stderr
                self.tally(kind, ok, f"{rel} byte {at}: rc {r.returncode}: {r.stderr[-200:]}")
                shutil.rmtree(bad)

    # ------------------------------------------------------------------------------------ hostile solvers
    def arena(self, name: str) -> Path:
        """A working folder with a small dataset (data/ds) and a board holding the constant's record (a fresh
        copy of one template, so every attempt starts from the same bytes)."""
        from phantombench.evaluate import evaluate
        from phantombench.leaderboard import add_evaluations

        tpl = self.work / "arena-template"
        if not tpl.exists():
            make_brain_dataset(tpl / "data" / "ds", n=3)
            add_evaluations(tpl / "leaderboard", [evaluate("constant", TASK, tpl / "data" / "ds", out_dir=tpl / "c")])
        a = self.work / name
        shutil.copytree(tpl, a, symlinks=True)
        return a

    def evaluate_in(self, a: Path, spec: str, *extra: str, cli: bool = True) -> tuple[dict | None, str]:
        """Evaluate ``spec`` from the working folder ``a``: the record (None if refused) and the error text.
        ``cli``: through ``phantombench evaluate`` (its command line names the dataset), else in this process."""
        if not cli:
            from phantombench.cli_common import parse_sets
            from phantombench.evaluate import EvaluationError, evaluate

            old = Path.cwd()
            os.chdir(a)
            try:
                params = parse_sets(list(extra[1::2]))
                return evaluate(spec, TASK, a / "data" / "ds", params=params).record, ""
            except EvaluationError as e:
                return None, str(e)
            except Exception as e:  # noqa: BLE001 - anything else is a harness crash: a finding
                return None, f"Traceback: {type(e).__name__}: {e}"
            finally:
                os.chdir(old)
        out = a / "out" / str(self.rng.random())
        r = run("evaluate", spec, "-t", TASK, "-d", "data/ds", "-q", "--out", str(out), *extra, cwd=a)
        if r.returncode == 0:
            return json.loads((out / "record.json").read_text()), r.stderr
        return None, r.stderr

    def hostile(self) -> None:
        a0 = self.arena("blind")
        blind = self.evaluate_in(a0, "constant")[0]["metrics"][MAIN]["mean"]
        cases = [("TruthFromDisk", ()), ("TruthRewriter", ()), ("FitPeeker", ()), ("BoardForger", ()),
                 ("NetworkCheat", None), ("HugeOutput", ())]
        for k in range(self.rounds):
            for cls, extra in cases:
                a = self.arena(f"h{k}-{cls}")
                stop = None
                if extra is None:
                    from phantombench import open_dataset

                    ds = open_dataset(a / "data" / "ds")
                    table = {H.obs_key(ds[i]): {"E": ds[i]["E"], "nu": ds[i]["nu"]} for i in range(len(ds))}
                    port, hits, stop = H.serve_table(table)
                    extra = ("--param", f"port={port}")
                before = tree_digest(a / "leaderboard"), tree_digest(a / "data")
                rec, err = self.evaluate_in(a, f"{HOSTILE}:{cls}", *extra, cli=cls == "TruthFromDisk")
                if stop is not None:
                    stop()
                got = None if rec is None or rec["cases"]["ok"] == 0 else rec["metrics"][MAIN]["mean"]
                ok = (got is None or got >= 0.99 * blind) and "Traceback" not in err
                ok = ok and (tree_digest(a / "leaderboard"), tree_digest(a / "data")) == before
                if stop is not None:
                    ok = ok and hits[0] == 0
                self.tally(f"hostile {cls} (evaluate)", ok, f"{MAIN} {got} vs blind {blind:.4g}; {err[-150:]}")
                shutil.rmtree(a, ignore_errors=True)
        self.regenerator()

    def regenerator(self) -> None:
        """(g) on a verified-tier dataset (secret seed): only that tier can beat it."""
        from phantombench import official

        od = official.OfficialDataset(TASK, "brain-slice", "random", n=1, overrides=QUICK, tier="verified")
        params = ["--param", "generator=brain-slice", "--param", "preset=random", "--param", "seed=0",
                  "--param", "n=1", "--param", f"overrides={json.dumps(QUICK)}"]
        for k in range(self.rounds):
            os.environ[official.SECRET_ENV] = f"campaign-{self.rng.random()}"
            a = self.work / f"regen{k}"
            seed = str(official.seed_for(od))
            try:   # a subprocess with a time limit: some seeds make the generator fail or hang (a finding)
                r = run(*self.gen_args(1, 0)[:7], seed, "--workers", "0", "-q", *QUICK_SETS,
                        "--out", str(a / "data" / "ds"), timeout=180)
                why = r.stderr.strip().splitlines()[-1:] if r.returncode else None
            except subprocess.TimeoutExpired:
                why = ["timed out after 180 s"]
            self.tally("generate brain-slice/random at a secret seed", not why, f"seed {seed}: {why}")
            if why:
                continue
            blind = self.evaluate_in(a, "constant")[0]["metrics"][MAIN]["mean"]
            rec, err = self.evaluate_in(a, f"{HOSTILE}:Regenerator", *params)
            got = None if rec is None or rec["cases"]["ok"] == 0 else rec["metrics"][MAIN]["mean"]
            self.tally("hostile Regenerator (verified tier)", got is None or got >= 0.99 * blind,
                       f"{MAIN} {got} vs blind {blind:.4g}; {err[-150:]}")
        os.environ.pop(official.SECRET_ENV, None)

    # ------------------------------------------------------------------------------------ submit
    def official_arena(self) -> Path | None:
        a = self.work / "official"
        r = run("submit", "constant", "-t", TASK, "--preset", "elunet-soft", "--board", str(a / "leaderboard"),
                "--data", str(a / "data"), "--workers", "0", cwd=self.work)
        if r.returncode != 0:
            self.tally("submit baseline (constant)", False, r.stderr[-200:])
            return None
        return a

    def submits(self) -> None:
        a = self.official_arena()
        if a is None:
            return
        for k in range(self.rounds):
            for cls in ("BoardForger", "HugeOutput"):
                w = self.work / f"s{k}{cls}"
                shutil.copytree(a / "leaderboard", w / "leaderboard")
                (w / "data").symlink_to(a / "data")
                before = tree_digest(w / "leaderboard")
                r = run("submit", f"{HOSTILE}:{cls}", "-t", TASK, "--preset", "elunet-soft", cwd=w)
                why = {"BoardForger": "board forger", "HugeOutput": "refused unread"}[cls]
                ok = r.returncode == 1 and why in r.stderr and tree_digest(w / "leaderboard") == before
                self.tally(f"hostile {cls} (submit, board hashed)", ok, r.stderr[-200:])
        self.concurrent(a)

    def concurrent(self, a: Path) -> None:
        from phantombench.leaderboard import load_records

        for k in range(self.rounds):
            w = self.work / f"conc{k}"
            shutil.copytree(a / "leaderboard", w / "leaderboard")
            (w / "data").symlink_to(a / "data")
            n0 = len(load_records(w / "leaderboard"))
            procs = [subprocess.Popen([str(BIN), "submit", "constant", "-t", TASK, "--preset", "elunet-soft",
                                       "--param", f"value_nu={0.30 + 0.01 * j + 0.001 * k}"], cwd=w,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for j in range(4)]
            errs = [p.communicate(timeout=900)[1] for p in procs]
            codes = [p.returncode for p in procs]
            n1 = len(load_records(w / "leaderboard"))
            check = run("leaderboard", "--check", "--board", str(w / "leaderboard"))
            ok = codes == [0] * 4 and n1 == n0 + 4 and check.returncode == 0
            self.tally("concurrent submit x4", ok, f"codes {codes}, records {n0} -> {n1}; {' | '.join(errs)[-200:]}")

    # ------------------------------------------------------------------------------------ records
    def corrupt_records(self) -> None:
        src = self.arena("records")
        for k in range(self.rounds):
            for how in ("[]", "truncated"):
                b = self.work / f"rec{k}{how[:2]}"
                shutil.copytree(src / "leaderboard", b)
                rec = sorted((b / "records").rglob("*.json"))[0]
                text = rec.read_text()
                rec.write_text("[]" if how == "[]" else text[: self.rng.randrange(1, len(text) - 1)])
                r = run("leaderboard", "--board", str(b))
                ok = r.returncode != 0 and rec.name in r.stderr and "Traceback" not in r.stderr
                self.tally(f"corrupt record ({how})", ok, f"rc {r.returncode}: {r.stderr[-200:]}")

    def table(self) -> str:
        w = max(len(k) for k in self.rows) if self.rows else 10
        lines = [f"{'row':{w}s} | tried | held", f"{'-' * w}-|-------|-----"]
        for row, (tried, held, note) in self.rows.items():
            lines.append(f"{row:{w}s} | {tried:5d} | {held:4d}" + (f"   first miss: {note}" if held < tried else ""))
        return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=None, help="attempts per row (default 1 with --quick, else 4); "
                    "kills: 2 per round (at least 3), byte flips: 2 per round and file kind")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random instants, offsets and choices")
    ap.add_argument("--quick", action="store_true", help="tiny datasets and few rounds (a few minutes)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    a = ap.parse_args()
    rounds = a.rounds or (1 if a.quick else 4)
    if rounds < 1:
        ap.error("--rounds must be at least 1")
    work = Path(tempfile.mkdtemp(prefix="phantombench-campaign-"))
    c = Campaign(work, rounds, a.seed, a.quick)
    t0 = time.perf_counter()
    try:
        for step in (c.kills, c.hostile, c.submits, c.corrupt_records):
            t = time.perf_counter()
            res = step()
            if step == c.kills:
                c.flips(res)
            print(f"[{step.__name__}: {time.perf_counter() - t:.0f} s]", file=sys.stderr, flush=True)
    finally:
        print(c.table())
        print(f"\n{sum(r[0] for r in c.rows.values())} attempts, {time.perf_counter() - t0:.0f} s, seed {a.seed}, "
              f"rounds {rounds}{' (quick)' if a.quick else ''}; work folder {work}")
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
