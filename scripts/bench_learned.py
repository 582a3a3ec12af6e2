"""Benchmark: training throughput and inference latency of the El-UNet family and the dense PINN (P1).

    .venv/bin/python scripts/bench_learned.py [--widths 8 64] [--threads 1] [--repeats 3] [--device auto]

On the 142 x 100 grid of the El-UNet phantoms (a generated elunet-soft sample when ``--data`` points to one,
otherwise a synthetic strain field of that size: speed does not depend on the values). Per model and width:

* training throughput: optimisation steps (epochs) per second of the real training loop inside ``solve``
  (forward, all loss terms, backward, Adam, and for W1/W2 the ascent step on the weights), after one warm-up step;
* inference latency: one forward pass of the trained network (``net``) and the full prediction (forward +
  conversion of the Lame maps to E and nu on the host, ``E, nu``).

Best of ``--repeats`` runs (the machine is shared). The classical direct inversion (scipy sparse solve) is
timed on the same input as the reference. Goal (issue 6): El-UNet inference on 142 x 100 <= 20 ms on a GPU;
this script reports the device it ran on.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from phantombench.solvers.direct_elasticity import DirectElasticity
from phantombench.solvers.elunet import (
    MODELS,
    ElUNet,
    count_parameters,
    prepare_case,
)
from phantombench.tasks import get_task


def observation(data: str | None) -> dict:
    task = get_task("brain-elasticity")
    if data:
        from phantombench.store import open_dataset

        return task.observation(open_dataset(data), 0)
    H, W = 142, 100
    y, x = np.mgrid[0:H, 0:W] / 100.0
    E = 1000.0 + 500.0 * ((x - 0.5) ** 2 + (y - 0.7) ** 2 < 0.1)
    t, nu = 33.0, 0.4
    return {"exx": nu * t / E * (1 + 0.1 * np.sin(7 * x)), "eyy": -t / E, "exy": 1e-3 * np.sin(5 * x * y),
            "mask": np.ones((H, W), bool), "traction": t, "spacing": np.array([0.77e-3, 0.77e-3])}


def bench_model(name: str, width: int | None, obs: dict, iters: int, repeats: int, device: str) -> dict:
    task = get_task("brain-elasticity")
    cls = MODELS[name]
    best_rate, best_fwd, best_pred = 0.0, float("inf"), float("inf")
    n_params = None
    for r in range(repeats):
        params = {"max_epochs": iters + 1, "n_snapshots": 0, "train_time_s": 1e6}
        if width is not None:
            params["width"] = width
        s = cls(task, params=params, device=device, seed=r)
        s.time_budget_s = 1e7
        s.solve(obs)
        h = s.last_history
        rate = iters / (h["time_s"][-1] - h["time_s"][0])
        best_rate = max(best_rate, rate)
        case = prepare_case(obs, s.device, torch.float32, s.params["lame_scale"])
        for _ in range(2):
            s.predict(case)
        for _ in range(3):
            t0 = time.perf_counter()
            with torch.no_grad():
                if isinstance(s, ElUNet):
                    s.net(case.inp)
                else:
                    s.param_net(s.xy)
            if s.device.startswith("cuda"):
                torch.cuda.synchronize()
            best_fwd = min(best_fwd, time.perf_counter() - t0)
            t0 = time.perf_counter()
            s.predict(case)
            best_pred = min(best_pred, time.perf_counter() - t0)
        if isinstance(s, ElUNet):
            n_params = count_parameters(s.net)
        else:
            n_params = count_parameters(s.param_net) + count_parameters(s.stress_net)
    return {"rate": best_rate, "fwd_ms": 1e3 * best_fwd, "pred_ms": 1e3 * best_pred, "params": n_params}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--widths", type=int, nargs="+", default=[8, 64])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--iters", type=int, default=0, help="timed steps per run (default: 20 small, 3 at width >= 32)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--data", default=None, help="an elunet-* dataset folder (default: synthetic 142 x 100)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from phantombench.solvers.base import resolve_device

    device = resolve_device(a.device)
    obs = observation(a.data)
    H, W = np.shape(obs["exx"])
    cpu = platform.processor() or platform.machine()
    try:
        from phantombench.provenance import cpu_model

        cpu = cpu_model()
    except Exception:  # noqa: BLE001
        pass
    dev_name = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else cpu
    print(f"device {device} ({dev_name}), {torch.get_num_threads()} torch threads, torch {torch.__version__}, "
          f"grid {H} x {W}, best of {a.repeats}")
    print(f"{'model':16s} {'width':>5s} {'params':>10s} {'train it/s':>11s} {'net fwd ms':>11s} {'E,nu ms':>9s}")
    rows = []
    for width in a.widths:
        for name in ("elunet-p", "elunet-ps", "elunet-ps-w1", "elunet-ps-w2"):
            iters = a.iters or (3 if width >= 32 else 20)
            r = bench_model(name, width, obs, iters, a.repeats, device)
            rows.append((name, width, r))
            print(f"{name:16s} {width:5d} {r['params']:10,d} {r['rate']:11.2f} {r['fwd_ms']:11.1f} "
                  f"{r['pred_ms']:9.1f}", flush=True)
    r = bench_model("pinn-elasticity", None, obs, a.iters or 10, a.repeats, device)
    print(f"{'pinn-elasticity':16s} {'4x64':>5s} {r['params']:10,d} {r['rate']:11.2f} {r['fwd_ms']:11.1f} "
          f"{r['pred_ms']:9.1f}   (MLP on {H * W} points; fwd = parameter net)")
    task = get_task("brain-elasticity")
    best = float("inf")
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        DirectElasticity(task).solve(obs)
        best = min(best, time.perf_counter() - t0)
    print(f"{'direct-elasticity':16s} {'-':>5s} {'-':>10s} {'-':>11s} {'-':>11s} {1e3 * best:9.1f}   "
          "(reference: classical direct inversion, whole solve)")


if __name__ == "__main__":
    main()
