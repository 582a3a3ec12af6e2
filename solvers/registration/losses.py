"""Losses of the learned registration solvers, in torch, on a displacement ``u`` of shape (B, D, *S).

Convention (the ``registration`` task's): ``u`` lives on the FIXED grid, in voxels, channel d along spatial axis
d, and moving(x + u(x)) = fixed(x). Derivatives are in voxel units.

* image similarity: :func:`mse`;
* P5 (Kheil) physics terms, central differences (``torch.gradient``: (f[k+1] - f[k-1]) / 2 inside, one-sided
  at the ends): :func:`rigidity` (mean over mask 1 of ``||eps||_F^2``, the sum of the squared eigenvalues of the
  small strain ``eps = (grad u + grad u^T) / 2``), :func:`shearing` (the same on the normal part
  ``u_n = (u . n) n`` over mask 2: the tangential part slides freely), :func:`jacobian_term` (mean of
  ``(log max(J, 1e-9))^2``, ``J = det(I + grad u)``, over mask 0) and their weighted sum :func:`kheil_loss`;
* P4 (Reithmeir) :func:`elastic_energy` (``lambda/2 (div u)^2 + mu/4 sum_ij (d_j u_i + d_i u_j)^2`` per voxel,
  forward differences that are zero at the last index, every strain component written out) and the
  (spatially weighted) :func:`diffusion` energy ``alpha ||grad u||^2`` with the same differences.

Each term is averaged over the voxels it covers (all voxels of the batch in its region); an empty region gives 0.
"""

from __future__ import annotations

import torch

LOG_FLOOR = 1e-9

__all__ = ["central_jacobian", "det_identity_plus", "diffusion", "elastic_energy", "forward_diff", "jacobian_term",
           "kheil_loss", "masked_mean", "mse", "rigidity", "shearing", "strain_frobenius2"]


# ------------------------------------------------------------------------------------------ differences
def central_jacobian(u: torch.Tensor) -> torch.Tensor:
    """grad u as (B, D, D, *S): ``[:, i, j] = d u_i / d x_j`` (central differences, voxel units)."""
    d = u.shape[1]
    grads = torch.gradient(u, dim=tuple(range(2, 2 + d)))
    return torch.stack(grads, dim=2)


def forward_diff(f: torch.Tensor, axis: int) -> torch.Tensor:
    """f[k+1] - f[k] along ``axis``; zero at the last index (same shape as ``f``)."""
    n = f.shape[axis]
    diff = f.narrow(axis, 1, n - 1) - f.narrow(axis, 0, n - 1)
    return torch.cat([diff, torch.zeros_like(f.narrow(axis, 0, 1))], dim=axis)


def det_identity_plus(jac: torch.Tensor) -> torch.Tensor:
    """det(I + grad u) of a (B, D, D, *S) Jacobian, D = 2 or 3, as (B, *S)."""
    d = jac.shape[1]
    a = [[jac[:, i, j] + (1.0 if i == j else 0.0) for j in range(d)] for i in range(d)]
    if d == 2:
        return a[0][0] * a[1][1] - a[0][1] * a[1][0]
    if d == 3:
        return (a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1])
                - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
                + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0]))
    raise ValueError(f"2-D or 3-D displacement expected (got {d} channels)")


def strain_frobenius2(u: torch.Tensor) -> torch.Tensor:
    """||eps||_F^2 per voxel (B, *S), eps = (grad u + grad u^T) / 2 (central differences). For the symmetric
    eps this is the sum of its squared eigenvalues (= squared singular values)."""
    jac = central_jacobian(u)
    eps = 0.5 * (jac + jac.transpose(1, 2))
    return (eps ** 2).sum(dim=(1, 2))


