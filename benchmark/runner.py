"""Parallel generation: samples are independent tasks on dask.distributed.

``workers=0`` runs in this process (no dask; handy for debugging and ``verify --regenerate``);
``workers=K`` starts a LocalCluster of K single-threaded worker processes; ``scheduler=ADDR`` uses a
running cluster, whose workers must see ``out`` on a shared file system and have phantombench
installed. Every task generates sample i from (seed, i) alone and writes it into the store itself,
so results do not depend on worker count, order or retries.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from phantombench import store
from phantombench.generators.base import Generator, GeneratorConfig, sample_rng
from phantombench.provenance import provenance
from phantombench.registry import get_generator

_GEN_CACHE: dict[str, Generator] = {}

MAX_SEED = 2**63 - 1
MAX_N = 1_000_000              # samples per dataset; more is a typo, not a plan
SCHEDULER_TIMEOUT_S = 5.0      # how long to try reaching a --scheduler before giving up


class RunnerError(ValueError):
    """Bad input to ``generate`` (output path, scheduler address...): one line, nothing written."""


def _generator(name: str) -> Generator:
    if name not in _GEN_CACHE:
        _GEN_CACHE[name] = get_generator(name)
    return _GEN_CACHE[name]


def make_sample(gen_name: str, config: dict[str, Any], seed: int, index: int):
    """Generate (not write) sample ``index``; the same inputs give the same arrays."""
    from threadpoolctl import threadpool_limits

    gen = _generator(gen_name)
    cfg = gen.Config(**config)
    with threadpool_limits(1):
        return gen.sample(cfg, sample_rng(seed, index), index)


def _task(gen_name: str, config: dict[str, Any], seed: int, index: int, out: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    sample = make_sample(gen_name, config, seed, index)
    t1 = time.perf_counter()
    return store.write_sample(Path(out), index, sample,
                              {"seconds": {"generate": round(t1 - t0, 4),
                                           "write": round(time.perf_counter() - t1, 4)}})


def resolve(generator: str, preset: str, overrides: dict[str, Any] | None,
            n: int, seed: int, splits: dict[str, int] | None = None) -> tuple[Generator, GeneratorConfig, dict[str, Any]]:
    """Validate everything before touching the disk; ValueError with one clear line otherwise.

    ``splits`` (optional) gives the sample count of each split in order (e.g. train 16, val 2, test 50: the first
    16 indices are train, ...); they must add up to ``n``. Without it the generator's own rule splits the data.
    """
    gen = get_generator(generator)
    cfg = gen.config(preset, overrides)
    if not 1 <= n <= MAX_N:
        raise ValueError(f"--n must be an integer in [1, {MAX_N:,}] (got {n:,})")
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"--seed must be an integer in [0, 2**63 - 1] (got {seed})")
    plan = {"generator": gen.name, "generator_version": gen.version, "preset": preset,
            "config": cfg.model_dump(mode="json"), "seed": seed, "n": n}
    if splits is not None:
        plan["split_counts"] = check_split_counts(splits, n)
    return gen, cfg, plan


def check_split_counts(splits: dict[str, int], n: int) -> dict[str, int]:
    """``splits`` as a plain dict of non-negative counts that add up to ``n`` (ValueError otherwise)."""
    bad = [k for k, v in splits.items() if not isinstance(v, int) or isinstance(v, bool) or v < 0]
    if bad or not splits:
        raise ValueError(f"--split needs non-negative integer counts (got {splits})")
    if sum(splits.values()) != n:
        raise ValueError(f"--split counts add up to {sum(splits.values())}, not --n {n}")
    return {str(k): int(v) for k, v in splits.items()}


def parse_split_counts(text: str) -> dict[str, int]:
    """``"train=16,val=2,test=50"`` -> ``{"train": 16, "val": 2, "test": 50}`` (ValueError on bad text)."""
    out: dict[str, int] = {}
    for part in text.split(","):
        name, eq, count = part.strip().partition("=")
        if not eq or not name.strip() or not count.strip().isdigit() or name.strip() in out:
            raise ValueError(f"--split {text!r} is not like train=16,val=2,test=50")
        out[name.strip()] = int(count)
    return out


def check_out(out: str | os.PathLike) -> Path:
    """The output folder, resolved; RunnerError if it (or a parent) exists but is not a folder."""
    out = Path(out).resolve()
    if out.exists() and not out.is_dir():
        raise RunnerError(f"--out {out} exists and is a file, not a dataset folder")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise RunnerError(f"--out {out}: {parent} is a file, not a folder")
            break
    return out


def check_scheduler(address: str | None, timeout: float = SCHEDULER_TIMEOUT_S) -> None:
    """Fail fast, in one line, when a ``tcp://host:port`` scheduler address is malformed or unreachable."""
    if address is None:
        return
    scheme, sep, rest = address.partition("://")
    if not sep:
        scheme, rest = "tcp", address
    if scheme not in ("tcp", "tls"):
        return  # other transports (inproc, ucx): left to dask
    host, _, port = rest.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise RunnerError(f"--scheduler {address!r} is not an address like tcp://host:8786")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as e:
        reason = "timed out" if isinstance(e, TimeoutError) else (e.strerror or type(e).__name__)
        raise RunnerError(f"cannot reach the dask scheduler at {address} ({reason}, {timeout:g} s limit)") from None


