"""Anatomy-informed axial abdominal slices for liver MR elastography, and their gmsh meshes.

Geometry (all closed curves, millimetres until meshing, then metres):

* the template (``anatomy/abdomen_axial_portal.json``): peritoneal cavity (inner abdominal wall),
  liver, spleen, vertebral body, aorta, inferior vena cava and intrahepatic portal / hepatic vessel
  cross-sections, hand-digitised for this project (see the file's ``source``);
* per sample: a smooth random deformation of the liver (its own diffeomorphism, limited so that it
  keeps clear of its neighbours), the abdominal wall muscle and subcutaneous fat grown outward from
  the cavity with random thicknesses (thicker posteriorly), a random subset of jittered vessels,
  random lesions inside the liver, then one global smooth diffeomorphism (anisotropic scale,
  rotation, low-frequency displacement) of the whole slice. Every structure is strictly nested or
  disjoint (clearances are checked), so the slice meshes as a set of nested curve loops;
* a driver arc on the anterior skin (the MRE passive driver), tagged on the mesh boundary.

Meshing uses gmsh's built-in kernel on polygonal loops (no boolean operations, which keeps it
fast); the element size per region comes from the caller (the points-per-wavelength rule lives in
the generator) and is imposed at the loop vertices, from which gmsh interpolates inward.

Region labels (``LABELS``) and boundary facet tags (``FACET_*``) are shared with the generator.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from phantombench.meshes.geometry import signed_area
from phantombench.meshes.gmsh_session import gmsh_session

TEMPLATE_FILE = Path(__file__).resolve().parent / "anatomy" / "abdomen_axial_portal.json"

OUTSIDE, FAT, WALL, VISCERA, LIVER, HEPATIC_VESSEL, LESION, SPLEEN, SPINE, GREAT_VESSEL = range(10)
LABELS = {
    OUTSIDE: "outside the body",
    FAT: "subcutaneous fat",
    WALL: "abdominal wall muscle",
    VISCERA: "other viscera (bowel, stomach, retroperitoneum)",
    LIVER: "liver parenchyma",
    HEPATIC_VESSEL: "intrahepatic portal/hepatic vessel",
    LESION: "liver lesion",
    SPLEEN: "spleen",
    SPINE: "vertebral body",
    GREAT_VESSEL: "aorta / inferior vena cava",
}
# boundary facet tags
FACET_DRIVER, FACET_FREE, FACET_ABSORB, FACET_INNER, FACET_SUPPORT, FACET_DRIVER2 = 1, 2, 3, 4, 5, 6

_gmsh_counter = itertools.count()


# =========================================================================================== curves
def load_template(path: Path | str = TEMPLATE_FILE) -> dict:
    """The committed anatomy template (mm)."""
    return json.loads(Path(path).read_text())


def ccw(c: np.ndarray) -> np.ndarray:
    """The closed curve oriented counter-clockwise."""
    c = np.asarray(c, dtype=float)
    return c if signed_area(c) > 0 else c[::-1].copy()


def perimeter(c: np.ndarray) -> float:
    return float(np.sum(np.linalg.norm(np.roll(c, -1, axis=0) - c, axis=1)))


def periodic_spline(points: np.ndarray, n: int = 1024) -> np.ndarray:
    """A smooth closed curve (n points, CCW, no repeated end point) through ``points``."""
    from scipy.interpolate import CubicSpline

    p = ccw(np.asarray(points, dtype=float))
    closed = np.vstack([p, p[:1]])
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(closed, axis=0), axis=1))])
    cs = CubicSpline(s, closed, bc_type="periodic", axis=0)
    t = np.linspace(0.0, s[-1], n, endpoint=False)
    return cs(t)


def resample_closed(c: np.ndarray, spacing: float, min_points: int = 12) -> np.ndarray:
    """Resample a dense closed curve at (about) uniform arc-length ``spacing``."""
    closed = np.vstack([c, c[:1]])
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(closed, axis=0), axis=1))])
    m = max(min_points, int(np.ceil(s[-1] / spacing)))
    t = np.linspace(0.0, s[-1], m, endpoint=False)
    return np.column_stack([np.interp(t, s, closed[:, 0]), np.interp(t, s, closed[:, 1])])


def resample_arc(c: np.ndarray, spacing: float) -> np.ndarray:
    """Resample an open polyline (end points kept) at about ``spacing``; returns all but the last point."""
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(c, axis=0), axis=1))])
    m = max(2, int(np.ceil(s[-1] / spacing)))
    t = np.linspace(0.0, s[-1], m, endpoint=False)
    return np.column_stack([np.interp(t, s, c[:, 0]), np.interp(t, s, c[:, 1])])


def outward_normals(c: np.ndarray) -> np.ndarray:
    """Unit outward normals of a CCW closed curve (central differences)."""
    t = np.roll(c, -1, axis=0) - np.roll(c, 1, axis=0)
    n = np.column_stack([t[:, 1], -t[:, 0]])
    return n / np.linalg.norm(n, axis=1, keepdims=True)


def ellipse(centre, radii, angle_deg: float = 0.0, n: int = 256, wobble: np.ndarray | None = None) -> np.ndarray:
    """Closed CCW ellipse; ``wobble`` (k,) relative radial Fourier amplitudes (cos, sin pairs) for irregular shapes."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    r = np.ones_like(t)
    if wobble is not None:
        for j, (a, b) in enumerate(np.asarray(wobble).reshape(-1, 2)):
            r = r + a * np.cos((j + 2) * t) + b * np.sin((j + 2) * t)
    x, y = radii[0] * r * np.cos(t), radii[1] * r * np.sin(t)
    a = np.deg2rad(angle_deg)
    ca, sa = np.cos(a), np.sin(a)
    return np.column_stack([centre[0] + ca * x - sa * y, centre[1] + sa * x + ca * y])


