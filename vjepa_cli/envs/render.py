"""Drawing for the built-in planar simulators: an RGB canvas in [0, 1] with the unit square mapped onto it,
a lit disk for the effector and a box for objects, converted to uint8 frames at the end.

The effector is a disk that also lights the floor around it with a linear falloff (a cone of radius `glow`),
so two frames with the effector at different places differ smoothly and a feature-space L1 energy keeps a
slope across the whole arena (a lone small disk gives a flat energy as soon as start and goal stop
overlapping, and the planner nothing to follow).
"""

from __future__ import annotations

import numpy as np

BG = np.array([0.92, 0.92, 0.88], dtype=np.float32)  # background colour (RGB in [0, 1])
AGENT = np.array([0.85, 0.15, 0.10], dtype=np.float32)  # effector colour
BLOCK = np.array([0.10, 0.30, 0.85], dtype=np.float32)  # pushed-object colour


def coords(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel centres in the unit square, each [size, size]: x to the right, y downward (image rows)."""
    c = (np.arange(size, dtype=np.float32) + 0.5) / size
    return np.meshgrid(c, c, indexing="xy")


def canvas(size: int) -> np.ndarray:
    """An empty floor, float32 [size, size, 3] in [0, 1]."""
    return np.broadcast_to(BG, (size, size, 3)).copy()


def paint_box(img: np.ndarray, xx: np.ndarray, yy: np.ndarray, centre: np.ndarray, half: float,
              colour: np.ndarray) -> None:
    """Fill the axis-aligned square of half side `half` around `centre` (x, y) in place."""
    inside = (np.abs(xx - centre[0]) < half) & (np.abs(yy - centre[1]) < half)
    img[inside] = colour


def paint_lit_disk(img: np.ndarray, xx: np.ndarray, yy: np.ndarray, pos: np.ndarray, colour: np.ndarray,
                   radius: float, glow: float, light: float) -> None:
    """A disk of `radius` at `pos` (x, y) with an anti-aliased edge, over a light cone of radius `glow`."""
    size = img.shape[0]
    d = np.sqrt((xx - pos[0]) ** 2 + (yy - pos[1]) ** 2)  # (H, W) distance to the centre
    lit = (light * np.clip(1 - d / glow, 0, 1))[..., None]
    img[:] = img * (1 - lit) + colour * lit
    disk = np.clip((radius - d) * size + 0.5, 0, 1)[..., None]  # anti-aliased edge
    img[:] = img * (1 - disk) + colour * disk


def paint_glow(img: np.ndarray, xx: np.ndarray, yy: np.ndarray, pos: np.ndarray, colour: np.ndarray,
               glow: float, light: float) -> None:
    """Light the floor around `pos` (x, y) in `colour` with a linear falloff to 0 at distance `glow`, in place."""
    if glow <= 0 or light <= 0:
        return
    d = np.sqrt((xx - pos[0]) ** 2 + (yy - pos[1]) ** 2)  # (H, W) distance to the centre
    lit = (light * np.clip(1 - d / glow, 0, 1))[..., None]
    img[:] = img * (1 - lit) + colour * lit


def paint_disk(img: np.ndarray, xx: np.ndarray, yy: np.ndarray, pos: np.ndarray, colour: np.ndarray,
               radius: float, alpha: float = 1.0) -> None:
    """A disk of `radius` at `pos` (x, y) with an anti-aliased edge, blended with opacity `alpha`, in place."""
    d = np.sqrt((xx - pos[0]) ** 2 + (yy - pos[1]) ** 2)
    disk = alpha * np.clip((radius - d) * img.shape[0] + 0.5, 0, 1)[..., None]
    img[:] = img * (1 - disk) + colour * disk


def to_uint8(img: np.ndarray) -> np.ndarray:
    """float [H, W, 3] in [0, 1] -> uint8 frame [H, W, 3] (rounded)."""
    return (img * 255 + 0.5).astype(np.uint8)
