"""Renderers of the built-in synthetic videos; each is a pure function of (rng, label, settings).

- motion: 2-3 large textured objects on a static textured background all move with one velocity out of
  `directions x speeds` (the label); smaller distractor objects move with other velocities. Objects wrap
  around the frame edges. A single frame carries no label information (Something-Something-like).
- shapes: one circle / square / triangle of one of four saturated colours drifts over a grey texture.
- physics: balls bounce off the walls of a box and a central bar and collide elastically; impossible
  variants (vanish, teleport, pass through the bar) for surprise-based evaluation (IntPhys-style,
  Garrido et al. 2025, arXiv:2502.11831). The scene is made so an event stands out of the scene's own
  unpredictability: a flat floor (nothing but the balls to predict), balls about one 16-px patch wide at
  64 px, moving about one radius per two frames. With the earlier 3.5-5 px balls on a textured floor even a
  pixel-space constant-velocity oracle scored AUROC 0.60 (pairwise accuracy 0.60) on 40 pairs.
"""

from __future__ import annotations

import math

import numpy as np

SHAPES = ("circle", "square", "triangle")
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (40, 60, 230), "yellow": (230, 210, 30)}
EVENTS = ("vanish", "teleport", "pass_through")
BALL_RADIUS = (0.09, 0.13)  # physics ball radius, fraction of the frame side
BALL_SPEED = (0.8, 1.6)  # physics ball speed, pixels per frame at 64 px
BG_TEXTURE = 0.0  # physics floor texture amplitude (0..255 units)
PALETTE = np.array([(235, 40, 40), (40, 200, 40), (50, 70, 240), (240, 220, 30), (230, 40, 230), (30, 220, 230)],
                   np.float32)


