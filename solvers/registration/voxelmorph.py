"""Learned deformable registration for the ``registration`` task: VoxelMorph-style networks (2-D and 3-D).

A U-Net on concat(fixed, moving) predicts a stationary velocity field, integrated by scaling and squaring into
the displacement ``disp`` (voxels, fixed grid, channel d along axis d, moving(x + disp) = fixed(x)); see
:mod:`.networks` for the network and the MONAI conventions, :mod:`.losses` for the losses.

Training is unsupervised (the true displacement is never a loss term): ``w_sim * MSE(warped moving, fixed) +
w_reg * regulariser(u)`` with ``w_reg = 1 - w_sim`` unless given (P5's weighting). The regularisers:

* :class:`VoxelMorph` (``voxelmorph-diffusion``): diffusion ``||grad u||^2`` -- the baseline every learned row
  is compared with;
* :class:`KheilJacobian`, :class:`KheilRigidity`, :class:`KheilSliding` (``kheil-jacobian``,
  ``kheil-rigidity``, ``kheil-sliding``): P5's Jacobian term on mask 0, plus rigidity on mask 1, plus shearing
  on the interface (mask 2), each with weight 1 inside the regulariser, on P5's Attention U-Net (Adam 1e-3,
  batch 8, 5 integration steps), and :class:`KheilDiffusion` (``kheil-diffusion``), the same protocol with
  the diffusion regulariser;
* the hyper-network models of :mod:`.hyper` (P4).

The observation's ``mask`` (0 free, 1 rigid, 2 interface) and ``normals`` enter the losses only; a dataset
without them is all "free" (mask 0). Images are divided by one intensity scale (the 99.9th percentile of |fixed|
over the training split, stored with the weights).

Training runs in the shared loop (:mod:`phantombench.solvers.training`): one random batch of training pairs per
step, validation every ``val_every`` steps on the validation pairs (the same unsupervised loss picks the best
weights; the endpoint error against the true displacement is recorded beside it), checkpoints in
``checkpoint_dir`` (default ``$PHANTOMBENCH_CACHE/<solver>/<key>``, key = hash of the content fingerprints of
both splits, the seed and the parameters that change the result) from which a later ``fit`` with the same key
resumes. ``weights=PATH`` loads a ``weights.pt`` instead of fitting. CUDA when present; ``amp="bf16"`` for
bfloat16 autocast; ``threads`` torch CPU threads (1 on a shared machine).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from phantombench.solvers.base import Solver
from phantombench.solvers.registration import losses as L
from phantombench.solvers.training import (Budget, Checkpoint, Fingerprint, Precision, Trainer, atomic_save,
                                             seed_everything, tag_hash)

SMOKE_2D = {"enc": [8, 16, 16, 16], "dec": [16, 16, 16, 16, 16, 8, 8], "channels": [8, 16, 32, 64]}


# ------------------------------------------------------------------------------------------ data
def extend_normals(normals: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The interface normals copied from the nearest mask == 2 voxel to every voxel, so the central differences
    of ``u_n = (u . n) n`` at the edge of the interface band see the band's normal on both sides (with n = 0
    outside, the difference across the band's edge would penalise |u_n| itself, not its gradient). The shearing
    term is still averaged over mask == 2 only. Unchanged when there is no interface."""
    from scipy import ndimage

    band = mask == 2
    if not band.any() or band.all():
        return normals
    idx = ndimage.distance_transform_edt(~band, return_distances=False, return_indices=True)
    return np.ascontiguousarray(normals[(slice(None), *idx)])


def pair_arrays(obs: dict[str, Any]) -> dict[str, np.ndarray]:
    """The arrays of one observation a learned registration model uses: fixed and moving (S), mask (S, uint8;
    zeros when absent), normals (D, *S; zeros when absent; extended past the interface by
    :func:`extend_normals`), fixed_labels (S; zeros when absent)."""
    fixed = np.asarray(obs["fixed"], np.float32)
    shape, d = fixed.shape, fixed.ndim
    mask = np.asarray(obs["mask"], np.uint8) if obs.get("mask") is not None else np.zeros(shape, np.uint8)
    normals = (extend_normals(np.asarray(obs["normals"], np.float32), mask) if obs.get("normals") is not None
               else np.zeros((d, *shape), np.float32))
    labels = (np.asarray(obs["fixed_labels"], np.int64) if obs.get("fixed_labels") is not None
              else np.zeros(shape, np.int64))
    return {"fixed": fixed, "moving": np.asarray(obs["moving"], np.float32), "mask": mask, "normals": normals,
            "labels": labels}


