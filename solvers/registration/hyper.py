"""P4 (Reithmeir): tissue-specific, hyper-parameter-conditioned registration (HyperMorph-style).

The regulariser's parameters vary in space by tissue class: the class of each voxel is read from the FIXED
image's segmentation (the observation's ``fixed_labels``; K = the number of classes seen in training, background
included) and every class c has its own parameters -- (lambda_c, mu_c) of the linear-elastic energy
(:class:`HyperElastic`, ``hypermorph-elastic``) or alpha_c of the diffusion energy (:class:`HyperDiffusion`,
``hypermorph-diffusion``). Loss: ``MSE + w_reg * E(u; params(x))`` (:mod:`.losses`), ``w_reg`` 0.05 by default:
with 1, the elastic energy of the FEM's own displacement on the brain-deform pairs is as large as the image MSE
before registration, so the best trade-off barely moves the image.

Conditioning (our choice): one network serves every parameter vector h (K * P numbers, P = 2 or 1), drawn from
U(0, 1) per training pair (HyperMorph's amortised training). h reaches the network twice: as FiLM (a scale and a
shift per channel of every convolution of the VoxelMorph U-Net, from a small MLP, :mod:`.networks`) and as P
extra input channels holding the parameter maps h[class(x)] -- the network sees where each tissue's
parameters apply without having to segment the images itself.

Choosing h (``conditioning``):

* ``"global"`` -- one value per parameter for all classes, the best on the validation split by the mean
  class score over the grid ``grid`` x ``grid`` (elastic) or ``grid`` (diffusion);
* ``"adaptive"`` (default) -- spatially adaptive: from the global choice, each class in turn gets the grid value
  that maximises its own class score on the validation split (one coordinate pass).

P4 picks the parameters per test subject by class-wise Dice, which needs the moving image's labels; a solver
never sees those at solve time (the observation has ``fixed_labels`` only). So here the search runs once, on the
validation split inside ``fit``: the class score is the Dice of the moving labels warped by the prediction
(nearest neighbour) against the fixed labels when the validation targets carry ``moving_labels``, otherwise
minus the mean endpoint error over the class's voxels (the validation targets always carry the true
displacement). The parameters are therefore dataset- and tissue-specific, not subject-specific; the paper's
per-subject protocol is :func:`search` on one pair with its labels (the reproduction runs it on the test pairs
as P4 does, and reports it apart). ``values`` (a list of K * P numbers) fixes h instead.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from phantombench.solvers.registration import losses as L
from phantombench.solvers.registration.voxelmorph import VoxelMorph, to_tensors


class HyperElastic(VoxelMorph):
    """Hyper-parameter-conditioned VoxelMorph with a tissue-specific linear-elastic regulariser."""

    name = "hypermorph-elastic"
    n_per_class = 2                     # (lambda, mu)
    param_names = ("lambda", "mu")
    defaults = {**VoxelMorph.defaults, "w_sim": 1.0, "w_reg": 0.05, "grid": [0.05, 0.25, 0.5, 0.75, 1.0],
                "conditioning": "adaptive", "values": None}
    key_params = VoxelMorph.key_params

    # -------------------------------------------------------------------------------- model
    def build(self, ndim: int):
        from phantombench.solvers.registration.networks import build_regnet

        p, k = self.params, int(self.meta["n_classes"])
        if p["arch"] != "voxelmorph":
            raise ValueError(f"{self.name}: conditioning needs arch='voxelmorph'")
        return build_regnet(ndim, "voxelmorph", p["enc"], p["dec"], p["channels"], int(p["int_steps"]),
                            cond_dim=k * self.n_per_class, extra_channels=self.n_per_class)

    def maps(self, cond, labels):
        """Per-voxel parameter maps (B, P, *S) of vectors ``cond`` (B, P * K) and class maps ``labels`` (B, *S)."""
        import torch

        b, k = cond.shape[0], int(self.meta["n_classes"])
        h = cond.view(b, self.n_per_class, k)
        idx = labels.clamp(0, k - 1).flatten(1).unsqueeze(1).expand(b, self.n_per_class, -1)
        return torch.gather(h, 2, idx).view(b, self.n_per_class, *labels.shape[1:])

    def condition(self, batch, rng):
        import torch

        b = batch["fixed"].shape[0]
        dim = self.n_per_class * int(self.meta["n_classes"])
        if rng is not None:          # training: h ~ U(0, 1) per pair
            cond = torch.from_numpy(rng.uniform(0.0, 1.0, (b, dim)).astype(np.float32))
        else:
            chosen = batch.get("cond", self.meta.get("cond"))
            vec = np.full(dim, 0.5, np.float32) if chosen is None else np.asarray(chosen, np.float32)
            cond = torch.from_numpy(np.broadcast_to(vec, (b, dim)).copy())
        cond = cond.to(batch["fixed"].device)
        return cond, self.maps(cond, batch["labels"])

    def regulariser(self, u, batch, cond=None):
        m = self.maps(cond, batch["labels"])
        r = L.elastic_energy(u, m[:, 0], m[:, 1])
        return r, {"elastic": r}

    # -------------------------------------------------------------------------------- choosing h
    def after_fit(self, val: dict[str, np.ndarray]) -> None:
        p = self.params
        dim = self.n_per_class * int(self.meta["n_classes"])
        if p["values"] is not None:
            vec = [float(v) for v in p["values"]]
            if len(vec) != dim:
                raise ValueError(f"{self.name}: values needs {dim} numbers (classes x {self.param_names})")
            self.meta.update({"cond": vec, "search": {"mode": "given"}})
            return
        found = search(self, val, [float(g) for g in p["grid"]], adaptive=p["conditioning"] == "adaptive")
        self.meta.update({"cond": found["cond"], "search": found})

    def describe_cond(self, cond) -> dict[str, list[float]]:
        """{parameter name: per-class values (4 decimals)} of a vector."""
        h = np.asarray(cond, float).reshape(self.n_per_class, int(self.meta["n_classes"]))
        return {n: [round(float(x), 4) for x in h[i]] for i, n in enumerate(self.param_names)}


class HyperDiffusion(HyperElastic):
    """The same with a tissue-specific diffusion regulariser (alpha per class)."""

    name = "hypermorph-diffusion"
    n_per_class = 1
    param_names = ("alpha",)

    def regulariser(self, u, batch, cond=None):
        m = self.maps(cond, batch["labels"])
        r = L.diffusion(u, m[:, 0])
        return r, {"diffusion": r}


# ------------------------------------------------------------------------------------------ the search
def class_scores(solver: HyperElastic, arrays: dict[str, np.ndarray], cond) -> np.ndarray:
    """(n_pairs, K) class scores of vector ``cond``: Dice of the warped moving labels (nearest neighbour) when
    ``arrays`` has ``moving_labels``, else minus the mean endpoint error (voxels) over the class; NaN where a
    class is absent (and for the background under Dice)."""
    import torch

    from phantombench.solvers.registration.networks import make_warp

    k, n = int(solver.meta["n_classes"]), len(arrays["fixed"])
    with torch.no_grad():
        b = to_tensors(arrays, list(range(n)), solver.device, solver.meta["scale"])
        b["cond"] = cond
        _, u, _ = solver.forward(b, None)
        u = u.float()
        out = np.full((n, k), np.nan)
        if "moving_labels" in b:
            warped = make_warp("nearest", "border")(b["moving_labels"].unsqueeze(1).float(), u)[:, 0].round().long()
            for c in range(1, k):
                a, f = warped == c, b["labels"] == c
                den = (a.flatten(1).sum(1) + f.flatten(1).sum(1)).float()
                dice = 2 * (a & f).flatten(1).sum(1).float() / den.clamp_min(1)
                out[:, c] = torch.where(den > 0, dice, torch.nan).cpu().numpy()
        else:
            epe = ((u - b["disp"]) ** 2).sum(1).sqrt()
            for c in range(k):
                f = (b["labels"] == c).float()
                cnt = f.flatten(1).sum(1)
                e = (epe * f).flatten(1).sum(1) / cnt.clamp_min(1)
                out[:, c] = torch.where(cnt > 0, -e, torch.nan).cpu().numpy()
    return out


def _mean(x: np.ndarray) -> float:
    """Mean of the finite values; -inf when there are none."""
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else -np.inf


def search(solver: HyperElastic, arrays: dict[str, np.ndarray], grid: list[float],
           adaptive: bool = True) -> dict[str, Any]:
    """Grid search of the conditioning vector on ``arrays`` (one pair: P4's per-subject search): the best
    global vector by the mean class score, then (``adaptive``) one coordinate pass over the classes, each
    taking the grid values that maximise its own score. Returns the vector, its scores and the evaluations."""
    k, npc = int(solver.meta["n_classes"]), solver.n_per_class
    combos = list(itertools.product(grid, repeat=npc))
    best, best_s = None, -np.inf
    for combo in combos:
        vec = np.repeat(np.asarray(combo, np.float32), k)
        s = _mean(class_scores(solver, arrays, vec))
        if s > best_s:
            best, best_s = vec, s
    global_vec, global_score = best.copy(), best_s
    evaluations = len(combos)
    if adaptive:
        for c in range(k):
            base = _mean(class_scores(solver, arrays, best)[:, c])
            if not np.isfinite(base):
                continue
            pick, pick_s = None, base
            for combo in combos:
                vec = best.copy()
                vec[[i * k + c for i in range(npc)]] = combo
                s = _mean(class_scores(solver, arrays, vec)[:, c])
                evaluations += 1
                if s > pick_s:
                    pick, pick_s = vec, s
            if pick is not None:
                best = pick
    final = class_scores(solver, arrays, best)
    return {"mode": "adaptive" if adaptive else "global", "cond": [float(x) for x in best],
            "global_cond": [float(x) for x in global_vec], "global_score": float(global_score),
            "score": _mean(final), "class_scores": [_mean(final[:, c]) if np.isfinite(final[:, c]).any() else None
                                                    for c in range(k)],
            "criterion": "dice" if "moving_labels" in arrays else "neg_epe", "evaluations": evaluations}
