"""Benchmark: training throughput and inference latency of the learned solvers (P1, P2, P3).

    .venv/bin/python scripts/bench_learned.py [--widths 8 64] [--threads 1] [--repeats 3] [--device auto]
                                              [--suites elunet dime cnn-pinn]

On the 142 x 100 grid of the El-UNet phantoms (a generated elunet-soft sample when ``--data`` points to one,
otherwise a synthetic strain field of that size: speed does not depend on the values). Per model and width:

* training throughput: optimisation steps (epochs) per second of the real training loop inside ``solve``
  (forward, all loss terms, backward, Adam, and for W1/W2 the ascent step on the weights), after one warm-up step;
* inference latency: one forward pass of the trained network (``net``) and the full prediction (forward +
  conversion of the Lame maps to E and nu on the host, ``E, nu``).

``dime``: the DIME-style UNet (P2) on its training batches (8 x 96 x 96 patches, L1 loss, AdamW) and full-image
inference on 256 x 256, in float32 and, on CUDA, with bf16 autocast (``amp``). ``cnn-pinn``: P3's stage-1 UNet
(16 measurements -> 64 x 64 potential image, batch 32) and one stage-2 PINN epoch (all loss terms of P3's
equation (2), forward-mode sigma gradient) on the 64 x 64 collocation grid. Neither needs generated data (inputs are
random arrays of the real shapes; speed does not depend on the values) nor DOLFINx.

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


def _timeit(fn, n: int, repeats: int, cuda: bool) -> float:
    """Best over ``repeats`` of the mean seconds per call of ``fn`` over ``n`` calls (after 2 warm-up calls)."""
    for _ in range(2):
        fn()
    if cuda:
        torch.cuda.synchronize()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        if cuda:
            torch.cuda.synchronize()
        best = min(best, (time.perf_counter() - t0) / n)
    return best


def bench_dime(device: str, repeats: int) -> None:
    from phantombench.solvers.dime import DIME, build_unet, n_parameters

    p = DIME.defaults
    cuda = device.startswith("cuda")
    in_ch = 2 + 1 + (3 if p["features"] == "raw+wave" else 0)
    net = build_unet(in_ch, 2, p["width"], p["depth"]).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=p["lr"], weight_decay=p["weight_decay"])
    xb = torch.randn(p["batch"], in_ch, p["crop"], p["crop"], device=device)
    yb = torch.randn(p["batch"], 2, p["crop"], p["crop"], device=device)
    full = torch.randn(1, in_ch, 256, 256, device=device)
    modes = [("fp32", None)] + ([("bf16 amp", torch.bfloat16)] if cuda else [])
    n = 20 if cuda else 3
    for label, dt in modes:
        def step():
            opt.zero_grad(set_to_none=True)
            with torch.autocast("cuda", dtype=dt, enabled=dt is not None):
                loss = (net(xb) - yb).abs().mean()
            loss.backward()
            opt.step()

        net.train()
        t_step = _timeit(step, n, repeats, cuda)
        net.eval()

        def infer():
            with torch.no_grad(), torch.autocast("cuda", dtype=dt, enabled=dt is not None):
                net(full)

        t_inf = _timeit(infer, n, repeats, cuda)
        print(f"{'dime-cnn':16s} {p['width']:5d} {n_parameters(net):10,d} {1 / t_step:11.2f} {1e3 * t_inf:11.1f} "
              f"{'-':>9s}   ({label}; train step = batch {p['batch']} x {p['crop']}^2; fwd = 256 x 256)", flush=True)


def bench_cnn_pinn(device: str, repeats: int) -> None:
    from phantombench.solvers.cnn_pinn import CNNPINN, P3_WEIGHTS, SigmaMLP, Stage1, _masked_mse, p3_loss_terms, \
        pde_residual

    p = CNNPINN.defaults
    cuda = device.startswith("cuda")
    n, M, P, bs = int(p["image_size"]), 16, 1, int(p["batch_size"])  # P3's trig pattern: 1 pattern, 16 readings
    c = (np.arange(n) + 0.5) / n * 2 - 1
    X, Y = np.meshgrid(c, c)
    coords = np.stack([X, Y, (X ** 2 + Y ** 2 < 1).astype(float)]).astype(np.float32)
    s1 = Stage1(M, P, n, coords, int(p["width"]), int(p["depth"])).to(device)
    opt = torch.optim.Adam(s1.parameters(), lr=float(p["stage1_lr"]))
    dv = torch.randn(bs, M, device=device)
    U = torch.randn(bs, P, n, n, device=device)
    m = torch.ones_like(U)

    def step1():
        opt.zero_grad(set_to_none=True)
        _masked_mse(s1(dv), U, m).backward()
        opt.step()

    s1.train()
    n_it = 20 if cuda else 5
    t1 = _timeit(step1, n_it, repeats, cuda)
    s1.eval()

    def infer1():
        with torch.no_grad():
            s1(dv[:1])

    ti = _timeit(infer1, n_it, repeats, cuda)
    n1 = sum(q.numel() for q in s1.parameters())
    print(f"{'cnn-pinn stage 1':16s} {int(p['width']):5d} {n1:10,d} {1 / t1:11.2f} {1e3 * ti:11.1f} {'-':>9s}   "
          f"(train step = batch {bs}; fwd = one dV -> {n} x {n} potential)", flush=True)
    # stage 2: one PINN epoch on the disk's collocation points (the loop body of fit_sigma)
    inside = X ** 2 + Y ** 2 < (1 - 1 / n) ** 2
    nb = np.pad(inside, 1)
    interior = inside & nb[:-2, 1:-1] & nb[2:, 1:-1] & nb[1:-1, :-2] & nb[1:-1, 2:]
    bnd = inside & ~interior
    T = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32, device=device)  # noqa: E731
    xy_all = T(np.column_stack([X[inside], Y[inside]]))
    idx_int = torch.as_tensor(np.flatnonzero(interior[inside]), device=device)
    idx_b = torch.as_tensor(np.flatnonzero(bnd[inside]), device=device)
    Ni, Nb = int(interior.sum()), int(bnd.sum())
    Ux, Uy, lap = (torch.randn(P, Ni, device=device) for _ in range(3))
    dUdn, jb = torch.randn(P, Nb, device=device), torch.randn(P, Nb, device=device)
    net = SigmaMLP(int(p["pinn_width"]), int(p["pinn_hidden"]), 1.0).to(device)
    opt2 = torch.optim.Adam(net.parameters(), lr=float(p["lr"]))
    w = dict(P3_WEIGHTS)

    def epoch():
        opt2.zero_grad(set_to_none=True)
        s, gs = net.value_and_grad(xy_all)
        si = s[idx_int]
        r = pde_residual(torch.ones_like(si), gs[idx_int, 0] / si, gs[idx_int, 1] / si, Ux, Uy, lap)
        terms = p3_loss_terms(r, s[idx_b], dUdn, jb, 1.0, gs, s, net.weight_norm2(), w, 1.0, p["tv_form"])
        terms["total"].backward()
        opt2.step()

    t2 = _timeit(epoch, 50 if cuda else 20, repeats, cuda)
    n2 = sum(q.numel() for q in net.parameters())
    print(f"{'cnn-pinn stage 2':16s} {int(p['pinn_width']):5d} {n2:10,d} {1 / t2:11.2f} {'-':>11s} {'-':>9s}   "
          f"(epochs/s on {int(inside.sum())} collocation points; {int(p['epochs'])} epochs = "
          f"{int(p['epochs']) * t2:.1f} s per case)", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--widths", type=int, nargs="+", default=[8, 64])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--iters", type=int, default=0, help="timed steps per run (default: 20 small, 3 at width >= 32)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--data", default=None, help="an elunet-* dataset folder (default: synthetic 142 x 100)")
    ap.add_argument("--suites", nargs="+", default=["elunet", "dime", "cnn-pinn"],
                    choices=["elunet", "dime", "cnn-pinn"])
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
    if "dime" in a.suites:
        bench_dime(device, a.repeats)
    if "cnn-pinn" in a.suites:
        bench_cnn_pinn(device, a.repeats)
    if "elunet" not in a.suites:
        return
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
