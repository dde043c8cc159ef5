"""A clean cast impeller seen from above: geometry, surface, nuisances and the camera."""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

BACKGROUND, RIM, PLATE, VANE, HUB, BORE = range(6)
SURFACE_ZONES = (RIM, PLATE, VANE, HUB)

# Per-zone look-up tables, indexed by zone id (background, rim, plate, vane, hub, bore).
_HEIGHT = np.array([0.0, 12.0, 6.0, 12.0, 15.0, -10.0], np.float32)
_ALBEDO = np.array([0.16, 1.0, 0.82, 0.98, 1.04, 0.22], np.float32)
_ROUGHNESS = np.array([0.5, 0.25, 1.0, 0.6, 0.3, 0.4], np.float32)
_GLOSS = np.array([0.02, 0.35, 0.10, 0.16, 0.40, 0.02], np.float32)
_MACHINED = np.array([0.0, 1.0, 0.0, 0.0, 1.0, 0.0], np.float32)


@dataclass
class Surface:
    """What the defect painters edit: height (pixels), albedo and specular gloss."""

    height: np.ndarray
    albedo: np.ndarray
    gloss: np.ndarray

    def copy(self) -> Surface:
        return Surface(self.height.copy(), self.albedo.copy(), self.gloss.copy())


@dataclass(frozen=True)
class Geometry:
    """Where the part lies in the image; radii in pixels, zone is an HxW map of zone ids."""

    size: int
    cx: float
    cy: float
    radius: float
    rim_r: float
    hub_r: float
    bore_r: float
    rr: np.ndarray
    theta: np.ndarray
    zone: np.ndarray

    @property
    def scale(self) -> float:
        """Pixel scale relative to the 300x300 images the sizes were tuned on."""
        return self.size / 300.0

    @property
    def heights(self) -> np.ndarray:
        return _HEIGHT * self.scale


@dataclass(frozen=True)
class Camera:
    """Lighting, optics and sensor; drawn with the part so both renders share them."""

    light: np.ndarray
    half: np.ndarray
    shininess: float
    ambient: float
    illumination: np.ndarray
    blur_sigma: float
    gain: float
    gamma: float
    black: float
    noise: np.ndarray


