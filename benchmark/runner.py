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
            n: int, seed: int) -> tuple[Generator, GeneratorConfig, dict[str, Any]]:
    """Validate everything before touching the disk; ValueError with one clear line otherwise."""
    gen = get_generator(generator)
    cfg = gen.config(preset, overrides)
    if n < 1:
        raise ValueError(f"--n must be at least 1 (got {n})")
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"--seed must be an integer in [0, 2**63 - 1] (got {seed})")
    plan = {"generator": gen.name, "generator_version": gen.version, "preset": preset,
            "config": cfg.model_dump(mode="json"), "seed": seed, "n": n}
    return gen, cfg, plan


def generate(generator: str, preset: str, n: int, out: str | os.PathLike, seed: int = 0,
             overrides: dict[str, Any] | None = None, workers: int | None = None,
             scheduler: str | None = None,
             progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Generate (or finish) a dataset; return its manifest."""
    gen, cfg, plan = resolve(generator, preset, overrides, n, seed)
    out = Path(out).resolve()
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
        cluster = LocalCluster(n_workers=min(k, len(todo)), threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR)
        client = Client(cluster)
    else:
        client = Client(scheduler, timeout="20s")
        client.wait_for_workers(1, timeout=60)
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