def inside(poly: np.ndarray, pts: np.ndarray) -> np.ndarray:
    from matplotlib.path import Path as MplPath

    return MplPath(poly).contains_points(np.atleast_2d(pts))


def distance_to_curve(curve: np.ndarray, pts: np.ndarray, tol: float = 0.25) -> np.ndarray:
    """Distance from points to a closed polyline, to within ``tol`` (nearest point of the polyline
    refined to spacing <= 2 tol; a KD-tree query)."""
    from scipy.spatial import cKDTree

    seg = np.linalg.norm(np.roll(curve, -1, axis=0) - curve, axis=1)
    k = int(np.ceil(seg.max() / (2 * tol)))
    if k > 1:
        s = np.arange(k)[None, :, None] / k
        curve = (curve[:, None, :] + s * (np.roll(curve, -1, axis=0) - curve)[:, None, :]).reshape(-1, 2)
    d, _ = cKDTree(curve).query(np.atleast_2d(pts))
    return np.asarray(d)


def curve_clearance(c1: np.ndarray, c2: np.ndarray) -> float:
    """Signed clearance between two closed curves: min distance, negative if they intersect or nest."""
    d = float(np.min(distance_to_curve(c2, c1)))
    if inside(c2, c1).any() or inside(c1, c2).any():
        return -d
    return d


def containment_clearance(outer: np.ndarray, inner: np.ndarray) -> float:
    """Clearance of ``inner`` inside ``outer``: min distance if every point of inner is inside, else negative."""
    d = float(np.min(distance_to_curve(outer, inner)))
    return d if inside(outer, inner).all() else -d


# =========================================================================================== warps
class SmoothWarp:
    """A smooth random diffeomorphism ``x -> c + A (x - c) + d(x)`` of the plane.

    ``A`` = rotation x anisotropic scale; ``d`` is a sum of ``n_modes`` sinusoids with random
    directions and wavelengths about ``wavelength``; amplitudes are capped so that the Lipschitz
    constant of ``d`` stays below ``lipschitz`` times the smallest singular value of ``A``
    (then the map is injective: no fold, so nested curves stay nested).
    """

    def __init__(self, rng: np.random.Generator, centre, *, amplitude: float, wavelength: float,
                 scale: tuple[float, float] = (1.0, 1.0), rotation_deg: float = 0.0,
                 n_modes: int = 6, lipschitz: float = 0.3):
        self.c = np.asarray(centre, dtype=float)
        sx = rng.uniform(*scale)
        sy = rng.uniform(*scale)
        a = np.deg2rad(rng.uniform(-rotation_deg, rotation_deg))
        R = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        self.A = R @ np.diag([sx, sy])
        ang = rng.uniform(0, 2 * np.pi, n_modes)
        kmag = 2 * np.pi / (wavelength * rng.uniform(0.7, 1.4, n_modes))
        self.k = np.column_stack([np.cos(ang), np.sin(ang)]) * kmag[:, None]
        self.phase = rng.uniform(0, 2 * np.pi, n_modes)
        amp = rng.normal(size=(n_modes, 2)) * amplitude / np.sqrt(n_modes)
        lip = float(np.sum(np.linalg.norm(amp, axis=1) * kmag))
        smin = float(np.linalg.svd(self.A, compute_uv=False).min())
        cap = lipschitz * smin
        if lip > cap:
            amp *= cap / lip
        self.amp = amp

    def __call__(self, pts: np.ndarray) -> np.ndarray:
        p = np.atleast_2d(pts) - self.c
        d = np.sin(p @ self.k.T + self.phase) @ self.amp
        return self.c + p @ self.A.T + d


# =========================================================================================== phantom
@dataclass
class Structure:
    name: str
    label: int
    curve: np.ndarray          # dense closed CCW curve [mm]
    info: dict = field(default_factory=dict)


