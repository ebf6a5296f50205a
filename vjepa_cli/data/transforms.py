"""Clip transforms on uint8 frames, one set of parameters shared by every frame of a clip.

Training (V-JEPA, Bardes et al. 2024): random resized crop (area scale 0.3-1.0, aspect 0.75-1.35, with
torchvision's 10-attempt sampler and centre-crop fallback), horizontal flip with p = 0.5, resize to the crop
size. Evaluation: short-side resize then centre crop, or N crops spread along the long side.
Workers ship uint8; `normalize_clips` converts to ImageNet-normalised float on the training device.

Clips of short videos repeat frames (padding); both transforms take the distinct frames plus an `index`
that expands them, so each distinct frame is resized once. Per frame the result is the same either way.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def random_resized_crop_params(
    height: int, width: int, scale: tuple[float, float], ratio: tuple[float, float], rng: np.random.Generator
) -> tuple[int, int, int, int]:
    """(top, left, h, w) of a random crop with area fraction in `scale` and w/h in `ratio`.

    Up to 10 draws (area uniform, aspect log-uniform); if none fits, a centre crop with the aspect clamped
    into `ratio` (torchvision `RandomResizedCrop.get_params`, which the official transforms use).
    """
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_ratio[0], log_ratio[1]))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return top, left, h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        h, w = height, int(round(height * max(ratio)))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def resize_frames(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear antialiased resize of uint8 [T, C, H, W] to `size` = (h, w), uint8 out.

    Runs on uint8 in channels-last layout (the decoder's own HWC layout), torch's vectorised path, about
    10x faster than converting to float; results are within 1 of the float computation.
    """
    if tuple(frames.shape[-2:]) == tuple(size):
        return frames
    if frames.stride(1) != 1:  # not channels-last strided; a crop view of decoder frames already is
        frames = frames.contiguous(memory_format=torch.channels_last)
    return F.interpolate(frames, size=size, mode="bilinear", align_corners=False, antialias=True)