def stack_cases(cases) -> tuple[dict[str, np.ndarray], str, int]:
    """Stack a split's pairs: the arrays of :func:`pair_arrays` plus ``disp`` (true displacement, validation
    only) and ``moving_labels`` when the targets carry them; with the split's content fingerprint and size."""
    fp = Fingerprint()
    rows: list[dict[str, np.ndarray]] = []
    for obs, tgt in cases:
        fp.add(obs, tgt)
        row = pair_arrays(obs)
        row["disp"] = np.asarray(tgt["disp"], np.float32)
        if tgt.get("moving_labels") is not None:
            row["moving_labels"] = np.asarray(tgt["moving_labels"], np.int64)
        rows.append(row)
    keys = set.intersection(*(set(r) for r in rows)) if rows else set()
    return {k: np.stack([r[k] for r in rows]) for k in sorted(keys)}, fp.hexdigest(), len(rows)


def to_tensors(arrays: dict[str, np.ndarray], idx, device, scale: float) -> dict[str, Any]:
    """Batch ``idx`` of stacked arrays as tensors: images (B, 1, *S) / scale, the rest as they are."""
    import torch

    out = {}
    for k, a in arrays.items():
        t = torch.from_numpy(np.ascontiguousarray(a[idx])).to(device)
        out[k] = (t / scale).unsqueeze(1) if k in ("fixed", "moving") else t
    return out


def endpoint_error(u, disp) -> float:
    """Mean Euclidean distance (voxels) between a predicted and the true displacement (B, D, *S)."""
    return float(((u - disp) ** 2).sum(dim=1).sqrt().mean())