@dataclass
class AbdomenPhantom:
    """One random axial slice (mm). ``nested``: which structures sit inside which."""

    skin: np.ndarray
    muscle: np.ndarray
    cavity: np.ndarray
    liver: Structure
    organs: list[Structure]           # directly inside the cavity (spleen, spine, aorta, IVC)
    liver_inclusions: list[Structure]  # vessels and lesions, inside the liver
    driver: tuple[int, int]           # [i0, i1) index range (mod len) on ``skin`` for the driver arc
    info: dict = field(default_factory=dict)
    driver2: tuple[int, int] | None = None   # optional second driver arc (same convention)
    support: tuple[int, int] | None = None   # optional posterior arc resting on the table (clamped)

    @property
    def lesions(self) -> list[Structure]:
        return [s for s in self.liver_inclusions if s.label == LESION]

    @property
    def vessels(self) -> list[Structure]:
        return [s for s in self.liver_inclusions if s.label == HEPATIC_VESSEL]

    def bbox(self) -> tuple[float, float, float, float]:
        return (float(self.skin[:, 0].min()), float(self.skin[:, 0].max()),
                float(self.skin[:, 1].min()), float(self.skin[:, 1].max()))


@dataclass(frozen=True)
class AnatomyParams:
    """Ranges of the random anatomy (mm unless said)."""

    fat_anterior: tuple[float, float] = (6.0, 25.0)
    fat_posterior: tuple[float, float] = (8.0, 30.0)
    wall_anterior: tuple[float, float] = (7.0, 13.0)
    wall_posterior: tuple[float, float] = (14.0, 26.0)
    global_scale: tuple[float, float] = (0.92, 1.08)
    global_rotation_deg: float = 4.0
    global_amplitude: float = 6.0
    liver_amplitude: float = 6.0
    liver_scale: tuple[float, float] = (0.93, 1.05)
    vessel_keep: float = 0.8
    vessel_jitter: float = 4.0
    vessel_radius_scale: tuple[float, float] = (0.8, 1.25)
    n_lesions: tuple[int, int] = (0, 3)
    lesion_radius: tuple[float, float] = (5.0, 25.0)
    lesion_aspect: tuple[float, float] = (0.7, 1.0)
    lesion_irregularity: float = 0.08
    clearance: float = 2.0
    driver_angle_deg: tuple[float, float] = (105.0, 150.0)
    driver_width: tuple[float, float] = (100.0, 160.0)
    deform: bool = True
    driver2_angle_deg: tuple[float, float] | None = None   # a second driver (drawn after the first)
    support_width: float | None = None                     # posterior table contact arc length [mm]


def _ellipse_from(spec: dict, n: int = 256) -> np.ndarray:
    return ellipse(spec["centre"], spec["radii"], spec.get("angle_deg", 0.0), n=n)


def _thickness(c: np.ndarray, centre: np.ndarray, ant: float, post: float, rng, ripple: float) -> np.ndarray:
    """Thickness along a closed curve: ``ant`` anteriorly, ``post`` posteriorly, with a small smooth ripple."""
    th = np.arctan2(c[:, 1] - centre[1], c[:, 0] - centre[0])
    w = 0.5 * (1 + np.sin(th))  # 1 anterior, 0 posterior
    t = post + (ant - post) * w
    for m in (2, 3):
        t = t * (1 + ripple * rng.uniform(-1, 1) * np.cos(m * th + rng.uniform(0, 2 * np.pi)))
    return t


