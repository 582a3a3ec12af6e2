"""Speed of the learned registration models: training steps per second (one Adam step on a batch of pairs, the
solver's own loss) and inference milliseconds per pair (one forward pass, the displacement out), per model at the
smoke size and at the paper size, on 2-D 64 x 64 pairs (``--ndim 3``: 64^3 volumes, fewer repeats).

    .venv/bin/python scripts/bench_learned_registration.py [--ndim 2] [--threads 1] [--device cpu] [--json out]

The target: inference of a 2-D pair at the smoke size in at most 50 ms on one CPU core.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import types

import numpy as np

SIZES = {
    "smoke": {"enc": [8, 16, 16, 16], "dec": [16, 16, 16, 16, 16, 8, 8], "channels": [8, 16, 32, 64]},
    "paper": {"enc": [16, 32, 32, 32], "dec": [32, 32, 32, 32, 32, 16, 16], "channels": [16, 32, 64, 128, 256, 512]},
}
MODELS = ("voxelmorph-diffusion", "kheil-rigidity", "kheil-sliding", "hypermorph-elastic")


def fake_batch(ndim: int, n: int, batch: int, rng):
    """Random smooth-ish images, a rigid mask, interface normals and two tissue classes."""
    shape = (batch,) + (n,) * ndim
    fixed = rng.random(shape).astype(np.float32)
    labels = (rng.random(shape) > 0.5).astype(np.int64)
    normals = np.zeros((batch, ndim) + (n,) * ndim, np.float32)
    normals[:, 0] = 1.0
    return {"fixed": fixed, "moving": np.roll(fixed, 2, axis=1), "mask": labels.astype(np.uint8), "normals": normals,
            "labels": labels, "disp": np.zeros((batch, ndim) + (n,) * ndim, np.float32)}


def make_solver(name: str, size: str, ndim: int, device: str):
    from phantombench.solvers.base import load_solver_class

    s = load_solver_class(name)(types.SimpleNamespace(name="registration"), {**SIZES[size], "progress": False},
                                device=device)
    s.meta = {"ndim": ndim, "scale": 1.0, "n_classes": 2}
    s.model = s.build(ndim).to(device)
    return s


def bench(name: str, size: str, ndim: int, device: str, steps: int, reps: int) -> dict:
    import torch

    from phantombench.solvers.registration.networks import n_parameters
    from phantombench.solvers.registration.voxelmorph import to_tensors

    rng = np.random.default_rng(0)
    n = 64
    s = make_solver(name, size, ndim, device)
    opt = torch.optim.Adam(s.model.parameters(), lr=1e-4)
    arrays = fake_batch(ndim, n, int(s.params["batch"]), rng)
    b = to_tensors(arrays, list(range(len(arrays["fixed"]))), device, 1.0)
    times = []
    for k in range(steps + 1):
        t0 = time.perf_counter()
        loss = s.loss(b, rng)[0]
        opt.zero_grad()
        loss.backward()
        opt.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if k:
            times.append(time.perf_counter() - t0)
    s.model.eval()
    s.meta["cond"] = [0.5] * 4
    obs = {"fixed": arrays["fixed"][0], "moving": arrays["moving"][0], "fixed_labels": arrays["labels"][0],
           "mask": arrays["mask"][0], "normals": arrays["normals"][0]}
    s.predict(obs)
    inf = []
    for _ in range(reps):
        t0 = time.perf_counter()
        s.predict(obs)
        inf.append(time.perf_counter() - t0)
    return {"model": name, "size": size, "ndim": ndim, "batch": int(s.params["batch"]),
            "n_parameters": n_parameters(s.model), "train_steps_per_s": 1.0 / statistics.median(times),
            "inference_ms": 1e3 * statistics.median(inf)}


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ndim", type=int, default=2, choices=(2, 3))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    rows = []
    print(f"{'model':22s} {'size':6s} {'params':>9s} {'train steps/s':>14s} {'inference ms':>13s}")
    for size in ("smoke", "paper"):
        for name in MODELS:
            r = bench(name, size, a.ndim, a.device, a.steps if a.ndim == 2 else 2, a.reps if a.ndim == 2 else 3)
            rows.append(r)
            print(f"{name:22s} {size:6s} {r['n_parameters']:9d} {r['train_steps_per_s']:14.2f} "
                  f"{r['inference_ms']:13.1f}", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"device": a.device, "threads": a.threads, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