@dataclass(frozen=True)
class Scene:
    geometry: Geometry
    surface: Surface
    camera: Camera


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian-blurred white noise rescaled to unit standard deviation."""
    # Wide blurs are drawn on a coarser grid and enlarged: same look, a fraction of the cost.
    step = max(int(sigma / 2), 1)
    coarse = (-(-shape[0] // step), -(-shape[1] // step))
    field = cv2.GaussianBlur(rng.standard_normal(coarse, dtype=np.float32), (0, 0), sigma / step)
    if step > 1:
        field = cv2.resize(field, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    return field / max(float(field.std()), 1e-6)


def _radial_profile(rng: np.random.Generator, rr: np.ndarray, length: int, sigma: float):
    """A random 1-D function of the radius: the reflectance bands of a turned face."""
    bins = cv2.GaussianBlur(rng.standard_normal((1, length + 8)).astype(np.float32), (0, 0), sigma)
    bins = bins.ravel() / max(float(bins.std()), 1e-6)
    return np.interp(rr, np.arange(bins.size, dtype=np.float32), bins).astype(np.float32)


def _geometry(rng: np.random.Generator, size: int) -> Geometry:
    radius = size * rng.uniform(0.40, 0.46)
    cx = size / 2 + rng.uniform(-0.035, 0.035) * size
    cy = size / 2 + rng.uniform(-0.035, 0.035) * size
    rotation = rng.uniform(0, 2 * np.pi)
    rim_r = radius * rng.uniform(0.80, 0.87)
    hub_r = radius * rng.uniform(0.28, 0.34)
    bore_r = radius * rng.uniform(0.10, 0.14)

    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    dx, dy = xx - cx, yy - cy
    rr = np.hypot(dx, dy)
    theta = np.arctan2(dy, dx)

    n_vanes = int(rng.integers(5, 9))
    curl = rng.uniform(0.5, 1.1) * rng.choice([-1.0, 1.0])
    spread = np.clip((rr - hub_r) / (rim_r - hub_r), 0, 1)
    half_width = radius * rng.uniform(0.03, 0.045) * (1 + 0.6 * spread)
    phase = (theta - rotation - curl * np.log(np.maximum(rr, 1.0) / hub_r)) * n_vanes / (2 * np.pi)
    vane_dist = np.abs(phase - np.round(phase)) * (2 * np.pi / n_vanes) * rr

    zone = np.full((size, size), BACKGROUND, np.uint8)
    zone[rr < radius] = RIM
    zone[rr < rim_r] = PLATE
    zone[(rr < rim_r) & (vane_dist < half_width)] = VANE
    zone[rr < hub_r] = HUB
    zone[rr < bore_r] = BORE

    # A keyway notch in the bore and, on most parts, balance holes through the hub.
    key_angle = rotation + rng.uniform(0, 2 * np.pi)
    along = dx * np.cos(key_angle) + dy * np.sin(key_angle)
    across = -dx * np.sin(key_angle) + dy * np.cos(key_angle)
    zone[(np.abs(across) < bore_r * 0.22) & (along > 0) & (along < bore_r * 1.2)] = BORE
    if rng.random() < 0.6:
        n_holes = int(rng.integers(4, 7))
        ring = (bore_r + hub_r) / 2
        hole_r = radius * rng.uniform(0.025, 0.035)
        for k in range(n_holes):
            angle = rotation + 2 * np.pi * k / n_holes
            window, cover = _blob(
                size, cx + ring * np.cos(angle), cy + ring * np.sin(angle), hole_r
            )
            zone[window][cover > 0.5] = BORE
    return Geometry(size, cx, cy, radius, rim_r, hub_r, bore_r, rr, theta, zone)


def _surface(rng: np.random.Generator, geo: Geometry) -> Surface:
    s, shape, zone = geo.scale, (geo.size, geo.size), geo.zone
    height = cv2.GaussianBlur(geo.heights[zone], (0, 0), 1.1 * s)

    fine = smooth_noise(rng, shape, 0.8 * s)
    medium = smooth_noise(rng, shape, 2.5 * s)
    coarse = smooth_noise(rng, shape, 14 * s)
    rough = cv2.GaussianBlur(_ROUGHNESS[zone], (0, 0), 1.0 * s)
    machined = cv2.GaussianBlur(_MACHINED[zone], (0, 0), 0.7 * s)
    height += rough * (0.35 * fine + 0.5 * medium) * s

    period = rng.uniform(2.2, 3.5) * s
    height += machined * 0.12 * s * np.sin(2 * np.pi * geo.rr / period + rng.uniform(0, 6.3))
    bands = _radial_profile(rng, geo.rr, geo.size, rng.uniform(1.0, 3.0) * s)

    base = rng.uniform(0.50, 0.64)
    albedo = base * cv2.GaussianBlur(_ALBEDO[zone], (0, 0), 0.8 * s)
    albedo *= 1 + 0.07 * coarse + 0.06 * rough * fine + machined * 0.05 * bands
    background = zone == BACKGROUND
    albedo[background] = (0.16 * (1 + 0.12 * coarse + 0.05 * fine))[background]
    gloss = cv2.GaussianBlur(_GLOSS[zone], (0, 0), 0.8 * s) * rng.uniform(0.7, 1.3)
    surface = Surface(height.astype(np.float32), albedo.astype(np.float32), gloss)
    _add_nuisances(rng, geo, surface)
    return surface


def _blob(size: int, x: float, y: float, r: float) -> tuple[tuple[slice, slice], np.ndarray]:
    """Anti-aliased disk coverage in a small window around (x, y)."""
    pad = int(np.ceil(r + 2))
    y0, y1 = max(int(y) - pad, 0), min(int(y) + pad + 1, size)
    x0, x1 = max(int(x) - pad, 0), min(int(x) + pad + 1, size)
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    cover = np.clip(r + 0.5 - np.hypot(xx - x, yy - y), 0, 1)
    return (slice(y0, y1), slice(x0, x1)), cover


def random_point(rng: np.random.Generator, allowed: np.ndarray) -> tuple[float, float]:
    """A random (x, y) inside a boolean map, jittered within its pixel."""
    flat = np.flatnonzero(allowed)
    y, x = divmod(int(flat[rng.integers(flat.size)]), allowed.shape[1])
    return x + rng.random() - 0.5, y + rng.random() - 0.5


def draw_path(shape: tuple[int, int], points: np.ndarray, thickness: int = 1) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] of a polyline through (x, y) points."""
    canvas = np.zeros(shape, np.uint8)
    pts = np.round(points * 16).astype(np.int32).reshape(-1, 1, 2)
    cv2.polylines(canvas, [pts], False, 255, thickness, cv2.LINE_AA, shift=4)
    return canvas.astype(np.float32) / 255.0


def wavy_path(rng: np.random.Generator, x, y, length, bend, n=24) -> np.ndarray:
    """Points along a gently bent stroke of the given length starting at (x, y)."""
    angle = rng.uniform(0, 2 * np.pi)
    t = np.linspace(0, 1, n)
    direction = np.array([np.cos(angle), np.sin(angle)])
    normal = np.array([-direction[1], direction[0]])
    wiggle = bend * np.sin(np.pi * t * rng.uniform(0.7, 1.6) + rng.uniform(0, 0.5))
    return np.array([x, y]) + np.outer(t * length, direction) + np.outer(wiggle, normal)


