"""A process of its own for `test_fuzz_video.py`: reads one JSON request per line on stdin, runs it against a
(corrupted) video, answers one JSON line on stdout. Decoders are C code: a crash or a hang on a bad file takes
down this process, not pytest, and the test sees which case did it.

Request: {"target": "probe" | "dataset" | "extract", "path": ..., ...}.
Answer: {"outcome": "decoded" | "refused" | "recorded" | "error", "detail": ...}; "error" is anything that is
neither decoded frames nor a clear refusal (a traceback, a multi-line message, a partial output file).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import sys
import traceback
from pathlib import Path

_INTERNALS = re.compile(r"\b[A-Z][A-Za-z]*(Error|Exception)\b|object has no attribute|NoneType|\[Errno")


def _one_line(text: str) -> bool:
    """A clear refusal: one line, and no Python internals leaking through ("AttributeError: 'NoneType' ...",
    PyAV's "[Errno 1] Operation not permitted" for what is damaged data, not a permission)."""
    return bool(text.strip()) and "\n" not in text.strip() and not _INTERNALS.search(text)


def probe(req: dict) -> dict:
    from vjepa_cli.data import probe_video
    from vjepa_cli.errors import VjepaError

    try:
        info = probe_video(req["path"])
    except VjepaError as e:
        return {"outcome": "refused" if _one_line(str(e)) else "error", "detail": str(e)}
    ok = info.num_frames >= 1 and info.width > 0 and info.height > 0
    return {"outcome": "decoded" if ok else "error", "detail": repr(info)}


def dataset(req: dict) -> dict:
    """Sample 0 of a two-video dataset [bad, good]: decoded from the bad file, or replaced by the good one with
    the bad read recorded, or (every draw bad) one NoGoodSampleError."""
    from vjepa_cli.config.data import DataConfig
    from vjepa_cli.data import ManifestRow, VideoClipDataset
    from vjepa_cli.errors import VjepaError

    cfg = DataConfig(frames_per_clip=4, frame_step=2, crop_size=32, max_retries=3, num_workers=0)
    ds = VideoClipDataset(cfg, [[ManifestRow(req["path"]), ManifestRow(req["good"])]], train=True,
                          seed=req.get("seed", 0))
    try:
        s = ds[(0, 0)]
    except VjepaError as e:
        return {"outcome": "refused" if _one_line(str(e)) else "error", "detail": str(e)}
    if tuple(s["clip"].shape) != (3, 4, 32, 32):
        return {"outcome": "error", "detail": f"clip shape {tuple(s['clip'].shape)}"}
    if s["index"] == 0 and not s["failures"]:
        return {"outcome": "decoded", "detail": ""}
    bad = [r for p, r in s["failures"] if p == req["path"]]
    if s["failures"] and len(bad) == len(s["failures"]) and all(_one_line(r) for r in bad):
        return {"outcome": "recorded", "detail": bad[0]}
    return {"outcome": "error", "detail": repr(s["failures"])}


def extract(req: dict) -> dict:
    """`vjepa extract BAD -o OUT --model M --frames 4` through the CLI's own main(): exit 0 with a valid features
    file, or exit 1 naming the video's problem with no traceback and no file."""
    import torch

    from vjepa_cli.cli import main
    from vjepa_cli.io.tensors import load_tensors

    out = Path(req["out"])
    err = io.StringIO()
    code = 0
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            main(["extract", req["path"], "-o", str(out), "--model", req["model"], "--frames", "4", "--workers", "0"])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
    text = err.getvalue()
    leftovers = [p.name for p in out.parent.glob(f".{out.name}*")]
    if "Traceback" in text or leftovers:
        return {"outcome": "error", "detail": f"code {code}, leftovers {leftovers}: {text[-2000:]}"}
    if code == 0:
        t, _ = load_tensors(out)
        f, ts = t["features"], t["timestamps"]
        ok = f.ndim == 2 and f.shape[0] >= 1 and ts.shape == (f.shape[0], 2) and bool(torch.isfinite(f).all())
        out.unlink()
        return {"outcome": "decoded" if ok else "error", "detail": f"features {tuple(f.shape)}"}
    failed = [ln for ln in text.splitlines() if ln.startswith("failed ") and req["path"] in ln]
    if code == 1 and not out.exists() and len(failed) == 1 and _one_line(failed[0]):
        return {"outcome": "refused", "detail": failed[0]}
    return {"outcome": "error", "detail": f"code {code}: {text[-2000:]}"}


TARGETS = {"probe": probe, "dataset": dataset, "extract": extract}


def main() -> None:
    # rich wraps stderr at 80 columns when it is not a terminal; a wide console keeps each message on its line
    # so the whole reason is checked (the wrapping itself is a rendering matter of cli/extract.py)
    os.environ["COLUMNS"] = "10000"
    import torch

    torch.set_num_threads(1)
    answer = os.fdopen(os.dup(1), "w", buffering=1)  # the CLI's own stdout is redirected per request
    for line in sys.stdin:
        req = json.loads(line)
        try:
            res = TARGETS[req["target"]](req)
        except BaseException:  # noqa: BLE001 - exactly what the test is looking for
            res = {"outcome": "error", "detail": traceback.format_exc()[-3000:]}
        answer.write(json.dumps(res) + "\n")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