def to_tchw(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 [T, H, W, C] (decoder layout) -> uint8 tensor [T, C, H, W] (a view, no copy)."""
    t = torch.from_numpy(frames) if isinstance(frames, np.ndarray) else frames
    return t.permute(0, 3, 1, 2)


def to_ctwh(frames_tchw: torch.Tensor, index: torch.Tensor | np.ndarray | None = None) -> torch.Tensor:
    """uint8 [T, C, H, W] -> contiguous [C, T', H, W] (the model's clip layout), one copy; with `index`
    (T',), output frame t is input frame `index[t]` (repeats allowed)."""
    if index is None:
        return torch.permute_copy(frames_tchw, (1, 0, 2, 3))
    return frames_tchw.permute(1, 0, 2, 3).index_select(1, frame_index(index)).contiguous()


def frame_index(index: torch.Tensor | np.ndarray | list[int]) -> torch.Tensor:
    """Frame positions as a LongTensor (no copy for an int64 array)."""
    if isinstance(index, np.ndarray) and index.dtype == np.int64:
        return torch.from_numpy(index)
    return torch.as_tensor(index, dtype=torch.long)


def select_frames(clip_ctwh: torch.Tensor, index: torch.Tensor | np.ndarray | None) -> torch.Tensor:
    """Frames `index` (repeats allowed) of a [C, T, H, W] clip; the clip itself when `index` is None."""
    return clip_ctwh if index is None else clip_ctwh.index_select(1, frame_index(index))


def train_transform(
    frames: np.ndarray | torch.Tensor,
    crop_size: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    flip: bool,
    rng: np.random.Generator,
    index: torch.Tensor | np.ndarray | None = None,
) -> torch.Tensor:
    """uint8 [T, H, W, 3] -> uint8 [3, T', crop, crop]: random resized crop, optional flip (p = 0.5).

    `index` (T'): the clip's frames as positions in `frames`, repeats allowed (None: all, in order).
    Crop, resize and flip run once per frame of `frames`; the frames are gathered last.
    """
    top, left, h, w = random_resized_crop_params(frames.shape[1], frames.shape[2], scale, ratio, rng)
    x = to_tchw(frames[:, top:top + h, left:left + w])  # (T, C, h, w) view with channels-last strides
    x = to_ctwh(resize_frames(x, (crop_size, crop_size)))  # (C, T, crop, crop)
    if flip and rng.random() < 0.5:
        x = x.flip(-1)  # on the planar layout: ~3x cheaper than on channels-last
    return select_frames(x, index)


def short_side_resize(frames_tchw: torch.Tensor, size: int) -> torch.Tensor:
    """Resize uint8 [T, C, H, W] so its short side is `size` (aspect kept)."""
    h, w = frames_tchw.shape[-2:]
    if h <= w:
        new = (size, max(size, int(round(w * size / h))))
    else:
        new = (max(size, int(round(h * size / w))), size)
    return resize_frames(frames_tchw, new)


def center_crop(frames_tchw: torch.Tensor, size: int) -> torch.Tensor:
    """Centre `size` x `size` crop of [..., H, W] (H, W >= size)."""
    h, w = frames_tchw.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return frames_tchw[..., top:top + size, left:left + size]


def eval_views(frames: np.ndarray | torch.Tensor, crop_size: int, num_views: int = 1,
               index: torch.Tensor | np.ndarray | None = None) -> list[torch.Tensor]:
    """uint8 [T, H, W, 3] -> `num_views` uint8 [3, T', crop, crop]: short side resized to `crop_size`;
    one view = centre crop, N views = crops evenly spaced from one end of the long side to the other.
    `index` (T',) gathers the clip's frames from `frames` as in `train_transform`."""
    x = short_side_resize(to_tchw(frames), crop_size)  # (T, C, h, w), min(h, w) == crop
    if num_views == 1:
        return [to_ctwh(center_crop(x, crop_size), index)]
    h, w = x.shape[-2:]
    long_extra = max(h, w) - crop_size
    views = []
    for k in range(num_views):
        off = int(round(k * long_extra / (num_views - 1)))
        v = x[..., off:off + crop_size, :crop_size] if h > w else x[..., :crop_size, off:off + crop_size]
        views.append(to_ctwh(v, index))
    return views


def normalize_clips(clips: torch.Tensor, device: torch.device | str | None = None,
                    dtype: torch.dtype = torch.float32, channels_last: bool = False) -> torch.Tensor:
    """uint8 [B, C, T, H, W] (or [C, T, H, W]) -> ImageNet-normalised `dtype` on `device`, same layout.

    `channels_last`: the input is in the decoder's layout, [B, T, H, W, C] (or [T, H, W, C]), as the windows
    of the frozen-model commands are; the output is still [B, C, T, H, W] (a permuted view, no copy first).
    The uint8 tensor is moved first (4x less traffic than float), then scaled on the device.
    """
    if channels_last:
        clips = clips.permute(0, 4, 1, 2, 3) if clips.dim() == 5 else clips.permute(3, 0, 1, 2)
    x = clips.to(device, non_blocking=True) if device is not None else clips
    shape = (-1, 1, 1, 1) if x.dim() == 4 else (1, -1, 1, 1, 1)
    mean, std = _norm_constants(x.device)
    return ((x.float() - mean.view(shape)) / std.view(shape)).to(dtype)


@functools.lru_cache(maxsize=8)
def _norm_constants(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """ImageNet mean and std x 255, float32 (C,), on `device`: made once per device, so that normalising a batch
    on a GPU does not copy them from the host (a blocking copy, a host synchronisation) every step."""
    with torch.inference_mode(False):  # plain tensors, even when first asked for under inference mode
        mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32) * 255
        std = torch.tensor(IMAGENET_STD, dtype=torch.float32) * 255
        return mean.to(device), std.to(device)