def _add_nuisances(rng: np.random.Generator, geo: Geometry, surface: Surface) -> None:
    """Dust, glints, tool marks and lint: harmless marks that a good part may carry."""
    s, on_part = geo.scale, geo.zone != BACKGROUND
    for _ in range(rng.poisson(5)):
        x, y = random_point(rng, on_part)
        window, cover = _blob(geo.size, x, y, rng.uniform(0.5, 1.4) * s)
        if rng.random() < 0.7:
            surface.albedo[window] *= 1 - rng.uniform(0.15, 0.45) * cover
        else:
            surface.albedo[window] += rng.uniform(0.08, 0.2) * cover
    for _ in range(rng.poisson(2)):
        x, y = random_point(rng, on_part)
        window, cover = _blob(geo.size, x, y, rng.uniform(0.8, 1.8) * s)
        surface.albedo[window] += rng.uniform(0.15, 0.4) * cover**2
    machined = np.isin(geo.zone, (RIM, HUB))
    for _ in range(rng.poisson(1.5)):
        x, y = random_point(rng, machined)
        r0 = float(np.hypot(x - geo.cx, y - geo.cy))
        start = np.arctan2(y - geo.cy, x - geo.cx)
        arc = start + np.linspace(0, rng.uniform(0.3, 1.5), 40)
        points = np.stack([geo.cx + r0 * np.cos(arc), geo.cy + r0 * np.sin(arc)], axis=1)
        mark = draw_path(geo.rr.shape, points) * machined
        surface.albedo *= 1 + rng.choice([-1, 1]) * rng.uniform(0.03, 0.07) * mark
    if rng.random() < 0.2:
        x, y = random_point(rng, on_part)
        points = wavy_path(rng, x, y, rng.uniform(12, 35) * s, rng.uniform(1, 5) * s)
        surface.albedo *= 1 - rng.uniform(0.08, 0.15) * draw_path(geo.rr.shape, points)


def _camera(rng: np.random.Generator, geo: Geometry) -> Camera:
    size, s = geo.size, geo.scale
    azimuth = rng.uniform(0, 2 * np.pi)
    tilt = np.deg2rad(rng.uniform(25, 50))
    light = np.array([np.cos(azimuth) * np.sin(tilt), np.sin(azimuth) * np.sin(tilt), np.cos(tilt)])
    half = light + np.array([0.0, 0.0, 1.0])
    half /= np.linalg.norm(half)

    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    gx, gy = rng.uniform(-0.25, 0.25, size=2)
    vignette = rng.uniform(0.0, 0.5)
    illumination = (1 + gx * xx + gy * yy) * (1 - vignette * (xx**2 + yy**2))
    noise_sigma = rng.uniform(1.5, 3.5)
    return Camera(
        light=light.astype(np.float32),
        half=half.astype(np.float32),
        shininess=float(rng.uniform(12, 40)),
        ambient=float(rng.uniform(0.18, 0.32)),
        illumination=illumination.astype(np.float32),
        blur_sigma=float(rng.uniform(0.5, 0.9) * s),
        gain=1.0,
        gamma=float(rng.uniform(0.85, 1.15)),
        black=float(rng.uniform(4, 16)),
        noise=(rng.standard_normal((size, size), dtype=np.float32) * noise_sigma),
    )


def build_scene(rng: np.random.Generator, size: int) -> Scene:
    """Draw one defect-free part, its nuisances and the camera from ``rng``."""
    geo = _geometry(rng, size)
    surface = _surface(rng, geo)
    camera = _camera(rng, geo)
    # Exposure is set like a camera's auto-exposure: the brightest metal lands below white.
    metered = expose(surface, geo, replace(camera, gain=1.0, black=0.0))
    highlight = float(np.percentile(metered[geo.zone != BACKGROUND], 99))
    gain = (rng.uniform(190, 240) - camera.black) / max(highlight, 1.0)
    return Scene(geo, surface, replace(camera, gain=gain))


def expose(surface: Surface, geo: Geometry, camera: Camera) -> np.ndarray:
    """Grey levels (float, before sensor noise) the camera records from ``surface``."""
    gy, gx = np.gradient(surface.height)
    inv_norm = 1.0 / np.sqrt(gx * gx + gy * gy + 1.0)
    lx, ly, lz = camera.light
    diffuse = np.clip((lz - gx * lx - gy * ly) * inv_norm, 0, None)
    hx, hy, hz = camera.half
    specular = np.clip((hz - gx * hx - gy * hy) * inv_norm, 0, 1) ** camera.shininess
    cavity = cv2.GaussianBlur(surface.height, (0, 0), 4 * geo.scale) - surface.height
    occlusion = np.clip(1 - 0.05 / geo.scale * np.clip(cavity, 0, None), 0.35, 1)
    radiance = surface.albedo * (camera.ambient + diffuse) * occlusion + surface.gloss * specular
    radiance = cv2.GaussianBlur(radiance * camera.illumination, (0, 0), camera.blur_sigma)
    return camera.black + 255.0 * camera.gain * np.clip(radiance, 0, None) ** camera.gamma


def develop(grey: np.ndarray, camera: Camera) -> np.ndarray:
    """Add the sensor noise and quantise to 8 bits."""
    return np.clip(np.rint(grey + camera.noise), 0, 255).astype(np.uint8)
