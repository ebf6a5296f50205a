"""Options shared by the frozen-model commands (extract, predict, surprise, viz): windows and crops."""

from __future__ import annotations

from typing import Annotated

import typer

FramesOpt = Annotated[int, typer.Option("--frames", help="Frames per window (the encoder's clip length).")]
FrameStepOpt = Annotated[
    int | None, typer.Option("--frame-step", help="Take every k-th source frame (default 4 unless --fps).")
]
FpsOpt = Annotated[
    float | None,
    typer.Option("--fps", help="Sample about this many frames per second instead (step = ceil(video fps) // fps)."),
]
StrideOpt = Annotated[
    str | None,
    typer.Option("--stride", help="Window stride: sampled frames (e.g. 8) or seconds (e.g. 2s). Default: --frames."),
]
# predict / surprise follow the intuitive-physics protocol's defaults (Garrido et al. 2025): step 2, stride 2
ProtocolFrameStepOpt = Annotated[
    int | None, typer.Option("--frame-step", help="Take every k-th source frame (default 2, the published protocol, unless --fps).")
]
ProtocolStrideOpt = Annotated[
    str | None,
    typer.Option("--stride", help="Window stride: sampled frames (e.g. 8) or seconds (e.g. 2s). Default: 2 (the published protocol)."),
]
SizeOpt = Annotated[int | None, typer.Option("--size", help="Crop side in pixels (default: the model's size).")]
ResizeOpt = Annotated[
    int | None, typer.Option("--resize", help="Short side before cropping (default: size*256/224; size with --views).")
]
ViewsOpt = Annotated[int, typer.Option("--views", help="Spatial crops per window, spread along the long side.")]
MaskIndexOpt = Annotated[int, typer.Option("--mask-index", help="Predictor mask token to use.")]
BatchOpt = Annotated[int, typer.Option("--batch-size", "-b", help="Clips per forward pass.")]
WorkersOpt = Annotated[
    int | None, typer.Option("--workers", min=0, show_default=False,
                             help="Decoding threads running alongside the model; 0: decode between forwards with "
                                  "every core. Default: 0 on the CPU, 1 on a GPU.")
]


def window_config(frames: int, frame_step: int | None, fps: float | None, stride: str | None,
                  size: int | None, resize: int | None, views: int):
    """Build a WindowConfig from CLI values; bad values become one-line VjepaErrors."""
    from vjepa_cli.config.extract import WindowConfig, parse_stride
    from vjepa_cli.errors import VjepaError

    try:
        st, st_s = parse_stride(stride)
        return WindowConfig(frames=frames, frame_step=frame_step, fps=fps, stride=st, stride_seconds=st_s,
                            size=size, resize=resize, views=views)
    except ValueError as e:
        raise VjepaError(f"bad window option: {e}", hint="e.g. --frames 16 --frame-step 4 --stride 2s") from None


def surprise_config(frames, frame_step, fps, stride, size, resize, context, combine, mask_index,
                    batch_size, device, dtype, workers):
    """Build a SurpriseConfig from CLI values (protocol defaults: step 2, stride 2 when not given)."""
    from vjepa_cli.config.extract import SurpriseConfig
    from vjepa_cli.errors import VjepaError

    if frame_step is None and fps is None:
        frame_step = 2
    wcfg = window_config(frames, frame_step, fps, "2" if stride is None else stride, size, resize, 1)
    try:
        return SurpriseConfig(window=wcfg, context_frames=tuple(int(c) for c in context), combine=combine,
                              mask_index=mask_index, batch_size=batch_size, device=device, dtype=dtype,
                              workers=workers)
    except ValueError as e:
        raise VjepaError(f"bad option: {e}") from None


ContextOpt = Annotated[str | None, typer.Option(
    "--context", help="Context length(s) in frames, comma separated, e.g. 8 or 2,4,6 (predict takes one).",
    show_default=False)]


def parse_contexts(text: str | None, default: list[int]) -> list[int]:
    """`--context` as `predict` and `surprise` both read it: frame counts, comma separated."""
    from vjepa_cli.errors import VjepaError

    if text is None or not text.strip():
        return list(default)
    try:
        values = [int(c) for c in text.split(",") if c.strip()]
    except ValueError:
        raise VjepaError(f"bad --context '{text}'", hint="frame counts, comma separated: e.g. --context 2,4,6") from None
    if not values or any(v < 1 for v in values):
        raise VjepaError(f"bad --context '{text}'", hint="frame counts >= 1, e.g. --context 8")
    return values