def _offset_out(c: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Grow a CCW convex-ish closed curve outward by ``dist`` (per point) and re-smooth."""
    out = c + outward_normals(c) * dist[:, None]
    sub = out[:: max(1, len(out) // 96)]
    return periodic_spline(sub, n=len(c))


def sample_abdomen(rng: np.random.Generator, p: AnatomyParams = AnatomyParams(),
                   template: dict | None = None) -> AbdomenPhantom:
    """Draw one random abdominal slice from the template (the draws happen in the order of the stages)."""
    tpl = template or load_template()
    cavity = periodic_spline(tpl["contours"]["cavity"], n=1024)
    liver_t = periodic_spline(tpl["contours"]["liver"], n=768)
    ell = tpl["ellipses"]
    organs = [Structure("spleen", SPLEEN, periodic_spline(tpl["contours"]["spleen"], n=384)),
              Structure("vertebral body", SPINE, _ellipse_from(ell["spine"])),
              Structure("aorta", GREAT_VESSEL, _ellipse_from(ell["aorta"], 160)),
              Structure("inferior vena cava", GREAT_VESSEL, _ellipse_from(ell["ivc"], 160))]
    info: dict = {}
    vessels_t = _draw_vessels(rng, p, tpl["liver_vessels"])
    liver, vessels_t = _deform_liver(rng, p, liver_t, vessels_t, cavity, organs, info)
    inclusions = _fit_vessels(vessels_t, liver, p.clearance)
    _add_lesions(rng, p, liver, inclusions, info)
    muscle, skin = _grow_wall_and_fat(rng, p, cavity, info)
    if p.deform:  # one global smooth diffeomorphism of the whole slice
        g = SmoothWarp(rng, cavity.mean(axis=0), amplitude=p.global_amplitude, wavelength=160.0,
                       scale=p.global_scale, rotation_deg=p.global_rotation_deg, n_modes=6, lipschitz=0.2)
        skin, muscle, cavity, liver = g(skin), g(muscle), g(cavity), g(liver)
        organs = [Structure(o.name, o.label, g(o.curve), o.info) for o in organs]
        inclusions = [Structure(s.name, s.label, g(s.curve), s.info) for s in inclusions]
        info["global_scale"] = np.linalg.svd(g.A, compute_uv=False).tolist()
    driver = _draw_driver(rng, p, skin, cavity, info)
    driver2 = support = None
    if p.driver2_angle_deg is not None:
        driver2 = _draw_driver(rng, p, skin, cavity, info, angle_deg=p.driver2_angle_deg, key="driver2")
    if p.support_width is not None:  # supine on the table: the posterior midline arc (no draw)
        support = _driver_arc(skin, cavity.mean(axis=0), 270.0, p.support_width)
        info["support_width_mm"] = float(p.support_width)
    return AbdomenPhantom(skin=skin, muscle=muscle, cavity=cavity,
                          liver=Structure("liver", LIVER, liver), organs=organs,
                          liver_inclusions=inclusions, driver=driver, info=info, driver2=driver2, support=support)


def _draw_vessels(rng: np.random.Generator, p: AnatomyParams, specs: list[dict]) -> list[tuple]:
    """The template's intrahepatic vessels kept (required ones always), jittered: (name, kind, required, curve)."""
    vessels_t = []
    for v in specs:
        keep = v.get("required", False) or (not p.deform) or rng.uniform() < p.vessel_keep
        if not keep:
            continue
        if p.deform:
            c = np.asarray(v["centre"], float) + rng.uniform(-p.vessel_jitter, p.vessel_jitter, 2)
            r = np.asarray(v["radii"], float) * rng.uniform(*p.vessel_radius_scale)
        else:
            c, r = np.asarray(v["centre"], float), np.asarray(v["radii"], float)
        vessels_t.append((v["name"], v.get("kind", "vessel"), v.get("required", False),
                          ellipse(c, r, v.get("angle_deg", 0.0), n=96)))
    return vessels_t


def _deform_liver(rng, p: AnatomyParams, liver_t, vessels_t, cavity, organs, info):
    """The liver's own smooth deformation (carrying its vessels), kept clear of the cavity wall and the other
    organs; the amplitude halves after each failed try (six tries, then undeformed)."""
    if not p.deform:
        return liver_t, vessels_t
    amp, ok = p.liver_amplitude, False
    for _ in range(6):
        w = SmoothWarp(rng, liver_t.mean(axis=0), amplitude=amp, wavelength=90.0, scale=p.liver_scale,
                       rotation_deg=3.0, n_modes=5, lipschitz=0.25)
        cand = w(liver_t)
        if (containment_clearance(cavity, cand) >= p.clearance
                and all(curve_clearance(cand, o.curve) >= p.clearance for o in organs)):
            liver_t, ok = cand, True
            vessels_t = [(n, k, req, w(cv)) for n, k, req, cv in vessels_t]
            break
        amp *= 0.5
    info["liver_deformed"] = ok
    return liver_t, vessels_t


def _fit_vessels(vessels_t, liver, clear: float) -> list[Structure]:
    """Vessels that sit inside the liver and apart from each other (required ones shrunk until they fit)."""
    inclusions: list[Structure] = []

    def fits(cv):
        return containment_clearance(liver, cv) >= clear and all(
            curve_clearance(cv, s.curve) >= clear for s in inclusions)

    for name, kind, req, cv in vessels_t:
        good = fits(cv)
        if not good and req:
            cen = cv.mean(axis=0)
            for _ in range(4):
                cv = cen + 0.8 * (cv - cen)
                good = fits(cv)
                if good:
                    break
        if good:
            inclusions.append(Structure(name, HEPATIC_VESSEL, cv, {"kind": kind}))
    return inclusions


def _add_lesions(rng, p: AnatomyParams, liver, inclusions: list[Structure], info: dict) -> None:
    """Lesions inside the liver, placed by rejection (200 tries each), appended to ``inclusions``."""
    clear = p.clearance
    n_les = int(rng.integers(p.n_lesions[0], p.n_lesions[1] + 1))
    lo, hi = liver.min(axis=0), liver.max(axis=0)
    placed = 0
    for j in range(n_les):
        for _ in range(200):
            r = rng.uniform(*p.lesion_radius)
            radii = np.array([r, r * rng.uniform(*p.lesion_aspect)])
            cen = rng.uniform(lo, hi)
            if not inside(liver, cen[None])[0]:
                continue
            if distance_to_curve(liver, cen[None])[0] < 1.2 * r + clear:
                continue
            wob = rng.uniform(-p.lesion_irregularity, p.lesion_irregularity, 4)
            cv = ellipse(cen, radii, rng.uniform(0, 180), n=160, wobble=wob)
            if containment_clearance(liver, cv) < clear:
                continue
            if any(curve_clearance(cv, s.curve) < clear for s in inclusions):
                continue
            inclusions.append(Structure(f"lesion {j}", LESION, cv,
                                        {"centre_mm": cen.tolist(), "radii_mm": radii.tolist()}))
            placed += 1
            break
    info["n_lesions_requested"] = n_les
    info["n_lesions"] = placed


def _grow_wall_and_fat(rng, p: AnatomyParams, cavity, info: dict) -> tuple[np.ndarray, np.ndarray]:
    """Abdominal wall muscle and subcutaneous fat grown outward from the cavity: (muscle, skin) curves."""
    cc = cavity.mean(axis=0)
    if p.deform:
        tw = _thickness(cavity, cc, rng.uniform(*p.wall_anterior), rng.uniform(*p.wall_posterior), rng, 0.08)
    else:
        tw = _thickness(cavity, cc, np.mean(p.wall_anterior), np.mean(p.wall_posterior), rng, 0.0)
    muscle = _offset_out(cavity, tw)
    if p.deform:
        tf = _thickness(muscle, cc, rng.uniform(*p.fat_anterior), rng.uniform(*p.fat_posterior), rng, 0.15)
    else:
        tf = _thickness(muscle, cc, np.mean(p.fat_anterior), np.mean(p.fat_posterior), rng, 0.0)
    info["wall_thickness_mm"] = [float(tw.min()), float(tw.max())]
    info["fat_thickness_mm"] = [float(tf.min()), float(tf.max())]
    return muscle, _offset_out(muscle, tf)


def _draw_driver(rng, p: AnatomyParams, skin, cavity, info: dict, angle_deg: tuple[float, float] | None = None,
                 key: str = "driver") -> tuple[int, int]:
    """A driver arc on the skin (angle about the cavity centre: 90 = anterior midline, 180 = the patient's
    right, where the liver lies); ``angle_deg`` defaults to ``p.driver_angle_deg``."""
    rng_ang = p.driver_angle_deg if angle_deg is None else angle_deg
    if p.deform:
        ang = rng.uniform(*rng_ang)
        wd = rng.uniform(*p.driver_width)
    else:
        ang, wd = float(np.mean(rng_ang)), float(np.mean(p.driver_width))
    info[f"{key}_angle_deg"] = float(ang)
    info[f"{key}_width_mm"] = float(wd)
    return _driver_arc(skin, cavity.mean(axis=0), ang, wd)


def _driver_arc(skin: np.ndarray, centre: np.ndarray, angle_deg: float, width: float) -> tuple[int, int]:
    """Index range [i0, i1) of the skin arc of length ``width`` centred where the ray from ``centre`` at
    ``angle_deg`` leaves the body."""
    n = len(skin)
    th = np.arctan2(skin[:, 1] - centre[1], skin[:, 0] - centre[0])
    d = np.angle(np.exp(1j * (th - np.deg2rad(angle_deg))))
    i_c = int(np.argmin(np.abs(d)))
    seg = np.linalg.norm(np.roll(skin, -1, axis=0) - skin, axis=1)
    half = 0.5 * min(width, 0.45 * seg.sum())
    i0, acc = i_c, 0.0
    while acc < half:
        i0 -= 1
        acc += seg[i0 % n]
    i1, acc = i_c, 0.0
    while acc < half:
        acc += seg[i1 % n]
        i1 += 1
    return (i0 % n, i1 % n)


# =========================================================================================== meshing
@dataclass
class Loop:
    """A closed polygonal loop for the mesher: vertices (m, 2) [m], target size [m] per vertex, and a
    facet tag per edge (edge i joins vertex i and i+1; 0 = interior interface, untagged)."""

    points: np.ndarray
    size: np.ndarray
    edge_tags: np.ndarray


def loop_from_curve(curve_m: np.ndarray, h: float, breaks: Sequence[tuple[int, int, int]] = (),
                    default_tag: int = 0) -> Loop:
    """Resample a dense closed curve (metres) into a loop with spacing ``h``.

    ``breaks``: (i0, i1, tag) index ranges on the dense curve whose edges get ``tag`` (their end
    points become loop vertices); the rest gets ``default_tag``.
    """
    n = len(curve_m)
    if not breaks:
        pts = resample_closed(curve_m, h)
        return Loop(pts, np.full(len(pts), h), np.full(len(pts), default_tag, dtype=np.int32))
    # split the closed curve at the break points, resample each arc
    cuts = sorted({b[0] % n for b in breaks} | {b[1] % n for b in breaks})
    pts_all, tags_all = [], []
    for a, b in zip(cuts, cuts[1:] + [cuts[0] + n]):
        idx = np.arange(a, b + 1) % n
        arc = curve_m[idx]
        seg = resample_arc(arc, h)
        tag = default_tag
        for i0, i1, t in breaks:
            i0m, i1m = i0 % n, i1 % n
            length = (i1m - i0m) % n
            if (a - i0m) % n < length:
                tag = t
        pts_all.append(seg)
        tags_all.append(np.full(len(seg), tag, dtype=np.int32))
    pts = np.vstack(pts_all)
    return Loop(pts, np.full(len(pts), h), np.concatenate(tags_all))


@dataclass
class MeshResult:
    mesh: object               # dolfinx.mesh.Mesh
    cell_tags: object          # dolfinx MeshTags (region label per cell)
    facet_tags: object         # dolfinx MeshTags (boundary facet tag)
    n_nodes: int
    n_triangles: int


def _to_dolfinx(gmsh) -> MeshResult:
    from mpi4py import MPI

    from dolfinx.io import gmsh as dgmsh

    nodes = gmsh.model.mesh.getNodes()[0].size
    types, tags, _ = gmsh.model.mesh.getElements(2)
    ntri = int(sum(t.size for t in tags))
    md = dgmsh.model_to_mesh(gmsh.model, MPI.COMM_SELF, 0, gdim=2)
    return MeshResult(md.mesh, md.cell_tags, md.facet_tags, int(nodes), ntri)


def mesh_loops(loops: Sequence[Loop], regions: Sequence[tuple[int, int, Sequence[int]]],
               algorithm: int = 6) -> MeshResult:
    """Mesh nested polygonal loops: ``regions`` = (label, outer loop index, hole loop indices).

    Loops are shared between the region they bound and the region they are a hole of, so the mesh
    conforms to every interface. Tagged loop edges become facet physical groups.
    """
    with gmsh_session(f"pb_abdomen_{next(_gmsh_counter)}", fresh=True) as gmsh:
        geo = gmsh.model.geo
        loop_tags, lines_by_tag = [], {}
        for lp in loops:
            pt = [geo.addPoint(float(x), float(y), 0.0, float(h)) for (x, y), h in zip(lp.points, lp.size)]
            m = len(pt)
            lines = [geo.addLine(pt[i], pt[(i + 1) % m]) for i in range(m)]
            for ln, t in zip(lines, lp.edge_tags):
                if t:
                    lines_by_tag.setdefault(int(t), []).append(ln)
            loop_tags.append(geo.addCurveLoop(lines))
        surf_by_label: dict[int, list[int]] = {}
        for label, outer, holes in regions:
            s = geo.addPlaneSurface([loop_tags[outer]] + [loop_tags[h] for h in holes])
            surf_by_label.setdefault(int(label), []).append(s)
        geo.synchronize()
        for label, ss in surf_by_label.items():
            gmsh.model.addPhysicalGroup(2, ss, tag=label)
        for t, ls in lines_by_tag.items():
            gmsh.model.addPhysicalGroup(1, ls, tag=t)
        gmsh.option.setNumber("Mesh.Algorithm", algorithm)
        # no Laplacian smoothing pass: it costs a sizeable share of the meshing time for a small gain in quality
        gmsh.option.setNumber("Mesh.Smoothing", 0)
        gmsh.option.setNumber("Mesh.MeshSizeFromPoints", 1)
        gmsh.option.setNumber("Mesh.MeshSizeExtendFromBoundary", 1)
        gmsh.option.setNumber("Mesh.MeshSizeFromCurvature", 0)
        gmsh.option.setNumber("Mesh.ElementOrder", 1)
        gmsh.model.mesh.generate(2)
        return _to_dolfinx(gmsh)


def mesh_abdomen(ph: AbdomenPhantom, h: dict[int, float]) -> MeshResult:
    """Mesh a phantom with element size ``h[label]`` [m] per region (interfaces get the smaller one).

    Boundary tags: ``FACET_DRIVER`` on the driver arc (``FACET_DRIVER2`` the second one), ``FACET_SUPPORT``
    on the table contact (if any),
    ``FACET_FREE`` on the rest of the skin.
    """
    mm = 1e-3
    loops: list[Loop] = []
    regions: list[tuple[int, int, list[int]]] = []

    def hh(*labels):
        return min(h[lab] for lab in labels)

    breaks = [(*ph.driver, FACET_DRIVER)]
    breaks += [(*ph.driver2, FACET_DRIVER2)] if ph.driver2 is not None else []
    breaks += [(*ph.support, FACET_SUPPORT)] if ph.support is not None else []
    loops.append(loop_from_curve(ph.skin * mm, hh(FAT), breaks=breaks, default_tag=FACET_FREE))
    loops.append(loop_from_curve(ph.muscle * mm, hh(FAT, WALL)))
    loops.append(loop_from_curve(ph.cavity * mm, hh(WALL, VISCERA)))
    regions.append((FAT, 0, [1]))
    regions.append((WALL, 1, [2]))
    viscera_holes = []
    loops.append(loop_from_curve(ph.liver.curve * mm, hh(VISCERA, LIVER)))
    i_liver = len(loops) - 1
    viscera_holes.append(i_liver)
    liver_holes = []
    for s in ph.liver_inclusions:
        loops.append(loop_from_curve(s.curve * mm, hh(LIVER, s.label)))
        liver_holes.append(len(loops) - 1)
        regions.append((s.label, len(loops) - 1, []))
    regions.append((LIVER, i_liver, liver_holes))
    for o in ph.organs:
        loops.append(loop_from_curve(o.curve * mm, hh(VISCERA, o.label)))
        viscera_holes.append(len(loops) - 1)
        regions.append((o.label, len(loops) - 1, []))
    regions.append((VISCERA, 2, viscera_holes))
    return mesh_loops(loops, regions)


def mesh_box(width: float, height: float, h: float, label: int = LIVER,
             tags: tuple[int, int, int, int] = (FACET_ABSORB, FACET_FREE, FACET_DRIVER, FACET_FREE)) -> MeshResult:
    """Rectangle [-w/2, w/2] x [-H/2, H/2] [m]; ``tags`` = (bottom, right, top, left) facet tags."""
    corners = np.array([[-width / 2, -height / 2], [width / 2, -height / 2],
                        [width / 2, height / 2], [-width / 2, height / 2]])
    pts, tg = [], []
    for i in range(4):
        a, b = corners[i], corners[(i + 1) % 4]
        m = max(1, int(np.ceil(np.linalg.norm(b - a) / h)))
        s = np.linspace(0, 1, m, endpoint=False)[:, None]
        pts.append(a + s * (b - a))
        tg.append(np.full(m, tags[i], dtype=np.int32))
    P = np.vstack(pts)
    return mesh_loops([Loop(P, np.full(len(P), h), np.concatenate(tg))], [(label, 0, [])])


def mesh_layered_box(width: float, depths: Sequence[float], h: float | Sequence[float],
                     labels: Sequence[int] | None = None,
                     top_tag: int = FACET_DRIVER, bottom_tag: int = FACET_ABSORB,
                     side_tag: int = FACET_FREE) -> MeshResult:
    """A stack of horizontal layers (top first) of the given ``depths`` [m], x in [-w/2, w/2], top at y = 0.

    Region label of layer j is ``labels[j]`` (default 1, 2, ...); planar interfaces conform.
    """
    nl = len(depths)
    hs = [float(h)] * nl if np.isscalar(h) else [float(x) for x in h]
    labels = list(labels) if labels is not None else list(range(1, nl + 1))
    with gmsh_session(f"pb_abdomen_{next(_gmsh_counter)}", fresh=True) as gmsh:
        geo = gmsh.model.geo
        ys = np.concatenate([[0.0], -np.cumsum(depths)])
        hy = [hs[0]] + [min(hs[j], hs[j + 1]) for j in range(nl - 1)] + [hs[-1]]
        left = [geo.addPoint(-width / 2, y, 0, s) for y, s in zip(ys, hy)]
        right = [geo.addPoint(width / 2, y, 0, s) for y, s in zip(ys, hy)]
        horiz = [geo.addLine(left[j], right[j]) for j in range(nl + 1)]
        lsides = [geo.addLine(left[j + 1], left[j]) for j in range(nl)]
        rsides = [geo.addLine(right[j], right[j + 1]) for j in range(nl)]
        surfs = []
        for j in range(nl):
            # counter-clockwise: bottom (left -> right), up the right side, top (right -> left), down the left
            cl = geo.addCurveLoop([horiz[j + 1], -rsides[j], -horiz[j], -lsides[j]])
            surfs.append(geo.addPlaneSurface([cl]))
        geo.synchronize()
        for lab in sorted(set(labels)):
            gmsh.model.addPhysicalGroup(2, [surfs[j] for j in range(nl) if labels[j] == lab], tag=lab)
        gmsh.model.addPhysicalGroup(1, [horiz[0]], tag=top_tag)
        gmsh.model.addPhysicalGroup(1, [horiz[-1]], tag=bottom_tag)
        gmsh.model.addPhysicalGroup(1, lsides + rsides, tag=side_tag)
        gmsh.option.setNumber("Mesh.Algorithm", 6)
        gmsh.option.setNumber("Mesh.MeshSizeFromPoints", 1)
        gmsh.option.setNumber("Mesh.MeshSizeExtendFromBoundary", 1)
        gmsh.option.setNumber("Mesh.MeshSizeFromCurvature", 0)
        gmsh.model.mesh.generate(2)
        return _to_dolfinx(gmsh)


def mesh_annulus(r_inner: float, r_outer: float, h: float, label: int = LIVER) -> MeshResult:
    """Annulus centred at the origin [m]; facet tags ``FACET_INNER`` (r = r_inner) and ``FACET_FREE`` (outer)."""
    n_o = max(24, int(np.ceil(2 * np.pi * r_outer / h)))
    n_i = max(16, int(np.ceil(2 * np.pi * r_inner / h)))
    to = np.linspace(0, 2 * np.pi, n_o, endpoint=False)
    ti = np.linspace(0, 2 * np.pi, n_i, endpoint=False)
    outer = Loop(np.column_stack([r_outer * np.cos(to), r_outer * np.sin(to)]), np.full(n_o, h),
                 np.full(n_o, FACET_FREE, dtype=np.int32))
    inner = Loop(np.column_stack([r_inner * np.cos(ti), r_inner * np.sin(ti)]), np.full(n_i, h),
                 np.full(n_i, FACET_INNER, dtype=np.int32))
    return mesh_loops([outer, inner], [(label, 0, [1])])


# =========================================================================================== breathing
# Labels added by the breathing phantom (the liver-mre labels above are unchanged).
RIB, SLIDING_LAYER = 10, 11


def draw_ribs(rng: np.random.Generator, ph: AbdomenPhantom, angles_deg: Sequence[float] = (160, 185, 210, 235,
              305, 330, 355, 20), keep: float = 0.8, radius: tuple[float, float] = (3.5, 6.0),
              clearance: float = 1.5) -> list[Structure]:
    """Rib cross-sections: small ellipses (mm) in the abdominal wall at the given angles about the cavity centre
    (90 anterior, 180 the patient's right, 270 posterior), each kept with probability ``keep``, centred midway
    through the wall, shrunk until it sits at least ``clearance`` inside the wall; a rib that cannot fit is left
    out."""
    c = ph.cavity.mean(axis=0)
    ribs = []
    for a in angles_deg:
        if rng.uniform() >= keep:
            continue
        r0, aspect, tilt = rng.uniform(*radius), rng.uniform(0.5, 0.8), rng.uniform(-20.0, 20.0)
        d = np.array([np.cos(np.deg2rad(a)), np.sin(np.deg2rad(a))])
        inner = _ray_hit(ph.cavity, c, d)
        outer = _ray_hit(ph.muscle, c, d)
        centre = c + d * 0.5 * (inner + outer)
        for _ in range(4):
            cv = ellipse(centre, (r0, r0 * aspect), a + 90.0 + tilt, n=64)
            if containment_clearance(ph.muscle, cv) >= clearance and min(distance_to_curve(ph.cavity, cv)) >= clearance \
                    and not inside(ph.cavity, cv).any():
                ribs.append(Structure(f"rib {len(ribs)}", RIB, cv, {"angle_deg": float(a)}))
                break
            r0 *= 0.75
    return ribs


def _ray_hit(curve: np.ndarray, c: np.ndarray, d: np.ndarray) -> float:
    """Distance from ``c`` along unit ``d`` to the closed curve (the curve point nearest to the ray, outward)."""
    rel = curve - c
    along = rel @ d
    perp = np.abs(rel @ np.array([-d[1], d[0]]))
    perp[along <= 0] = np.inf
    return float(along[int(np.argmin(perp))])


def inset_curve(c: np.ndarray, depth: float) -> np.ndarray:
    """The closed CCW curve moved inward by ``depth`` (mm) along its normals and re-smoothed."""
    return _offset_out(c, -np.full(len(c), float(depth)))


def mesh_abdomen_sliding(ph: AbdomenPhantom, h: dict[int, float], ribs: Sequence[Structure],
                         layer_inner: np.ndarray) -> MeshResult:
    """Mesh a phantom for breathing motion: as :func:`mesh_abdomen`, plus the ribs (holes of the wall, label
    ``RIB``) and a thin layer between the cavity curve and ``layer_inner`` (label ``SLIDING_LAYER``) that holds
    the cavity contents. Every skin facet is tagged ``FACET_FREE``. ``h[label]`` [m] per region."""
    mm = 1e-3

    def hh(*labels):
        return min(h[lab] for lab in labels)

    loops = [loop_from_curve(ph.skin * mm, hh(FAT), default_tag=FACET_FREE),
             loop_from_curve(ph.muscle * mm, hh(FAT, WALL)),
             loop_from_curve(ph.cavity * mm, hh(WALL, SLIDING_LAYER)),
             loop_from_curve(layer_inner * mm, hh(SLIDING_LAYER, VISCERA))]
    rib_loops = []
    for r in ribs:
        loops.append(loop_from_curve(r.curve * mm, hh(WALL, RIB)))
        rib_loops.append(len(loops) - 1)
    regions = [(FAT, 0, [1]), (WALL, 1, [2] + rib_loops), (SLIDING_LAYER, 2, [3])]
    regions += [(RIB, i, []) for i in rib_loops]
    loops.append(loop_from_curve(ph.liver.curve * mm, hh(VISCERA, LIVER)))
    i_liver, viscera_holes, liver_holes = len(loops) - 1, [len(loops) - 1], []
    for s in ph.liver_inclusions:
        loops.append(loop_from_curve(s.curve * mm, hh(LIVER, s.label)))
        liver_holes.append(len(loops) - 1)
        regions.append((s.label, len(loops) - 1, []))
    regions.append((LIVER, i_liver, liver_holes))
    for o in ph.organs:
        loops.append(loop_from_curve(o.curve * mm, hh(VISCERA, o.label)))
        viscera_holes.append(len(loops) - 1)
        regions.append((o.label, len(loops) - 1, []))
    regions.append((VISCERA, 3, viscera_holes))
    return mesh_loops(loops, regions)
