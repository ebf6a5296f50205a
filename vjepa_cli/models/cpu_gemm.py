"""fp32 matrix products on the CPU through oneDNN, where the default BLAS leaves half the machine idle.

PyTorch sends fp32 GEMMs on the CPU to its BLAS, MKL in the official wheels: `addmm` for every Linear, and
the block products of the CPU flash-attention kernel. MKL picks its kernels by CPU vendor. On an AMD EPYC
(Zen 5, AVX-512) it runs its AVX2 path: the ViT-B MLP's (1568 x 768) x (768 x 3072) product took 37.5 ms on two
cores (197 GFLOP/s), where oneDNN, which PyTorch also ships and which picks kernels by instruction set, took
18.1 ms (408 GFLOP/s) for the same fp32 arithmetic (`torch.ops.mkldnn._linear_pointwise`; the backward's two
products 1.7-2.2x too). On the Intel Xeons measured earlier the two were level. So, on the CPU in fp32:

- `linear(x, weight, bias, gelu=, residual=)`: one oneDNN product with the GELU or the residual add fused into
  it; with autograd, forward and backward products through oneDNN (`_Linear`).
- `self_attention(q, k, v)`: without autograd and without a mask, softmax(q k^T / sqrt(hd)) v one head at a
  time as two oneDNN products (the (N, N) scores of one head, in query chunks for long clips, stay in cache);
  25 % faster than the flash kernel at ViT-B 16x224 on that EPYC, the same sums up to rounding.

Which backend runs: `VJEPA_CPU_GEMM` = `auto` (the default: oneDNN on AMD CPUs, the BLAS elsewhere), `onednn`
or `blas`; `use_backend(...)` switches it in code. Never under autocast, other dtypes, other devices, tracing,
`torch.compile` or export: those take PyTorch's own ops.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

from vjepa_cli.errors import VjepaError

BACKENDS = ("auto", "onednn", "blas")
MIN_ATTENTION_TOKENS = 512  # below, one flash call beats a Python loop over heads
# multiply-adds below which MKL wins: oneDNN costs ~10 us more per call forward, ~50 us forward + backward
# (64 x 96 x 288: level; 256 x 96 x 384: oneDNN 1.8x / 1.3x; 16 x 96 x 96: MKL 3x / 2x)
MIN_PRODUCT = 1 << 22
SCORE_CHUNK = 3 << 18  # fp32 scores per block (3 MB; 501 query rows at 1568 tokens, the fastest measured)

_state = {"backend": None}  # the resolved choice: "onednn" | "blas" (None: read VJEPA_CPU_GEMM on first use)


def _onednn_available() -> bool:
    return (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise"))


def _amd_cpu() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            return any(line.startswith("vendor_id") and "AuthenticAMD" in line for line in f)
    except OSError:
        return False


def resolve(name: str) -> str:
    """`auto | onednn | blas` -> the backend that runs here ("onednn" only where oneDNN is in this torch)."""
    if name not in BACKENDS:
        raise VjepaError(f"VJEPA_CPU_GEMM={name!r} is not a backend of fp32 CPU products",
                         hint=f"set it to one of {', '.join(BACKENDS)}, or unset it")
    if name == "blas" or not _onednn_available():
        return "blas"
    return "onednn" if name == "onednn" or _amd_cpu() else "blas"


def backend() -> str:
    """The backend of fp32 CPU products in this process: "onednn" or "blas"."""
    if _state["backend"] is None:
        _state["backend"] = resolve(os.environ.get("VJEPA_CPU_GEMM", "auto").strip().lower() or "auto")
    return _state["backend"]


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[str]:
    """Run a block with the backend `name` (auto | onednn | blas); yields the one that runs."""
    before = _state["backend"]
    _state["backend"] = resolve(name)
    try:
        yield _state["backend"]
    finally:
        _state["backend"] = before


def _tracing() -> bool:
    compiling = getattr(torch.compiler, "is_compiling", None)  # torch >= 2.3
    return (torch.jit.is_tracing() or torch.jit.is_scripting() or torch.onnx.is_in_onnx_export()
            or (compiling is not None and compiling()))


def autocast_on(device_type: str) -> bool:
    """Whether autocast is on for `device_type` ("cpu", "cuda", ...)."""
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4: no per-device query
        return torch.is_autocast_cpu_enabled() if device_type == "cpu" else torch.is_autocast_enabled()


def on_onednn(*tensors: Tensor) -> bool:
    """Whether products of these tensors take the oneDNN path: fp32 CPU tensors, backend on, no autocast/tracing."""
    if backend() != "onednn" or _tracing() or autocast_on("cpu"):
        return False
    return all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors)


def takes_onednn(x: Tensor, weight: Tensor) -> bool:
    """Whether `linear(x, weight)` runs on oneDNN: `on_onednn` and a product of at least MIN_PRODUCT
    multiply-adds (x (..., in), weight (out, in))."""
    if x.dim() < 2 or not on_onednn(x, weight):
        return False
    return x.numel() > 0 and x.numel() * weight.shape[0] >= MIN_PRODUCT


def _product(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


class _Linear(torch.autograd.Function):
    """x (..., in) @ weight (out, in)^T + bias, forward and backward through oneDNN."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return _product(x, weight, bias)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        g = grad.reshape(-1, grad.shape[-1])  # (M, out)
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = _product(g, weight.t(), None).view(x.shape)  # (M, out) @ (out, in)
        if ctx.needs_input_grad[1]:
            gw = _product(g.t(), x.reshape(-1, x.shape[-1]).t(), None)  # (out, M) @ (M, in)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = g.sum(0)
        return gx, gw, gb


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None, *, gelu: bool = False,
           residual: Tensor | None = None) -> Tensor:
    """`residual + act(x @ weight^T + bias)`, act = exact GELU when `gelu`, else identity (not both: a residual
    after GELU is not a block's pattern). x (..., in), weight (out, in), residual (..., out).

    The residual add rides in the product: oneDNN's fused add, or on the BLAS one `addmm` accumulating onto
    `residual + bias` (one pass over the output instead of the bias broadcast and a separate add; same sums,
    another rounding order). Under autocast the plain sum: the GEMM would run in the low precision and take the
    residual stream with it."""
    if gelu and residual is not None:
        raise ValueError("linear: gelu and residual together are not supported")
    if takes_onednn(x, weight):
        if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, weight, bias)):
            out = _Linear.apply(x, weight, bias)
        elif gelu:
            return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "gelu", [], "none")
        elif residual is not None and residual.shape[:-1] == x.shape[:-1] and residual.dtype == torch.float32:
            return torch.ops.mkldnn._linear_pointwise.binary(x, residual.contiguous(), weight, bias, "add")
        else:
            out = _product(x, weight, bias)
    elif residual is not None and not autocast_on(residual.device.type):
        base = residual + bias if bias is not None else residual  # addmm leaves its input alone
        out = torch.addmm(base.reshape(-1, base.shape[-1]), x.reshape(-1, x.shape[-1]), weight.t())
        # a fresh tensor, not a view of the 2-D product (as torch.matmul returns it): FSDP warns that an
        # in-place op on a wrapped block's view output would skip its hooks
        return torch.ops.aten._unsafe_view(out, residual.shape)
    else:
        out = F.linear(x, weight, bias)
    if gelu:  # without autograd in place: a fresh (N, hidden) output costs more than the erf itself on CPU
        return F.gelu(out) if out.requires_grad else torch.ops.aten.gelu_(out)
    return out if residual is None else residual + out