def generate(generator: str, preset: str, n: int, out: str | os.PathLike, seed: int = 0,
             overrides: dict[str, Any] | None = None, workers: int | None = None,
             scheduler: str | None = None,
             progress: Callable[[int, int], None] | None = None,
             splits: dict[str, int] | None = None) -> dict[str, Any]:
    """Generate (or finish) a dataset; return its manifest. ``splits``: see :func:`resolve`."""
    gen, cfg, plan = resolve(generator, preset, overrides, n, seed, splits)
    out = check_out(out)
    check_scheduler(scheduler)
    created = not out.exists()
    try:
        with store.writer_lock(out):
            if store.prepare(out, plan):
                return store.open_dataset(out).manifest
            store.clean_partials(out)
            done = store.finished_ids(out)
            todo = [i for i in range(n) if store.sample_id(i) not in done]
            if progress:
                progress(n - len(todo), n)
            t0 = time.perf_counter()
            n_workers = _run(plan, todo, out, workers, scheduler, progress, n - len(todo), n)
            wall = time.perf_counter() - t0
            prov = provenance(workers=n_workers, scheduler=scheduler,
                              generation_wall_seconds=round(wall, 3), samples_this_run=len(todo))
            return store.finalise(out, gen, cfg, plan, prov)
    except BaseException:
        # Never leave a half-made folder behind: if this call created it and no sample finished,
        # remove it; otherwise finished samples stay and the same command resumes.
        if created and out.exists() and not store.finished_ids(out):
            shutil.rmtree(out, ignore_errors=True)
        raise


def _run(plan, todo, out, workers, scheduler, progress, done0, n) -> int:
    args = (plan["generator"], plan["config"], plan["seed"])
    if not todo:
        return 0
    if workers == 0 and scheduler is None:
        for k, i in enumerate(todo, 1):
            _task(*args, i, str(out))
            if progress:
                progress(done0 + k, n)
        return 0
    from dask.distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler is None:
        k = workers or min(os.cpu_count() or 1, len(todo))
        # ":0": a free port, so two generations side by side (make run's lanes) do not warn that 8787 is taken;
        # dashboard_address=None still binds 8787 in distributed (dask/distributed#8136)
        cluster = LocalCluster(n_workers=min(k, len(todo)), threads_per_worker=1, processes=True,
                               dashboard_address=":0", silence_logs=logging.ERROR)
        client = Client(cluster)
    else:
        client = _connect(scheduler)
    try:
        n_workers = len(client.scheduler_info()["workers"])
        futures = [client.submit(_task, *args, i, str(out), key=f"sample-{plan['seed']}-{i}", pure=False)
                   for i in todo]
        for k, fut in enumerate(as_completed(futures), 1):
            fut.result()  # re-raises the worker's exception here
            if progress:
                progress(done0 + k, n)
        return n_workers
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _connect(scheduler: str):
    """A client of a running scheduler with at least one worker; RunnerError in one line otherwise."""
    from dask.distributed import Client

    try:
        client = Client(scheduler, timeout="20s")
    except Exception as e:  # noqa: BLE001 - refused, timed out, or not a dask scheduler at all (garbage handshake)
        why = " ".join(str(e).split())[:200] or type(e).__name__
        raise RunnerError(f"cannot connect to the dask scheduler at {scheduler}: {why}") from None
    try:
        client.wait_for_workers(1, timeout=60)
    except (OSError, TimeoutError):
        client.close()
        raise RunnerError(f"no dask worker joined the scheduler at {scheduler} within 60 s") from None
    return client


def regenerate_and_compare(ds: store.Dataset, indices: list[int]) -> list[str]:
    """Regenerate samples in this process and compare with the stored arrays (manifest's regen_rtol)."""
    m = ds.manifest
    rtol = float(m["regen_rtol"])
    problems = []
    for i in indices:
        fresh = make_sample(m["generator"]["name"], m["config"], m["seed"], i).fields
        stored = ds[i]
        for name, a in stored.items():
            b = fresh.get(name)
            if b is None or b.shape != a.shape:
                problems.append(f"{store.sample_id(i)}/{name}: shape {None if b is None else b.shape} != {a.shape}")
                continue
            if a.dtype.kind in "iub":
                if not np.array_equal(a, b):
                    problems.append(f"{store.sample_id(i)}/{name}: {int((a != b).sum())} values differ")
                continue
            scale = np.nanmax(np.abs(a)) if np.isfinite(a).any() else 0.0
            err = np.nanmax(np.abs(a - b)) if a.size else 0.0
            same_nan = np.array_equal(np.isnan(a), np.isnan(b))
            if not same_nan or err > rtol * max(scale, 1e-300):
                problems.append(f"{store.sample_id(i)}/{name}: max |diff| {err:.3g} > {rtol:g} x {scale:.3g}")
    return problems