# ------------------------------------------------------------------------------------------ solver
class VoxelMorph(Solver):
    """VoxelMorph (U-Net -> SVF -> scaling and squaring) with a diffusion regulariser."""

    name = "voxelmorph-diffusion"
    version = "1.0.0"
    tasks = ("registration",)
    time_budget_s = 60.0
    fit_budget_s = 6 * 3600.0
    defaults = {
        "arch": "voxelmorph", "enc": [16, 32, 32, 32], "dec": [32, 32, 32, 32, 32, 16, 16],
        "channels": [16, 32, 64, 128, 256, 512], "int_steps": 7, "lr": 1e-4, "batch": 8, "steps": 3000,
        "val_every": 100, "w_sim": 0.9, "w_reg": None, "amp": "off", "threads": 1, "max_fit_s": None,
        "weights": None, "checkpoint_dir": None, "save_weights": None, "progress": True,
    }
    # parameters that change what is learned (they make the checkpoint key)
    key_params = ("arch", "enc", "dec", "channels", "int_steps", "lr", "batch", "steps", "val_every", "w_sim",
                  "w_reg", "amp")

    def __init__(self, task, params=None, device=None, seed=0):
        super().__init__(task, params, device, seed)
        self.model = None
        self.meta: dict[str, Any] = {}
        self.history: list[dict[str, Any]] = []

    # -------------------------------------------------------------------------------- model and loss
    def build(self, ndim: int):
        """The network for ``ndim``-D pairs (subclasses add conditioning)."""
        from phantombench.solvers.registration.networks import build_regnet

        p = self.params
        return build_regnet(ndim, p["arch"], p["enc"], p["dec"], p["channels"], int(p["int_steps"]))

    def weights_pair(self) -> tuple[float, float]:
        w_sim = float(self.params["w_sim"])
        w_reg = float(self.params["w_reg"]) if self.params["w_reg"] is not None else 1.0 - w_sim
        return w_sim, w_reg

    def regulariser(self, u, batch: dict[str, Any], cond=None):
        """(total, parts) of the regulariser on displacement ``u`` of a batch."""
        r = L.diffusion(u)
        return r, {"diffusion": r}

    def condition(self, batch: dict[str, Any], rng: np.random.Generator | None):
        """(cond vector, extra input channels) of a batch: none here (see :mod:`.hyper`)."""
        return None, None

    def forward(self, batch: dict[str, Any], rng=None):
        cond, extra = self.condition(batch, rng)
        warped, u, _ = self.model(batch["fixed"], batch["moving"], cond, extra)
        return warped, u, cond

    def loss(self, batch: dict[str, Any], rng=None):
        """(total, similarity, regulariser parts, u) of a batch."""
        warped, u, cond = self.forward(batch, rng)
        sim = L.mse(warped.float(), batch["fixed"].float())
        reg, parts = self.regulariser(u.float(), batch, cond)
        w_sim, w_reg = self.weights_pair()
        return w_sim * sim + w_reg * reg, sim, parts, u

    # -------------------------------------------------------------------------------- fit
    def _checkpoint_dir(self, key: str) -> Path:
        if self.params["checkpoint_dir"]:
            return Path(self.params["checkpoint_dir"])
        root = Path(os.environ.get("PHANTOMBENCH_CACHE", Path.home() / ".cache" / "phantombench"))
        return root / self.name / key

    def fit(self, train, val) -> None:
        import torch

        p = self.params
        if int(p["threads"]) > 0 and self.device == "cpu":
            torch.set_num_threads(int(p["threads"]))
        t_start = time.perf_counter()
        rng = seed_everything(self.seed)
        tr, fp_tr, n_tr = stack_cases(train)
        if n_tr == 0:
            raise ValueError(f"{self.name}: the training split is empty")
        va, fp_va, n_va = stack_cases(val)
        if n_va == 0:
            va = {k: v[:1] for k, v in tr.items()}
        scale = float(np.percentile(np.abs(tr["fixed"]), 99.9)) or 1.0
        self.meta = {"ndim": tr["fixed"].ndim - 1, "scale": scale, "n_classes": int(tr["labels"].max()) + 1}
        self.model = self.build(self.meta["ndim"]).to(self.device)
        tag = {"data": {"train": fp_tr, "val": fp_va, "n": [n_tr, n_va]}, "seed": self.seed, "solver": self.name,
               "version": self.version, "params": {k: p[k] for k in self.key_params}}
        key = tag_hash(tag)
        ckpt = Checkpoint(self._checkpoint_dir(key) / "checkpoint.pt", tag)
        res = self._train(tr, va, ckpt, rng, t_start)
        self.model.eval()
        self.history = [{**r, "seconds": round(r["seconds"], 2)} for r in res.history]
        self.after_fit(va)
        self._save(ckpt, key, res, {"train": fp_tr, "val": fp_va, "n_train": n_tr, "n_val": n_va})

    def after_fit(self, val: dict[str, np.ndarray]) -> None:
        """Hook run on the validation arrays once the weights are trained (the hyper-parameter search of
        :mod:`.hyper`)."""

    def _train(self, tr, va, ckpt: Checkpoint, rng, t_start: float):
        """Adam on random training batches in the shared :class:`~phantombench.solvers.training.Trainer`."""
        import torch

        p, dev, scale = self.params, self.device, self.meta["scale"]
        model = self.model
        opt = torch.optim.Adam(model.parameters(), lr=float(p["lr"]))
        precision = Precision(p["amp"], dev)
        n_tr, bs = len(tr["fixed"]), int(p["batch"])

        def loss(step):
            idx = rng.choice(n_tr, size=bs, replace=n_tr < bs)
            with precision.autocast():
                return self.loss(to_tensors(tr, idx, dev, scale), rng)[0]

        @torch.no_grad()
        def evaluate(train_loss) -> dict[str, float]:
            model.eval()
            tot, sim, epe, n = 0.0, 0.0, 0.0, len(va["fixed"])
            for i in range(n):
                b = to_tensors(va, [i], dev, scale)
                with precision.autocast():
                    t, s, _, u = self.loss(b, None)
                tot, sim, epe = tot + float(t), sim + float(s), epe + endpoint_error(u.float(), b["disp"])
            model.train()
            return {"val_loss": tot / n, "val_mse": sim / n, "val_epe_px": epe / n}

        max_fit = float(p["max_fit_s"]) if p["max_fit_s"] else 0.9 * self.fit_budget_s
        model.train()
        trainer = Trainer(model, [opt], Budget(int(p["steps"]), max_fit, cumulative=False, since=t_start), loss=loss,
                          evaluate=evaluate, eval_every=int(p["val_every"]), checkpoint=ckpt, rngs={"batches": rng},
                          precision=precision, progress=f"{self.name} fit" if p["progress"] else None)
        return trainer.run()

    def _save(self, ckpt: Checkpoint, key: str, res, data: dict[str, Any]) -> None:
        from phantombench.solvers.registration.networks import n_parameters

        p = self.params
        self.meta.update({
            "solver": self.name, "solver_version": self.version, "params": {k: p[k] for k in self.key_params},
            "seed": self.seed, "n_parameters": n_parameters(self.model), "dataset": data, "steps_done": res.steps,
            "resumed_from_step": res.resumed_from, "stopped_early": res.stopped == "time",
            "train_seconds_this_run": round(res.seconds_this_run, 2), "train_seconds_total": round(res.seconds, 2),
            "best_val_loss": res.best, "device": self.device, "checkpoint": str(ckpt.path), "key": key})
        wpath = Path(p["save_weights"]) if p["save_weights"] else ckpt.path.parent / "weights.pt"
        atomic_save({"meta": self.meta, "history": self.history, "state_dict": self.model.state_dict()}, wpath)
        self.meta["weights"] = str(wpath)

    # -------------------------------------------------------------------------------- inference
    def load(self, path: str | os.PathLike) -> None:
        """Load a ``weights.pt`` written by :meth:`fit` (its parameters replace the ones that shape the model)."""
        import torch

        blob = torch.load(Path(path), map_location="cpu", weights_only=False)
        meta = blob["meta"]
        self.params.update(meta["params"])
        self.meta = {**meta, "weights": str(path)}
        self.model = self.build(int(meta["ndim"]))
        self.model.load_state_dict(blob["state_dict"])
        self.model = self.model.to(self.device).eval()
        self.history = blob.get("history", [])

    def ensure_model(self) -> None:
        if self.model is None:
            if not self.params["weights"]:
                raise RuntimeError(f"{self.name} is not trained: run fit() (evaluate with a training split) or "
                                   "pass --param weights=PATH/weights.pt")
            self.load(self.params["weights"])

    def predict(self, obs: dict[str, Any]) -> np.ndarray:
        """The displacement (D, *S) of one observation, float64 voxels."""
        import torch

        self.ensure_model()
        if int(self.params["threads"]) > 0 and self.device == "cpu":
            torch.set_num_threads(int(self.params["threads"]))
        arrays = {k: v[None] for k, v in pair_arrays(obs).items()}
        with torch.no_grad():
            b = to_tensors(arrays, [0], self.device, self.meta["scale"])
            _, u, _ = self.forward(b, None)
        return u[0].float().cpu().numpy().astype(np.float64)

    def solve(self, observation):
        return {"disp": self.predict(observation)}