def self_attention(q: Tensor, k: Tensor, v: Tensor, attn_mask: Tensor | None = None) -> Tensor:
    """softmax(q k^T / sqrt(hd) [+ mask]) v for q, k, v (B, h, N, hd) -> (B, N, h * hd), the heads' outputs side
    by side as the output projection takes them."""
    b, h, n, hd = q.shape
    grad = torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v))
    if attn_mask is not None or n < MIN_ATTENTION_TOKENS or k.shape[2] != n or grad or not on_onednn(q, k, v):
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # (B, h, N, hd)
        return out.transpose(1, 2).reshape(b, n, h * hd)
    out = q.new_empty(b, n, h, hd)
    q = q * (1.0 / math.sqrt(hd))
    rows = max(1, SCORE_CHUNK // n)
    for i in range(b):
        for j in range(h):
            kj, vt = k[i, j], v[i, j].t()  # (N, hd) as the product's weight; (hd, N)
            for s in range(0, n, rows):
                scores = _product(q[i, j, s:s + rows], kj, None)  # (rows, N)
                torch.ops.aten._softmax.out(scores, -1, False, out=scores)  # in place: one block alive, no trim
                out[i, s:s + rows, j] = _product(scores, vt, None)  # (rows, hd)
    return out.view(b, n, h * hd)
