"""Benchmark the ``mre`` solvers: AHI and MDEV time per case; the DIME-style CNN's training throughput and
inference latency (CPU, and CUDA when present).

    .venv/bin/python scripts/bench_mre_solvers.py [--data /tmp/pb-bench-mre] [--repeats 5] [--threads 1,2]

Datasets (made once under ``--data``, then reused): 2 ``dime-liver`` phantoms (256 x 256, 60 Hz) and 1
``mdev-liver`` phantom (7 frequencies). Every timing is the minimum over ``--repeats`` runs (the machine is
shared; the minimum is the least disturbed run). Training throughput is measured on random tissue-centred
patches exactly as ``DIME.fit`` draws them (forward, backward, AdamW step), after two warm-up steps.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def best_of(fn, repeats: int) -> float:
    fn()
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="/tmp/pb-bench-mre")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--train-steps", type=int, default=5)
    args = ap.parse_args()

    import torch

    from phantombench import runner
    from phantombench.solvers import dime as Dm
    from phantombench.solvers.mre_direct import AHI, MDEV
    from phantombench.store import open_dataset
    from phantombench.tasks import get_task

    task = get_task("mre")
    root = Path(args.data)
    sets = {}
    for preset, n in (("dime-liver", 2), ("mdev-liver", 1)):
        folder = root / preset
        if not (folder / "manifest.json").exists():
            runner.generate("liver-mre", preset, n, folder, seed=7, workers=0)
        sets[preset] = open_dataset(folder)
    obs_d = task.observation(sets["dime-liver"], 0)
    obs_m = task.observation(sets["mdev-liver"], 0)
    H, W = obs_d["mask"].shape

    print(f"mre solvers on {H} x {W} grids ({int(obs_d['mask'].sum())} tissue pixels); min of {args.repeats}")
    print()
    print("classical inversions (numpy/scipy, one process)")
    print(f"  {'solver':28s} {'data':22s} {'time/case':>10s}")
    for name, s, obs, data in (("AHI", AHI(task), obs_d, "dime-liver, 1 freq"),
                               ("AHI", AHI(task), obs_m, "mdev-liver (60 Hz)"),
                               ("MDEV", MDEV(task), obs_m, "mdev-liver, 7 freqs")):
        t = best_of(lambda s=s, obs=obs: s.solve(obs), args.repeats)
        print(f"  {name:28s} {data:22s} {t * 1e3:8.1f} ms")

    # ---- CNN
    configs = [("smoke", dict(width=8, depth=4, crop=64, batch=4)),
               ("paper", dict(width=16, depth=4, crop=96, batch=8))]
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    threads = [int(t) for t in args.threads.split(",") if t]
    print()
    feats = Dm.DIME.defaults["features"]
    x_full = torch.from_numpy(Dm.make_input(np.asarray(obs_d["u"])[0], np.asarray(obs_d["mask"], bool),
                                            features=feats))[None]
    in_ch = x_full.shape[1]
    print(f"DIME-style CNN (input 256 x 256, {in_ch} channels, features={feats!r})")
    print(f"  {'config':8s} {'params':>8s} {'device':8s} {'threads':>7s} {'train step':>11s} {'patch px/s':>11s} "
          f"{'infer 256^2':>12s} {'solve()':>9s}")
    for cname, c in configs:
        for dev in devices:
            for th in (threads if dev == "cpu" else [threads[-1]]):
                torch.set_num_threads(th)
                torch.manual_seed(0)
                net = Dm.build_unet(in_ch, 2, c["width"], c["depth"]).to(dev)
                opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
                xb = torch.randn(c["batch"], in_ch, c["crop"], c["crop"], device=dev)
                yb = torch.randn(c["batch"], 2, c["crop"], c["crop"], device=dev)

                def step(net=net, opt=opt, xb=xb, yb=yb, dev=dev):
                    net.train()
                    loss = (net(xb) - yb).abs().mean()
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    if dev == "cuda":
                        torch.cuda.synchronize()

                t_step = best_of(step, args.train_steps)
                net.eval()
                xf = x_full.to(dev)

                def infer(net=net, xf=xf, dev=dev):
                    with torch.no_grad():
                        net(xf)
                    if dev == "cuda":
                        torch.cuda.synchronize()

                t_inf = best_of(infer, args.repeats)
                s = Dm.DIME(task, params={"threads": th, "progress": False}, device=dev)
                s.model, s.meta = net, {"frequency": 60.0}
                t_solve = best_of(lambda s=s: s.solve(obs_d), args.repeats)
                px = c["batch"] * c["crop"] ** 2 / t_step
                print(f"  {cname:8s} {Dm.n_parameters(net) / 1e6:7.2f}M {dev:8s} {th:7d} {t_step * 1e3:9.0f} ms "
                      f"{px / 1e3:9.0f} k {t_inf * 1e3:10.0f} ms {t_solve * 1e3:7.0f} ms")
    print()
    print("solve() = input scaling and wave features + network + decoding; train step = forward + backward + AdamW "
          "on one batch.")
    print("threads > 1 on a shared 2-core machine can be much slower (OpenMP threads wait on busy cores): the "
          "solver's default is threads=1.")


if __name__ == "__main__":
    main()
