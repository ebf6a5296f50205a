"""Image quality of decoded frames: PSNR, SSIM (Wang, Bovik, Sheikh & Simoncelli 2004) and sharpness.

SSIM as in the paper: an 11 x 11 Gaussian window (sigma 1.5) over each channel, the map computed where the
window fits ("valid"), C1 = (0.01 L)^2, C2 = (0.03 L)^2 with data range L = 1, averaged over the map and the
channels. Frames are float `(..., H, W, 3)` in [0, 1]; every function returns one value per image `(...)`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

C1, C2 = 0.01 ** 2, 0.03 ** 2


def _planes(x: Tensor) -> tuple[Tensor, tuple[int, ...]]:
    """`(..., H, W, C)` -> `(M*C, 1, H, W)` float64 and the leading shape."""
    lead = x.shape[:-3]
    h, w, c = x.shape[-3:]
    return x.double().reshape(-1, h, w, c).permute(0, 3, 1, 2).reshape(-1, 1, h, w), lead


def psnr(a: Tensor, b: Tensor, eps: float = 1e-10) -> Tensor:
    """Peak signal-to-noise ratio in dB (peak 1) per image."""
    mse = (a.double() - b.double()).pow(2).flatten(-3).mean(-1)
    return 10 * torch.log10(1.0 / mse.clamp_min(eps))


def gaussian_window(size: int = 11, sigma: float = 1.5) -> Tensor:
    """The normalised 2-D Gaussian `(size, size)` float64."""
    g = torch.exp(-(torch.arange(size, dtype=torch.float64) - (size - 1) / 2) ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim(a: Tensor, b: Tensor, size: int = 11, sigma: float = 1.5) -> Tensor:
    """Mean SSIM per image (over the valid map and the channels)."""
    x, lead = _planes(a)
    y, _ = _planes(b)
    k = gaussian_window(size, sigma)[None, None]  # (1, 1, s, s)
    mx, my = F.conv2d(x, k), F.conv2d(y, k)
    sxx = F.conv2d(x * x, k) - mx * mx
    syy = F.conv2d(y * y, k) - my * my
    sxy = F.conv2d(x * y, k) - mx * my
    m = ((2 * mx * my + C1) * (2 * sxy + C2)) / ((mx * mx + my * my + C1) * (sxx + syy + C2))  # (M*C, 1, h, w)
    c = a.shape[-1]
    return m.reshape(-1, c, *m.shape[-2:]).mean((1, 2, 3)).reshape(lead)


def sharpness(a: Tensor) -> Tensor:
    """Mean absolute finite-difference gradient per image (blur lowers it; compare with the real frames')."""
    x = a.double()
    dx = (x[..., :, 1:, :] - x[..., :, :-1, :]).abs().flatten(-3).mean(-1)
    dy = (x[..., 1:, :, :] - x[..., :-1, :, :]).abs().flatten(-3).mean(-1)
    return (dx + dy) / 2