def masked_mean(x: torch.Tensor, m: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``x`` (B, *S) over the voxels where ``m`` (same shape, 0/1) is set; all voxels when ``m`` is None;
    0 for an empty mask."""
    if m is None:
        return x.mean()
    m = m.to(x.dtype)
    return (x * m).sum() / m.sum().clamp_min(1.0)


# ------------------------------------------------------------------------------------------ similarity
def mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared intensity difference."""
    return ((a - b) ** 2).mean()


# ------------------------------------------------------------------------------------------ P5 (Kheil)
def rigidity(u: torch.Tensor, region: torch.Tensor | None) -> torch.Tensor:
    """Mean of ||eps(u)||_F^2 over ``region`` (mask == 1): zero for any rigid translation and, to first order,
    rotation."""
    return masked_mean(strain_frobenius2(u), region)


def shearing(u: torch.Tensor, normals: torch.Tensor, region: torch.Tensor | None) -> torch.Tensor:
    """Mean of ||eps(u_n)||_F^2 over ``region`` (mask == 2), ``u_n = (u . n) n`` with the unit interface normals
    (B, D, *S): the normal part must move rigidly, the tangential part (sliding) is free."""
    un = (u * normals).sum(dim=1, keepdim=True) * normals
    return masked_mean(strain_frobenius2(un), region)


def jacobian_term(u: torch.Tensor, region: torch.Tensor | None) -> torch.Tensor:
    """Mean of (log max(J, 1e-9))^2 over ``region`` (mask == 0), J = det(I + grad u): volume preservation and,
    through the floor, a large penalty on folding."""
    j = det_identity_plus(central_jacobian(u))
    return masked_mean(torch.log(j.clamp_min(LOG_FLOOR)) ** 2, region)


def kheil_loss(u: torch.Tensor, mask: torch.Tensor, normals: torch.Tensor | None,
               weights: dict[str, float]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Weighted sum of the P5 terms; ``mask`` (B, *S) holds 0 free, 1 rigid, 2 sliding interface; ``weights``
    names ``jacobian``, ``rigidity``, ``shearing`` (a zero weight skips the term). Returns (total, parts)."""
    parts: dict[str, torch.Tensor] = {}
    if weights.get("jacobian", 0.0):
        parts["jacobian"] = jacobian_term(u, mask == 0)
    if weights.get("rigidity", 0.0):
        parts["rigidity"] = rigidity(u, mask == 1)
    if weights.get("shearing", 0.0):
        if normals is None:
            raise ValueError("the shearing term needs the interface normals")
        parts["shearing"] = shearing(u, normals, mask == 2)
    total = sum((float(weights[k]) * v for k, v in parts.items()), torch.zeros((), device=u.device))
    return total, parts


# ------------------------------------------------------------------------------------------ P4 (Reithmeir)
def elastic_energy(u: torch.Tensor, lam: torch.Tensor | float, mu: torch.Tensor | float) -> torch.Tensor:
    """Mean linear-elastic energy density ``lam/2 (div u)^2 + mu/4 sum_ij (d_j u_i + d_i u_j)^2`` with forward
    differences (zero at the last index); ``lam``, ``mu`` scalars or (B, *S) maps. Every component d_j u_i is
    taken along spatial axis j of channel i, so a pure stretch along any axis feeds both terms."""
    d = u.shape[1]
    grad = [[forward_diff(u[:, i], 1 + j) for j in range(d)] for i in range(d)]   # grad[i][j] = d_j u_i
    div = sum(grad[i][i] for i in range(d))
    shear = sum((grad[i][j] + grad[j][i]) ** 2 for i in range(d) for j in range(d))
    return (0.5 * lam * div ** 2 + 0.25 * mu * shear).mean()


def diffusion(u: torch.Tensor, alpha: torch.Tensor | float = 1.0) -> torch.Tensor:
    """Mean of ``alpha ||grad u||^2 = alpha sum_ij (d_j u_i)^2`` (forward differences, zero at the last index);
    ``alpha`` a scalar or a (B, *S) map (spatially adaptive weight)."""
    d = u.shape[1]
    g2 = sum(forward_diff(u[:, i], 1 + j) ** 2 for i in range(d) for j in range(d))
    return (alpha * g2).mean()
