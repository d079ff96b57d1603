"""Seeded procedural data sets for the field demos: segmentation scenes and point-cloud shapes.

Both are pure functions of their arguments (numpy's PCG64 seeded with ``seed``), so the
demos and tests get the same data everywhere.

- ``segmentation_scenes``: maps of shape (n, size, size) with integer classes 0..5: sky
  (0) above a wavy horizon, ground (1) below, a sun (2) in the sky, and a few objects
  on the ground: houses (3, rectangles with a roof), trees (4, a trunk under a disc) and
  ponds (5, ellipses), of random size and position.
- ``point_shapes``: point clouds of shape (n, points, 3) on the integer grid 0..grid-1:
  tori, boxes (points on the surface) and spheres of random size, orientation and
  position, and the label of each shape (0 torus, 1 box, 2 sphere).

Example:
    >>> maps = segmentation_scenes(4, size=32, seed=0)
    >>> maps.shape, int(maps.min()) >= 0, int(maps.max()) <= 5
    ((4, 32, 32), True, True)
    >>> clouds, labels = point_shapes(3, points=128, grid=64, seed=0)
    >>> clouds.shape, int(clouds.min()) >= 0, int(clouds.max()) <= 63
    ((3, 128, 3), True, True)
"""

from __future__ import annotations

import numpy as np

__all__ = ["SCENE_CLASSES", "SHAPE_NAMES", "segmentation_scenes", "point_shapes"]

SCENE_CLASSES = ("sky", "ground", "sun", "house", "tree", "pond")
SHAPE_NAMES = ("torus", "box", "sphere")


def _check(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def segmentation_scenes(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    """``n`` scene maps of ``size`` x ``size`` pixels, classes 0..5 (``SCENE_CLASSES``), int64."""
    n, size = _check("n", n, 1), _check("size", size, 8)
    rng = np.random.default_rng(seed)
    rows, columns = np.mgrid[0:size, 0:size].astype(np.float64)
    maps = np.empty((n, size, size), dtype=np.int64)
    for index in range(n):
        horizon = size * rng.uniform(0.35, 0.6) + size * rng.uniform(0.02, 0.08) * np.sin(
            columns[0] * rng.uniform(0.1, 0.4) + rng.uniform(0, 2 * np.pi))
        scene = np.where(rows < horizon[None, :], 0, 1)
        if rng.random() < 0.7:  # the sun
            centre, radius = (rng.uniform(0.1, 0.3) * size, rng.uniform(0.1, 0.9) * size), rng.uniform(0.05, 0.1) * size
            scene[((rows - centre[0]) ** 2 + (columns - centre[1]) ** 2 < radius**2) & (scene == 0)] = 2
        for _ in range(rng.integers(1, 4)):
            kind = rng.integers(3, 6)
            x = rng.uniform(0.1, 0.9) * size
            ground = float(np.interp(x, columns[0], horizon))
            if kind == 3:  # a house: a wall and a triangular roof standing on the horizon
                half, height = rng.uniform(0.06, 0.14) * size, rng.uniform(0.1, 0.2) * size
                wall = (np.abs(columns - x) < half) & (rows > ground - height) & (rows < ground + 0.1 * size)
                roof = (rows <= ground - height) & (rows > ground - height - half) & (
                    np.abs(columns - x) < (rows - (ground - height - half)))
                scene[wall | roof] = 3
            elif kind == 4:  # a tree: a trunk and a round crown
                trunk = (np.abs(columns - x) < 0.02 * size + 0.5) & (rows > ground - 0.12 * size) & (rows < ground + 0.05 * size)
                radius = rng.uniform(0.06, 0.11) * size
                crown = (rows - (ground - 0.12 * size - radius * 0.7)) ** 2 + (columns - x) ** 2 < radius**2
                scene[trunk | crown] = 4
            else:  # a pond: an ellipse below the horizon
                y = rng.uniform(ground + 0.1 * size, size * 0.95)
                a, b = rng.uniform(0.08, 0.2) * size, rng.uniform(0.03, 0.07) * size
                scene[((columns - x) / a) ** 2 + ((rows - y) / b) ** 2 < 1.0] = 5
        maps[index] = scene
    return maps


def _rotation(rng) -> np.ndarray:
    """A uniformly random 3D rotation (QR of a Gaussian matrix, signs fixed)."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def point_shapes(n: int, points: int = 512, grid: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` clouds of ``points`` integer points in 0..grid-1 (int64, (n, points, 3)) and their labels (0..2)."""
    n, points, grid = _check("n", n, 1), _check("points", points, 1), _check("grid", grid, 8)
    rng = np.random.default_rng(seed)
    clouds = np.empty((n, points, 3), dtype=np.int64)
    labels = rng.integers(0, 3, n)
    for index in range(n):
        scale = rng.uniform(0.15, 0.3) * grid
        if labels[index] == 0:  # torus: ring radius R, tube radius r
            ratio = rng.uniform(0.25, 0.45)
            u, v = rng.uniform(0, 2 * np.pi, (2, points))
            ring, tube = scale, scale * ratio
            local = np.stack([(ring + tube * np.cos(v)) * np.cos(u), (ring + tube * np.cos(v)) * np.sin(u), tube * np.sin(v)], 1)
        elif labels[index] == 1:  # box surface: pick faces by area, then a point on the face
            half = scale * rng.uniform(0.5, 1.0, 3)
            areas = np.array([half[1] * half[2], half[0] * half[2], half[0] * half[1]])
            axis = rng.choice(3, points, p=areas / areas.sum())
            local = rng.uniform(-1, 1, (points, 3)) * half
            local[np.arange(points), axis] = half[axis] * rng.choice([-1.0, 1.0], points)
        else:  # sphere surface
            direction = rng.normal(size=(points, 3))
            local = scale * direction / np.linalg.norm(direction, axis=1, keepdims=True)
        local = local @ _rotation(rng).T
        extent = np.abs(local).max(axis=0)
        centre = rng.uniform(extent, grid - 1 - extent)
        clouds[index] = np.clip(np.rint(local + centre), 0, grid - 1).astype(np.int64)
    return clouds, labels
