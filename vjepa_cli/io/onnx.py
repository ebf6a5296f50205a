"""ONNX files of an encoder, for deployment (robots, edge devices, ONNX Runtime): written through
`torch.onnx.export` (the `torch.export` path, which handles RoPE), batch size dynamic, checked against PyTorch
with ONNX Runtime when it is installed."""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path

import torch

from vjepa_cli.errors import VjepaError
from vjepa_cli.io.atomic import atomic_path

log = logging.getLogger(__name__)
OPSET = 18


def write_onnx(module: torch.nn.Module, example: torch.Tensor, path: str | Path, *, input_name: str = "video",
               output_name: str = "features", max_batch: int = 4096) -> Path:
    """Export `module(example)` to `path` (atomically) with a dynamic first (batch) dimension."""
    try:
        import onnxscript  # noqa: F401  (the torch.export-based exporter needs it)
    except ImportError as e:
        raise VjepaError("ONNX export needs the onnx extra", hint='pip install "vjepa-cli[onnx]"') from e
    batch = torch.export.Dim("batch", min=1, max=max_batch)
    path = Path(path)
    with atomic_path(path, suffix=".onnx") as tmp, _quiet_exporter():
        try:
            program = torch.onnx.export(module.eval(), (example,), dynamo=True, opset_version=OPSET,
                                        input_names=[input_name], output_names=[output_name],
                                        dynamic_shapes=({0: batch},), verbose=False, external_data=False)
        except Exception as e:  # the exporter raises many types; its first line names the unsupported op
            raise VjepaError(f"ONNX export failed: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from e
        program.save(str(tmp))
    return path


@contextlib.contextmanager
def _quiet_exporter():
    """The exporter's progress lines (stdout), its registry notes (torch logging) and deprecation warnings
    are not for our users: stdout stays for results."""
    import warnings

    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.onnx._internal.exporter._registration",
                                              "torch.export", "torch._export")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, lv in zip(loggers, levels, strict=True):
            lg.setLevel(lv)


def onnx_max_abs_diff(path: str | Path, module: torch.nn.Module, x: torch.Tensor) -> float | None:
    """max |ONNX Runtime(x) - module(x)|, or None when onnxruntime is not installed."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {session.get_inputs()[0].name: x.detach().float().cpu().numpy()})
    with torch.no_grad():
        ref = module(x).float()
    return float((torch.from_numpy(out) - ref).abs().max())
