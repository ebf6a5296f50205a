"""The media layer: every decord / PyAV access of the package goes through here.

- `readers`: `open_video` (decord, PyAV, or decord with a PyAV fallback) -> a reader with `.info`
  (`VideoInfo`) and `.get_batch(indices)`; `VideoReadError`.
- `read`: one-call reads: `probe_video`, `read_frames`, `read_video`, `read_image`.
- `windows`: sliding windows over a whole video, streamed, optionally resized and cropped (`iter_windows`,
  `read_windows` on an already open reader, `plan_windows`, `crop_views`).
- `write`: the one video writer (`VideoWriter`, `write_video`, `reencode`) and `write_png`.
- `logs`: the decoders' own log lines, quiet unless `set_verbose(True)` (`vjepa -v`).

A package rather than one file because the five parts together pass 600 lines; callers import from here.
"""

from __future__ import annotations

from vjepa_cli.data.media.logs import set_verbose
from vjepa_cli.data.media.read import probe_video, read_frames, read_image, read_video
from vjepa_cli.data.media.readers import (
    BACKENDS,
    AutoReader,
    DecordReader,
    PyAVReader,
    VideoInfo,
    VideoReadError,
    check_backend,
    open_video,
)
from vjepa_cli.data.media.windows import (
    Crop,
    Window,
    crop_boxes,
    crop_views,
    iter_windows,
    num_windows,
    plan_windows,
    read_windows,
    window_times,
)
from vjepa_cli.data.media.write import VideoWriter, reencode, rgb_to_yuv420p, write_png, write_video

__all__ = [
    "check_backend",
    "BACKENDS", "AutoReader", "Crop", "DecordReader", "PyAVReader", "VideoInfo", "VideoReadError", "VideoWriter",
    "Window", "crop_boxes", "crop_views", "iter_windows", "num_windows", "open_video", "plan_windows",
    "probe_video", "read_frames", "read_image", "read_video", "read_windows", "reencode", "rgb_to_yuv420p",
    "set_verbose", "window_times", "write_png", "write_video",
]
