"""Benchmark: the EIT solvers -- classical baselines per case, their setup (mesh, Jacobian), and the CNN-PINN's
training throughput and inference latency, in one run.

    .venv/bin/python scripts/bench_eit_solvers.py [--repeats 3] [--cases 3] [--threads 0]

* per case: NOSER (p = 0.5 and 1), Tikhonov, TV on P3 case 1 (one pattern, 16 measurements) and on the
  ``random`` preset (adjacent protocol, 208 measurements); setup = solver mesh (2,042 cells) + adjoint Jacobian
  at the background + grid maps, paid once per dataset config and cached;
* the Jacobian goal of issue 5 (208 measurements on a ~2,000-cell mesh vs pyEIT's ``compute_jac`` on a mesh of
  the same size, >= 10x) is measured by ``scripts/bench_eit.py`` (row "Jacobian, 208 measurements"), whose
  operator is the one these solvers call; it is not duplicated here -- run that script for the ratio;
* CNN-PINN: stage-1 training throughput (samples/s, forward + backward + Adam) and inference latency per
  sample, stage-2 time per PINN epoch and per case, on the CPU (and the GPU when torch sees one).

Timings are the minimum over ``--repeats`` (the machine is shared).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import mpi4py.MPI  # noqa: F401  (before dolfinx)
import numpy as np
from bench_eit import best  # scripts/ is on sys.path when a script runs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cases", type=int, default=3, help="test phantoms per preset")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = ap.parse_args()
    warnings.simplefilter("ignore")

    import torch

    from phantombench import runner
    from phantombench.solvers import eit_classical as ec
    from phantombench.solvers.cnn_pinn import CNNPINN, fit_sigma, pinn_geometry
    from phantombench.store import open_dataset
    from phantombench.tasks import get_task

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    task = get_task("eit")
    tmp = Path(tempfile.mkdtemp(prefix="bench_eit_solvers_"))
    data = {}
    for preset in ("cnn-pinn-case1", "random"):
        runner.generate("eit", preset, args.cases, tmp / preset, seed=7, overrides={"store_mesh": False}, workers=0)
        ds = open_dataset(tmp / preset)
        data[preset] = [(task.observation(ds, i), task.truth(ds, i)) for i in range(len(ds))]

    print(f"{'classical baselines':<44} {'setup':>10} {'per case':>10} {'CC (mean)':>10}")
    solvers = [("NOSER p=0.5", ec.NOSER, {"p": 0.5}), ("NOSER p=1", ec.NOSER, {"p": 1.0}),
               ("Tikhonov", ec.Tikhonov, {}), ("TV (PD-IPM)", ec.TotalVariation, {})]
    for preset, cases in data.items():
        M = len(cases[0][0]["dv"])
        ec._OP_CACHE.clear()
        t0 = time.perf_counter()
        op = ec.NOSER(task)._operator(cases[0][0])
        setup = time.perf_counter() - t0
        for name, cls, p in solvers:
            s = cls(task, params=p)
            per = []
            ccs = []
            for obs, truth in cases:
                t, pred = best(lambda: s.solve(obs), args.repeats)
                per.append(t)
                ccs.append(task.metric("CC").fn(pred, truth))
            print(f"{preset + ' (' + str(M) + ' meas.) ' + name:<44} {setup * 1e3:>8.0f}ms {np.mean(per) * 1e3:>8.1f}ms "
                  f"{np.mean(ccs):>10.3f}")
        bump = iter(np.linspace(1.0001, 1.01, 100))  # a new conductivity each call: assembly + factorisation
        t_jac, _ = best(lambda: op.fwd.jacobian(np.full(op.fwd.n_cells, op.sigma0 * next(bump))), args.repeats)
        print(f"{'  Jacobian ' + str(M) + ' x ' + str(op.fwd.n_cells) + ' (new conductivity)':<44} {'':>10} "
              f"{t_jac * 1e3:>8.1f}ms")
    print("  Jacobian vs pyEIT compute_jac (208 meas., same mesh size): see scripts/bench_eit.py")

    # ------------------------------------------------------------------------------ CNN-PINN
    print()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    obs0 = data["cnn-pinn-case1"][0][0]
    cfg = ec.eit_config(obs0)
    print(f"{'CNN-PINN':<44} {'device':>10} {'value':>14}")
    for dev in devices:
        for width in (8, 16):
            s = CNNPINN(task, params={"width": width, "image_size": 64}, device=dev)
            net = s.build_stage1(16, 1)
            n_par = sum(p.numel() for p in net.parameters())
            opt = torch.optim.Adam(net.parameters(), 1e-3)
            B = 32
            x = torch.randn(B, 16, device=dev)
            y = torch.randn(B, 1, 64, 64, device=dev)

            def step():
                opt.zero_grad()
                loss = ((net(x) - y) ** 2).mean()
                loss.backward()
                opt.step()
                if dev == "cuda":
                    torch.cuda.synchronize()

            net.train()
            step()
            t, _ = best(step, args.repeats)
            print(f"{'stage 1 training, width ' + str(width) + f' ({n_par / 1e3:.0f} k params), batch 32':<44} "
                  f"{dev:>10} {B / t:>10.1f} /s")
            net.eval()
            x1 = torch.randn(1, 16, device=dev)

            def infer():
                with torch.no_grad():
                    out = net(x1)
                if dev == "cuda":
                    torch.cuda.synchronize()
                return out

            infer()
            t, _ = best(infer, max(args.repeats, 5))
            print(f"{'stage 1 inference, width ' + str(width) + ', one sample':<44} {dev:>10} {t * 1e3:>10.2f} ms")
        geom = pinn_geometry(64, cfg)
        U = np.random.default_rng(0).standard_normal((1, 64, 64)) * 0.01 + geom.X[None]
        fit_sigma(U, geom, 1.0, epochs=5, device=dev)
        t, (net2, hist) = best(lambda: fit_sigma(U, geom, 1.0, epochs=50, device=dev), args.repeats)
        print(f"{'stage 2 PINN epoch (64 x 64 grid, ' + str(int(geom.mask.sum())) + ' points)':<44} {dev:>10} "
              f"{t / 50 * 1e3:>10.2f} ms")
        print(f"{'stage 2 per case at 2000 epochs (paper budget)':<44} {dev:>10} {t / 50 * 2000:>10.1f} s")


if __name__ == "__main__":
    main()
