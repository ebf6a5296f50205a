"""The oneDNN path of fp32 CPU products (`vjepa_cli.models.cpu_gemm`) against PyTorch's own ops, in float64."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vjepa_cli.cli import main
from vjepa_cli.config.model import ModelConfig
from vjepa_cli.errors import VjepaError
from vjepa_cli.models import build_encoder, cpu_gemm

ONEDNN = cpu_gemm.resolve("onednn") == "onednn"
needs_onednn = pytest.mark.skipif(not ONEDNN, reason="this torch has no oneDNN")


@pytest.fixture(autouse=True)
def _small_products_too(monkeypatch):
    """The products below are small; the size threshold has a test of its own."""
    monkeypatch.setattr(cpu_gemm, "MIN_PRODUCT", 1)


def _g(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_backend_names():
    assert cpu_gemm.resolve("blas") == "blas"
    assert cpu_gemm.resolve("auto") in ("blas", "onednn")
    with pytest.raises(VjepaError, match="VJEPA_CPU_GEMM='mkl'"):
        cpu_gemm.resolve("mkl")
    with cpu_gemm.use_backend("blas") as name:
        assert name == "blas" and cpu_gemm.backend() == "blas"
        assert not cpu_gemm.on_onednn(torch.zeros(2, 2))


def test_bad_environment_value_is_one_line(monkeypatch, capsys):
    monkeypatch.setenv("VJEPA_CPU_GEMM", "fast")
    monkeypatch.setitem(cpu_gemm._state, "backend", None)
    with pytest.raises(SystemExit) as e:
        main(["synth", "--help"])
    err = capsys.readouterr().err
    assert e.value.code == 1 and "VJEPA_CPU_GEMM='fast'" in err and "auto, onednn, blas" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


@needs_onednn
def test_onednn_only_for_fp32_cpu_outside_autocast():
    with cpu_gemm.use_backend("onednn"):
        assert cpu_gemm.on_onednn(torch.zeros(2, 2))
        assert not cpu_gemm.on_onednn(torch.zeros(2, 2, dtype=torch.bfloat16))
        assert not cpu_gemm.on_onednn(torch.zeros(2, 2), torch.zeros(2, 2, dtype=torch.float64))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert not cpu_gemm.on_onednn(torch.zeros(2, 2))


@needs_onednn
@pytest.mark.parametrize("mode", ["plain", "gelu", "residual"])
@pytest.mark.parametrize("grad", [False, True])
def test_linear_matches_float64(mode, grad):
    x = torch.randn(3, 70, 48, generator=_g(0))
    w, b = torch.randn(96, 48, generator=_g(1)) / 7, torch.randn(96, generator=_g(2))
    r = torch.randn(3, 70, 96, generator=_g(3))
    gelu, res = mode == "gelu", (r if mode == "residual" else None)

    def ref(x, w, b):
        out = F.linear(x, w, b)
        return F.gelu(out) if gelu else (out + r.double() if res is not None else out)

    xd, wd, bd = (t.double().requires_grad_(grad) for t in (x, w, b))
    want = ref(xd, wd, bd)
    xs, ws, bs = (t.clone().requires_grad_(grad) for t in (x, w, b))
    with cpu_gemm.use_backend("onednn"), torch.set_grad_enabled(grad):
        got = cpu_gemm.linear(xs, ws, bs, gelu=gelu, residual=res)
    assert got.dtype == torch.float32 and got.shape == want.shape
    assert (got.double() - want).abs().max() < 1e-4
    if grad:
        up = torch.randn(want.shape, generator=_g(4))
        want.backward(up.double())
        got.backward(up)
        for mine, theirs in ((xs, xd), (ws, wd), (bs, bd)):
            assert (mine.grad.double() - theirs.grad).abs().max() < 1e-3 * theirs.grad.abs().max()


@needs_onednn
def test_small_products_stay_on_the_blas(monkeypatch):
    monkeypatch.setattr(cpu_gemm, "MIN_PRODUCT", 1 << 22)
    w = torch.zeros(384, 96)
    with cpu_gemm.use_backend("onednn"):
        assert not cpu_gemm.takes_onednn(torch.zeros(16, 96), w)  # 0.6 M multiply-adds
        assert cpu_gemm.takes_onednn(torch.zeros(2, 128, 96), w)  # 9.4 M
        assert not cpu_gemm.takes_onednn(torch.zeros(0, 96), w) and not cpu_gemm.takes_onednn(torch.zeros(96), w)


@needs_onednn
def test_linear_on_strided_views():
    """Transposed and sliced operands (as the backward's own products take them) give the same product."""
    x = torch.randn(48, 3, 70, generator=_g(7)).permute(1, 2, 0)  # (3, 70, 48), not contiguous
    w = torch.randn(48, 96 * 2, generator=_g(8))[:, ::2].t()  # (96, 48), strided
    with cpu_gemm.use_backend("onednn"), torch.no_grad():
        got = cpu_gemm.linear(x, w)
    assert (got.double() - F.linear(x.double(), w.double())).abs().max() < 1e-4


@needs_onednn
def test_linear_grad_of_the_weight_only():
    """A frozen input (features) and a trained weight: the input gets no gradient, the weight the right one."""
    x, w = torch.randn(40, 16, generator=_g(5)), torch.randn(8, 16, generator=_g(6)).requires_grad_()
    with cpu_gemm.use_backend("onednn"):
        cpu_gemm.linear(x, w).square().sum().backward()
    wd = w.detach().double().requires_grad_()
    F.linear(x.double(), wd).square().sum().backward()
    assert x.grad is None and (w.grad.double() - wd.grad).abs().max() < 1e-3


@needs_onednn
@pytest.mark.parametrize("chunk", [None, 5000])
def test_attention_matches_sdpa(chunk, monkeypatch):
    """Two clips, 3 heads, 603 tokens: one block per head, or query chunks of 8 rows (the last one 3)."""
    if chunk:
        monkeypatch.setattr(cpu_gemm, "SCORE_CHUNK", chunk)
    q, k, v = (torch.randn(2, 3, 603, 16, generator=_g(i)) for i in range(3))
    want = F.scaled_dot_product_attention(q.double(), k.double(), v.double()).transpose(1, 2).reshape(2, 603, 48)
    with cpu_gemm.use_backend("onednn"), torch.no_grad():
        got = cpu_gemm.self_attention(q, k, v)
    assert got.shape == (2, 603, 48) and (got.double() - want).abs().max() < 1e-5


@needs_onednn
def test_attention_with_a_mask_or_autograd_takes_sdpa():
    q, k, v = (torch.randn(1, 2, 520, 8, generator=_g(i)) for i in range(3))
    mask = torch.rand(520, 520, generator=_g(9)) > 0.3
    with cpu_gemm.use_backend("onednn"):
        got = cpu_gemm.self_attention(q, k, v, attn_mask=mask)
        qg = q.clone().requires_grad_()
        grad_out = cpu_gemm.self_attention(qg, k, v)
    want = F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2).reshape(1, 520, 16)
    assert torch.equal(got, want) and grad_out.requires_grad


@needs_onednn
def test_encoder_same_under_both_backends():
    """A whole V-JEPA 2 encoder (RoPE, 784 tokens: the attention takes the oneDNN path) agrees across backends,
    in inference and in its gradients."""
    cfg = ModelConfig(arch="vit_tiny", num_frames=8, img_size=224, pos_embed="rope")
    enc = build_encoder(cfg, _g(0))
    x = torch.randn(1, 3, 8, 224, 224, generator=_g(1))
    up = torch.randn(1, 784, 192, generator=_g(2))
    outs, grads = {}, {}
    for name in ("blas", "onednn"):
        with cpu_gemm.use_backend(name):
            with torch.inference_mode():
                outs[name] = enc(x)
            enc.zero_grad()
            (enc(x) * up).sum().backward()
            grads[name] = [p.grad.clone() for p in (enc.blocks[0].attn.qkv.weight, enc.blocks[-1].mlp.fc1.weight)]
    assert (outs["blas"] - outs["onednn"]).abs().max() < 1e-4
    for mine, theirs in zip(grads["onednn"], grads["blas"], strict=True):
        assert (mine - theirs).abs().max() < 1e-4 * theirs.abs().max()