def texture(rng: np.random.Generator, h: int, w: int, cell: int, base, amp: float) -> np.ndarray:
    """Smooth random colour texture, float [h, w, 3] in 0..255: `base` +- `amp` noise of scale `cell`.

    Value noise with smoothstep interpolation in plain element-wise numpy (no BLAS, no torch kernels), so
    the result is bit-identical whatever the thread count: same seed, same file.
    """
    low = rng.random((h // cell + 2, w // cell + 2, 3)).astype(np.float32)

    def axis(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pos = (np.arange(n, dtype=np.float32) + 0.5) / cell
        i0 = np.floor(pos).astype(np.int64)
        t = pos - i0
        return i0, i0 + 1, t * t * (3 - 2 * t)

    y0, y1, ty = axis(h)
    x0, x1, tx = axis(w)
    ty, tx = ty[:, None, None], tx[None, :, None]
    top = low[y0][:, x0] * (1 - tx) + low[y0][:, x1] * tx
    bottom = low[y1][:, x0] * (1 - tx) + low[y1][:, x1] * tx
    noise = top * (1 - ty) + bottom * ty  # (h, w, 3) in [0, 1]
    return np.clip(np.asarray(base, np.float32) + amp * (noise - 0.5) * 2, 0, 255)


def _dot2(a: np.ndarray, b: np.ndarray) -> float:
    """2-vector dot product in a fixed order (BLAS may fuse or reorder it depending on alignment)."""
    return float(a[0]) * float(b[0]) + float(a[1]) * float(b[1])


def _disc(h: int, w: int, cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dy, dx = yy - cy, xx - cx
    # sqrt is correctly rounded in every SIMD path; np.hypot is not, so its result could depend on memory
    # alignment and the same seed could give different files
    return np.clip(r + 0.5 - np.sqrt(dy * dy + dx * dx), 0, 1)  # anti-aliased edge


def _shape_mask(kind: str, h: int, w: int, cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    if kind == "circle":
        return _disc(h, w, cy - 0.5, cx - 0.5, r)
    if kind == "square":
        return ((np.abs(yy - cy) <= r) & (np.abs(xx - cx) <= r)).astype(np.float32)
    # isosceles triangle, apex up, base 2r, height 2r: fills half of its bounding box
    inside = (yy >= cy - r) & (yy <= cy + r) & (np.abs(xx - cx) <= (yy - (cy - r)) / 2)
    return inside.astype(np.float32)


def motion_velocity(label: int, directions: int, speeds: int, size: int) -> tuple[float, float]:
    """(vy, vx) in pixels/frame of class `label` = direction * speeds + speed (angle counter-clockwise)."""
    d, s = divmod(label, speeds)
    theta = 2 * math.pi * d / directions
    v = (s + 1) * size / 64
    return -v * math.sin(theta), v * math.cos(theta)


def motion_class_names(directions: int, speeds: int) -> list[str]:
    return [f"{360 * d / directions:g}deg-speed{s + 1}" for d in range(directions) for s in range(speeds)]


def _object_layer(rng, size: int, count: int, rmin: float, rmax: float, amp: float):
    """Textured objects on a transparent canvas: (colour [S, S, 3], alpha [S, S])."""
    alpha = np.zeros((size, size), np.float32)
    for _ in range(count):
        r = size * rng.uniform(rmin, rmax)
        cy, cx = rng.uniform(0, size, 2)
        m = _disc(size, size, cy, cx, r) if rng.random() < 0.5 else _shape_mask("square", size, size, cy, cx, r)
        alpha = np.maximum(alpha, m)
    colour = texture(rng, size, size, max(2, size // 16), rng.uniform(60, 200, 3), 110)
    return colour, alpha


def render_motion(rng: np.random.Generator, label: int, frames: int, size: int, directions: int = 8,
                  speeds: int = 2, distractors: int = 1) -> np.ndarray:
    """uint8 [T, S, S, 3]: the main objects move with the label's velocity, distractors with others."""
    bg = texture(rng, size, size, max(2, size // 8), rng.uniform(70, 180, 3), 50)
    layers = [(*_object_layer(rng, size, int(rng.integers(2, 4)), 0.12, 0.2, 1.0),
               motion_velocity(label, directions, speeds, size))]
    n_cls = directions * speeds
    for _ in range(distractors):
        other = (label + int(rng.integers(1, n_cls))) % n_cls
        layers.append((*_object_layer(rng, size, 1, 0.05, 0.08, 1.0), motion_velocity(other, directions, speeds, size)))
    out = np.empty((frames, size, size, 3), np.uint8)
    for t in range(frames):
        f = bg.copy()
        for colour, alpha, (vy, vx) in layers:
            shift = (int(round(vy * t)), int(round(vx * t)))
            a = np.roll(alpha, shift, axis=(0, 1))[..., None]
            f = f * (1 - a) + np.roll(colour, shift, axis=(0, 1)) * a
        out[t] = np.clip(f + 0.5, 0, 255).astype(np.uint8)
    return out


def render_shapes(rng: np.random.Generator, label: int, frames: int, size: int) -> np.ndarray:
    """uint8 [T, S, S, 3]: shape SHAPES[label // 4] in colour COLOURS[label % 4], drifting, on grey."""
    return render_shapes_with_masks(rng, label, frames, size)[0]


def render_shapes_with_masks(rng: np.random.Generator, label: int, frames: int,
                             size: int) -> tuple[np.ndarray, np.ndarray]:
    """`render_shapes`'s frames uint8 [T, S, S, 3] and the shape's coverage of each pixel, float [T, S, S] in
    0..1 (the object mask behind `synth-seg`)."""
    kind, colour = SHAPES[label // len(COLOURS)], list(COLOURS.values())[label % len(COLOURS)]
    g = rng.uniform(90, 160)
    bg = texture(rng, size, size, max(2, size // 8), (g, g, g), 35)
    bg = bg.mean(axis=2, keepdims=True).repeat(3, axis=2)  # grey: no saturated pixels in the background
    r = size * rng.uniform(0.14, 0.22)
    pos = rng.uniform(r + 1, size - r - 1, 2)
    vel = rng.uniform(-0.6, 0.6, 2) * size / 64
    out = np.empty((frames, size, size, 3), np.uint8)
    masks = np.empty((frames, size, size), np.float32)
    for t in range(frames):
        for k in range(2):  # bounce inside the frame
            if not r + 1 <= pos[k] + vel[k] <= size - r - 1:
                vel[k] = -vel[k]
        pos = pos + vel
        masks[t] = _shape_mask(kind, size, size, pos[0], pos[1], r)
        a = masks[t][..., None]
        out[t] = np.clip(bg * (1 - a) + np.asarray(colour, np.float32) * a + 0.5, 0, 255).astype(np.uint8)
    return out, masks


def _simulate(p, v, r, size, frames, substeps=4, ghost=-1, ghost_from=10**9, teleport=None):
    """Balls in a box with a central bar; positions [T, n, 2] (y, x). `ghost` ignores the bar from frame
    `ghost_from`; `teleport = (frame, ball, new_pos)` moves a ball."""
    p, v = p.copy(), v.copy()
    n = len(p)
    wall_x, half_w, bar_lo, bar_hi = size / 2, size * 0.03, size * 0.2, size * 0.8
    out = np.empty((frames, n, 2))
    for t in range(frames):
        if teleport is not None and t == teleport[0]:
            p[teleport[1]] = teleport[2]
        out[t] = p
        for _ in range(substeps):
            p += v / substeps
            for i in range(n):
                for k in range(2):  # box walls (2-px border)
                    lo, hi = r[i] + 2, size - r[i] - 2
                    if p[i, k] < lo or p[i, k] > hi:
                        v[i, k] = -v[i, k]
                        p[i, k] = np.clip(p[i, k], lo, hi)
                if (i == ghost and t >= ghost_from) or not bar_lo - r[i] < p[i, 0] < bar_hi + r[i]:
                    continue
                dx = p[i, 1] - wall_x
                if abs(dx) < half_w + r[i] and dx * v[i, 1] < 0:  # moving into the bar
                    v[i, 1] = -v[i, 1]
            for i in range(n):  # elastic collisions, equal masses
                for j in range(i + 1, n):
                    d = p[j] - p[i]
                    dist = math.hypot(*d)
                    if 0 < dist < r[i] + r[j] and _dot2(v[j] - v[i], d) < 0:
                        u = d / dist
                        dv = _dot2(v[j] - v[i], u) * u
                        v[i] += dv
                        v[j] -= dv
    return out


def physics_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """The box's floor, float [S, S, 3]: one random grey level (plus a faint texture of BG_TEXTURE)."""
    return texture(rng, size, size, max(2, size // 8), np.full(3, rng.uniform(100, 170)), BG_TEXTURE)


def physics_initial(rng: np.random.Generator, size: int, n: int):
    """Random non-overlapping balls: (positions [n, 2], velocities [n, 2], radii [n], colours [n, 3])."""
    # a ball spans about one 16-px patch at 64 px (diameter 0.18-0.26 of the frame): an impossible event then
    # changes whole tokens of a patch-16 model, and a pixel-space oracle sees it above the scene's own noise
    r = size * rng.uniform(BALL_RADIUS[0], BALL_RADIUS[1], n)
    p = np.empty((n, 2))
    for i in range(n):
        for _ in range(100):
            p[i] = rng.uniform(r[i] + 3, size - r[i] - 3, 2)
            away_from_bar = abs(p[i, 1] - size / 2) > r[i] + size * 0.05
            if away_from_bar and all(math.hypot(*(p[i] - p[j])) > r[i] + r[j] + 1 for j in range(i)):
                break
    ang = rng.uniform(0, 2 * np.pi, n)
    speed = rng.uniform(BALL_SPEED[0], BALL_SPEED[1], n) * size / 64  # slow enough to be predictable
    v = np.array([[math.sin(a), math.cos(a)] for a in ang]) * speed[:, None]  # libm: alignment-independent
    colours = PALETTE[rng.permutation(len(PALETTE))[:n]]  # saturated: always visible on the grey-ish box
    return p, v, r, colours


def physics_tracks(rng, size, frames, n, event: str | None):
    """Trajectories [T, n, 2], radii, colours, visibility [T, n], and the event actually used."""
    p, v, r, colours = physics_initial(rng, size, n)
    e_frame = int(rng.integers(frames // 4, max(frames // 4 + 1, 3 * frames // 4)))
    ball = int(rng.integers(n))
    new_pos = rng.uniform(r[ball] + 3, size - r[ball] - 3, 2)
    base = _simulate(p, v, r, size, frames)
    visible = np.ones((frames, n), bool)
    if event == "pass_through":
        tracks = _simulate(p, v, r, size, frames, ghost=ball, ghost_from=e_frame)
        moved = np.abs(tracks - base).max(axis=(1, 2)) > 0.5
        if moved.any():
            e_frame = int(np.argmax(moved))  # the event shows when the ball should have bounced
        else:  # never reached the bar after the event: teleport instead
            event = "teleport"
    if event == "teleport":
        if math.hypot(*(new_pos - base[e_frame, ball])) < size / 4:  # make the jump visible
            new_pos = np.where(new_pos < size / 2, new_pos + size / 3, new_pos - size / 3)
        tracks = _simulate(p, v, r, size, frames, teleport=(e_frame, ball, new_pos))
    elif event == "vanish":
        tracks = base
        visible[e_frame:, ball] = False
    elif event is None:
        tracks = base
    return tracks, r, colours, visible, event, e_frame


def render_physics(size: int, bg: np.ndarray, tracks, radii, colours, visible) -> np.ndarray:
    """uint8 [T, S, S, 3]: the box, the central bar and the balls."""
    frames = tracks.shape[0]
    scene = bg.copy()
    scene[:2], scene[-2:], scene[:, :2], scene[:, -2:] = 40, 40, 40, 40
    x0, x1 = int(round(size / 2 - size * 0.03)), int(round(size / 2 + size * 0.03))
    scene[int(size * 0.2):int(size * 0.8), x0:x1] = (30, 30, 30)
    out = np.empty((frames, size, size, 3), np.uint8)
    for t in range(frames):
        f = scene.copy()
        for i in range(tracks.shape[1]):
            if visible[t, i]:
                a = _disc(size, size, tracks[t, i, 0], tracks[t, i, 1], radii[i])[..., None]
                f = f * (1 - a) + colours[i] * a
        out[t] = np.clip(f + 0.5, 0, 255).astype(np.uint8)
    return out
