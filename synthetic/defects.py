"""Casting defects painted onto an impeller surface; ``contrast`` scales how visible they are.

Each painter edits the surface in place and draws only from its own ``rng``, so the part it
lands on is the same part that is rendered without it.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from synthetic.impeller import (
    BACKGROUND,
    BORE,
    HUB,
    PLATE,
    RIM,
    SURFACE_ZONES,
    VANE,
    Geometry,
    Surface,
    draw_path,
    random_point,
    wavy_path,
)

# Defect dimensions relative to the part: tuned (with casting.DEFAULT_CONTRAST) so the demo
# classifier lands between 97 and 99.7 % test accuracy rather than at chance (smaller) or at
# 100 % after one epoch (larger). Scratches are at least two pixels wide at 300 px so they
# survive the resize to 160 px; at one pixel they were the defect the classifier missed most.
SIZE = 2.2


def _window(geo: Geometry, x: float, y: float, pad: float) -> tuple[slice, slice]:
    pad = int(np.ceil(pad))

    def span(c: float) -> slice:
        # Clamped to the image, and empty (never negative) when the centre lies off it.
        start = min(max(int(c) - pad, 0), geo.size)
        return slice(start, max(min(int(c) + pad + 1, geo.size), start))

    return span(y), span(x)


def _local_coords(window: tuple[slice, slice], x: float, y: float):
    yy, xx = np.mgrid[window].astype(np.float32)
    return xx - x, yy - y


def _ragged_radius(rng: np.random.Generator, angle: np.ndarray, radius: float, amount: float):
    """A radius that wobbles with the angle, so holes and bites are not perfect circles."""
    wobble = np.zeros_like(angle)
    for k in (2, 3, 5):
        wobble += rng.normal(0, amount / k) * np.sin(k * angle + rng.uniform(0, 2 * np.pi))
    return radius * (1 + wobble)


def _pit(surface: Surface, geo: Geometry, rng, x, y, radius, contrast, allowed) -> None:
    """A gas pore: a rounded cavity, darker inside, whose rim catches the light."""
    window = _window(geo, x, y, radius * 1.4 + 2)
    dx, dy = _local_coords(window, x, y)
    dist = np.hypot(dx, dy)
    r_eff = _ragged_radius(rng, np.arctan2(dy, dx), radius, 0.15)
    cover = np.clip(r_eff + 0.5 - dist, 0, 1) * allowed[window]
    bowl = np.sqrt(np.clip(1 - (dist / r_eff) ** 2, 0, 1)) * cover
    surface.height[window] -= radius * rng.uniform(0.6, 1.0) * contrast * bowl
    surface.albedo[window] *= 1 - rng.uniform(0.25, 0.45) * contrast * cover


def blowhole(surface: Surface, geo: Geometry, rng: np.random.Generator, contrast: float) -> None:
    """A cluster of two to six round pits a few pixels across."""
    s, allowed = geo.scale * SIZE, np.isin(geo.zone, SURFACE_ZONES)
    cx, cy = random_point(rng, allowed)
    spread = rng.uniform(3, 10) * s
    for _ in range(rng.integers(2, 7)):
        x, y = cx + rng.normal(0, spread), cy + rng.normal(0, spread)
        _pit(surface, geo, rng, x, y, rng.uniform(2.2, 5.0) * s, contrast, allowed)


def pinhole(surface: Surface, geo: Geometry, rng: np.random.Generator, contrast: float) -> None:
    """Scattered porosity: many pits about a pixel wide over a small area."""
    s, allowed = geo.scale * SIZE, np.isin(geo.zone, SURFACE_ZONES)
    cx, cy = random_point(rng, allowed)
    spread = rng.uniform(7, 18) * s
    for _ in range(rng.integers(8, 21)):
        angle, dist = rng.uniform(0, 2 * np.pi), spread * np.sqrt(rng.random())
        x, y = cx + dist * np.cos(angle), cy + dist * np.sin(angle)
        radius = max(rng.uniform(0.9, 1.7) * s, 0.7)
        _pit(surface, geo, rng, x, y, radius, 1.3 * contrast, allowed)


def burr(surface: Surface, geo: Geometry, rng: np.random.Generator, contrast: float) -> None:
    """Flash left on an edge: a thin, bright, jagged fin past the rim, the hub or into the bore."""
    s, heights = geo.scale * SIZE, geo.heights
    edge = rng.choice(["rim", "hub", "bore"], p=[0.55, 0.3, 0.15])
    r_edge, outward, fin_height = {
        "rim": (geo.radius, 1.0, heights[RIM] * rng.uniform(0.4, 0.7)),
        "hub": (geo.hub_r, 1.0, heights[HUB]),
        "bore": (geo.bore_r, -1.0, heights[HUB] * 0.8),
    }[edge]
    length = rng.uniform(16, 45) * s
    span = length / r_edge
    start = rng.uniform(-np.pi, np.pi)
    n_knots = max(int(length / (1.5 * s)), 4)
    knots = np.linspace(-span / 2, span / 2, n_knots)
    reach = rng.uniform(3.5, 7.0) * s * np.sqrt(contrast)
    jag = reach * (0.2 + 0.8 * rng.random(n_knots) ** 1.5)
    jag[[0, -1]] = 0

    x, y = geo.cx + r_edge * np.cos(start), geo.cy + r_edge * np.sin(start)
    window = _window(geo, x, y, length / 2 + reach + 3)
    offset = np.mod(geo.theta[window] - start + np.pi, 2 * np.pi) - np.pi
    extent = np.interp(offset, knots, jag, left=0, right=0)
    beyond = (geo.rr[window] - r_edge) * outward
    fin = np.clip(extent - beyond, 0, 1) * (beyond > 0)
    metal = surface.albedo[geo.zone == RIM].mean() * (1 + 0.25 * contrast)
    surface.height[window] += (fin_height - surface.height[window]) * fin
    surface.albedo[window] += (metal - surface.albedo[window]) * fin
    surface.gloss[window] += (0.5 - surface.gloss[window]) * fin


def shrinkage(surface: Surface, geo: Geometry, rng: np.random.Generator, contrast: float) -> None:
    """An irregular dark cavity with a network of fine cracks running out of it."""
    s, shape = geo.scale * SIZE, geo.rr.shape
    allowed = np.isin(geo.zone, (PLATE, VANE, RIM))
    x, y = random_point(rng, allowed)
    a = rng.uniform(3.0, 8.0) * s
    b = a * rng.uniform(0.4, 1.0)
    window = _window(geo, x, y, a * 2 + 3)
    dx, dy = _local_coords(window, x, y)
    angle = rng.uniform(0, np.pi)
    u = dx * np.cos(angle) + dy * np.sin(angle)
    v = -dx * np.sin(angle) + dy * np.cos(angle)
    lumpy = cv2.GaussianBlur(rng.standard_normal(u.shape).astype(np.float32), (0, 0), 1.5 * s)
    lumpy /= max(float(lumpy.std()), 1e-6)
    cavity = np.zeros(shape, np.float32)
    cavity[window] = np.clip((1 - np.hypot(u / a, v / b) + 0.3 * lumpy) * b, 0, 1)

    cracks = np.zeros(shape, np.float32)
    for _ in range(rng.integers(2, 6)):
        heading = rng.uniform(0, 2 * np.pi)
        start = (x + a * 0.8 * np.cos(heading), y + a * 0.8 * np.sin(heading))
        _crack(cracks, rng, start, heading, rng.uniform(8, 26) * s, s, depth=0)

    solid = ~np.isin(geo.zone, (BACKGROUND, BORE))
    cover = np.maximum(cavity, cracks) * solid
    surface.height -= contrast * s * (2.5 * cavity + 1.0 * cracks) * solid
    surface.albedo *= 1 - rng.uniform(0.4, 0.55) * contrast * cover


def _crack(canvas, rng, start, heading, length, s, depth) -> None:
    """A random-walk crack that sometimes branches; drawn into ``canvas`` by maximum."""
    steps = max(int(length / (1.5 * s)), 2)
    headings = heading + np.cumsum(rng.normal(0, 0.35, steps))
    step = 1.5 * s * np.stack([np.cos(headings), np.sin(headings)], axis=1)
    points = np.vstack([start, start + np.cumsum(step, axis=0)])
    strength = rng.uniform(0.6, 1.0)
    np.maximum(canvas, strength * draw_path(canvas.shape, points), out=canvas)
    if depth < 2 and rng.random() < 0.35:
        branch = points[rng.integers(1, len(points))]
        side = headings[0] + rng.choice([-1, 1]) * rng.uniform(0.5, 1.2)
        _crack(canvas, rng, branch, side, length * 0.5, s, depth + 1)


def scratch(surface: Surface, geo: Geometry, rng: np.random.Generator, contrast: float) -> None:
    """A thin groove from handling, brighter or darker than the metal around it."""
    s = geo.scale * SIZE
    allowed = np.isin(geo.zone, SURFACE_ZONES)
    x, y = random_point(rng, allowed)
    points = wavy_path(rng, x, y, rng.uniform(35, 110) * s, rng.uniform(-8, 8) * s)
    groove = np.zeros(geo.rr.shape, np.uint8)
    fade = np.sin(np.linspace(0.15, np.pi - 0.15, len(points) - 1)) ** 0.5
    thickness = max(1, int(round(s * rng.uniform(1.1, 1.7))))
    for (p, q), level in zip(zip(points[:-1], points[1:], strict=True), fade, strict=True):
        p16, q16 = np.round(p * 16).astype(int), np.round(q * 16).astype(int)
        cv2.line(groove, tuple(p16), tuple(q16), int(255 * level), thickness, cv2.LINE_AA, 4)
    cover = (
        groove.astype(np.float32) / 255 * cv2.GaussianBlur(allowed.astype(np.float32), (3, 3), 0)
    )
    sign = 1.0 if rng.random() < 0.65 else -1.0
    surface.height -= 1.5 * s * contrast * cover
    surface.albedo *= 1 + sign * rng.uniform(0.5, 0.8) * contrast * cover
    surface.gloss += 0.3 * cover


def edge_chip(surface: Surface, geo: Geometry, rng: np.random.Generator, contrast: float) -> None:
    """A bite broken out of the outer rim, leaving a rough fracture face."""
    s = geo.scale * SIZE
    radius = rng.uniform(5, 12) * s * np.sqrt(contrast)
    angle = rng.uniform(-np.pi, np.pi)
    reach = geo.radius - rng.uniform(0.1, 0.5) * radius
    x, y = geo.cx + reach * np.cos(angle), geo.cy + reach * np.sin(angle)
    window = _window(geo, x, y, radius * 1.6 + 2)
    dx, dy = _local_coords(window, x, y)
    dist = np.hypot(dx, dy)
    r_eff = _ragged_radius(rng, np.arctan2(dy, dx), radius, 0.25)
    solid = geo.zone[window] != BACKGROUND
    inside = np.clip(r_eff + 0.5 - dist, 0, 1) * solid
    depth = np.clip((r_eff - dist) / (0.3 * radius), 0, 1) * solid
    grain = rng.standard_normal(dist.shape).astype(np.float32)
    grain = cv2.GaussianBlur(grain, (0, 0), 0.8 * s)
    height = surface.height[window]
    surface.height[window] = height * (1 - depth) + 0.4 * s * grain * inside * (1 - depth)
    fracture = surface.albedo[window] * rng.uniform(0.75, 0.95) * (1 + 0.1 * grain)
    fracture += (0.16 - fracture) * depth**2
    surface.albedo[window] += (fracture - surface.albedo[window]) * inside


PAINTERS: dict[str, Callable[[Surface, Geometry, np.random.Generator, float], None]] = {
    "blowhole": blowhole,
    "pinhole": pinhole,
    "burr": burr,
    "shrinkage": shrinkage,
    "scratch": scratch,
    "edge_chip": edge_chip,
}