# ------------------------------------------------------------------------------------------ P5 (Kheil)
class KheilDiffusion(VoxelMorph):
    """P5's protocol (MONAI Attention U-Net, 5 integration steps, Adam 1e-3, batch 8) with the diffusion
    regulariser: the baseline of the P5 rows."""

    name = "kheil-diffusion"
    defaults = {**VoxelMorph.defaults, "arch": "attention", "int_steps": 5, "lr": 1e-3, "w_sim": 0.5}


class KheilJacobian(KheilDiffusion):
    """P5's protocol with the Jacobian term alone (mask 0; on data without a mask: everywhere)."""

    name = "kheil-jacobian"
    terms = {"jacobian": 1.0}

    def regulariser(self, u, batch, cond=None):
        return L.kheil_loss(u, batch["mask"], batch["normals"], self.terms)


class KheilRigidity(KheilJacobian):
    """P5: Jacobian term on mask 0 + rigidity on mask 1 (Table 1)."""

    name = "kheil-rigidity"
    terms = {"jacobian": 1.0, "rigidity": 1.0}


class KheilSliding(KheilJacobian):
    """P5: Jacobian term on mask 0 + rigidity on mask 1 + shearing of the normal displacement on the sliding
    interface, mask 2 (Table 2)."""

    name = "kheil-sliding"
    terms = {"jacobian": 1.0, "rigidity": 1.0, "shearing": 1.0}
