"""Transformer building blocks shared by the encoder, the predictors and the probe.

Pre-norm ViT blocks (Dosovitskiy et al., 2021) as in V-JEPA (Bardes et al., 2024) and V-JEPA 2 (Assran et al.,
2025): LayerNorm eps 1e-6, fused qkv with bias, exact GELU, attention through
`torch.nn.functional.scaled_dot_product_attention`, stochastic depth (Huang et al., 2016). Parameter names are
the official ones (`norm1`, `attn.qkv`, `attn.proj`, `norm2`, `mlp.fc1`, `mlp.fc2`) so checkpoints load strictly.

Rotary positions are passed to the blocks as a `RopeTable` built once per forward (see `pos_embed.py`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import Tensor, nn

from vjepa_cli.models import cpu_gemm
from vjepa_cli.models.packed import Packed, packed_attention
from vjepa_cli.models.pos_embed import RopeTable

LN_EPS = 1e-6


class DropPath(nn.Module):
    """Stochastic depth: zero a sample's residual branch with probability `p` while training."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: Tensor, layout: Packed | None = None) -> Tensor:
        """x (B, ...), or packed (S, D) rows of `layout` (one draw per sample, shared by its rows)."""
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        if layout is not None:
            mask = x.new_empty(sum(b for b, _ in layout.shapes), 1).bernoulli_(keep)
            return x * layout.sample_rows(mask.div_(keep))  # (S, 1) broadcast over D
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask.div_(keep)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class PatchEmbed3D(nn.Module):
    """Tubelets -> tokens: `Conv3d(in_chans, dim, kernel=stride=(tubelet, patch, patch))`, t-major flatten."""

    def __init__(self, in_chans: int = 3, dim: int = 768, patch_size: int = 16, tubelet_size: int = 2):
        super().__init__()
        k = (tubelet_size, patch_size, patch_size)
        self.proj = nn.Conv3d(in_chans, dim, kernel_size=k, stride=k)

    def forward(self, x: Tensor) -> Tensor:
        # (B, C, T, H, W) -> (B, T'*H'*W', D): the convolution as one GEMM over the tubelets (cut into a
        # (B*N, C*t*p*p) matrix, the same arithmetic as the Conv3d up to summation order), token-major at once;
        # on CPU 6.5 against 9.2 ms (ViT-S, fp32) and 3 against 13 ms (ViT-B, bf16) for a 16x224 clip.
        # Remainders that the convolution's stride skips are cut.
        w = self.proj.weight  # (D, C, t, p, p)
        d, c, t, p, q = w.shape
        b, _, tt, hh, ww = x.shape
        nt, nh, nw = tt // t, hh // p, ww // q
        x = x[:, :, : nt * t, : nh * p, : nw * q]
        if x.stride(1) == 1:  # channels-last view of decoded (B, T, H, W, C) frames: gather in memory order
            tubes = x.permute(0, 2, 3, 4, 1).reshape(b, nt, t, nh, p, nw, q, c).permute(0, 1, 3, 5, 2, 4, 6, 7)
            w = w.permute(0, 2, 3, 4, 1)  # (D, t, p, p, C)
        else:
            tubes = x.reshape(b, c, nt, t, nh, p, nw, q).permute(0, 2, 4, 6, 1, 3, 5, 7)
        tubes = tubes.reshape(b * nt * nh * nw, -1)  # (B*N, t*p*p*C or C*t*p*p)
        return cpu_gemm.linear(tubes, w.reshape(d, -1), self.proj.bias).view(b, nt * nh * nw, d)


def linear_residual(linear: nn.Linear, x: Tensor, residual: Tensor | None) -> Tensor:
    """`residual + linear(x)` with the add inside the product (`cpu_gemm.linear`); no residual: `linear(x)`,
    on oneDNN where that is the faster library."""
    return cpu_gemm.linear(x, linear.weight, linear.bias, residual=residual)


class Mlp(nn.Module):
    """fc1 -> exact GELU -> fc2 (hidden width default 4 * dim)."""

    def __init__(self, dim: int, hidden_dim: int | None = None, out_dim: int | None = None):
        super().__init__()
        hidden = hidden_dim or 4 * dim
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, out_dim or dim)

    def forward(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        """fc2(gelu(fc1(x))), plus `residual` (x's shape but the last dim: out_dim) when given, in fc2's GEMM."""
        h = cpu_gemm.linear(x, self.fc1.weight, self.fc1.bias, gelu=True)  # GELU fused where oneDNN runs
        return linear_residual(self.fc2, h, residual)


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection and optional 3D RoPE.

    Args:
        dim: token width D.
        num_heads: heads; head dim = D / num_heads.
        qkv_bias: bias on the qkv projection.
        use_rope: rotate q and k with the `rope` table given to `forward` (V-JEPA 2).
    """

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = True, use_rope: bool = False):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.use_rope = use_rope
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, rope: RopeTable | None = None, attn_mask: Tensor | None = None,
                layout: Packed | None = None, residual: Tensor | None = None) -> Tensor:
        """x (B, N, D); rope tables for N tokens (needed when use_rope); attn_mask bool (True = attend) or
        float additive, broadcastable to (B, heads, N, N). With `layout`: x is packed (S, D) (`packed.py`),
        each batch attends within itself, rope is a `packed_rope` table and attn_mask must be None.
        `residual` (x's shape), when given, is added to the output inside the output projection's GEMM."""
        if layout is not None:
            if attn_mask is not None or (self.use_rope and rope is None):
                raise ValueError("packed attention takes no attn_mask, and needs the rope table when use_rope")
            qkv = linear_residual(self.qkv, x, None)  # (S, 3 D)
            return linear_residual(self.proj, packed_attention(qkv, layout, self.num_heads,
                                                               rope if self.use_rope else None), residual)
        b, n, d = x.shape
        # unbind on the (B, N, 3, h, hd) view, then transpose: in backward the three grads are stacked straight
        # into the layout of the qkv output (one copy; indexing a permuted view costs zero-fills and two copies).
        # On CPU, one copy each to (B, h, N, hd) memory: the CPU flash kernel runs 8 % faster on it than on the
        # strided view (1568 tokens, head dim 64), for 2 % of that in copies. (Not measured on GPUs: left as is.)
        qkv = linear_residual(self.qkv, x, None)  # (B, N, 3 D)
        q, k, v = (t.transpose(1, 2) for t in qkv.view(b, n, 3, self.num_heads, self.head_dim).unbind(2))
        if x.device.type == "cpu":
            q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
        if self.use_rope:  # q, k, v: (B, h, N, hd)
            if rope is None:
                raise ValueError("this attention uses RoPE: pass the rope table")
            q, k = rope.apply(q), rope.apply(k)  # rotated in the tables' dtype (fp32), returned in v's dtype
        out = cpu_gemm.self_attention(q, k, v, attn_mask=attn_mask)  # (B, N, D): the heads side by side
        return linear_residual(self.proj, out, residual)


class Block(nn.Module):
    """Pre-norm transformer block: `x += drop(attn(LN1 x))`, `x += drop(mlp(LN2 x))`.

    Args:
        dim: token width.
        num_heads: attention heads.
        mlp_ratio: MLP hidden = int(dim * mlp_ratio).
        qkv_bias: bias on qkv.
        drop_path: stochastic-depth rate of this block.
        use_rope: 3D RoPE inside attention.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 drop_path: float = 0.0, use_rope: bool = False):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias, use_rope=use_rope)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor, rope: RopeTable | None = None, attn_mask: Tensor | None = None,
                layout: Packed | None = None) -> Tensor:
        """x (B, N, D), or packed (S, D) with its `layout` (see `Attention.forward`)."""
        if isinstance(self.drop_path, nn.Identity):  # the residual adds ride in the projections' GEMMs
            x = self.attn(self.norm1(x), rope=rope, attn_mask=attn_mask, layout=layout, residual=x)
            return self.mlp(self.norm2(x), residual=x)
        x = x + self.drop_path(self.attn(self.norm1(x), rope=rope, attn_mask=attn_mask, layout=layout), layout)
        return x + self.drop_path(self.mlp(self.norm2(x)), layout)


class CrossAttention(nn.Module):
    """Queries attend to tokens: `q` Linear on the queries, fused `kv` Linear on the tokens.

    `use_proj=True` keeps the output projection `proj` (V-JEPA 1 probe); V-JEPA 2's probe has none.
    """

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = True, use_proj: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim) if use_proj else None
        self.pool_first = True  # allow the pool-first path (False: always project keys and values, as upstream)

    def pools_first(self, num_queries: int, attn_mask: Tensor | None = None) -> bool:
        """Whether `forward` takes the pool-first path: no mask and fewer queries than channels per head
        (h n < D: the path's cost per token, 2 h n D, is then below the key/value projections' 2 D^2)."""
        return self.pool_first and attn_mask is None and num_queries < self.head_dim

    def forward(self, q: Tensor, x: Tensor, attn_mask: Tensor | None = None,
                token_affine: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """q (B, n, D) queries, x (B, N, D) tokens -> (B, n, D).

        `token_affine` = (weight, bias): attend to `x * weight + bias` instead of x (a LayerNorm's affine part,
        applied for free on the pool-first path, so the tokens need no gradient)."""
        b, n, d = q.shape
        q = self.q(q).view(b, n, self.num_heads, self.head_dim).transpose(1, 2)  # (B, h, n, hd)
        if self.pools_first(n, attn_mask):
            out = self._pool_first(q, x, token_affine)
        else:
            if token_affine is not None:
                x = x * token_affine[0] + token_affine[1]
            kv = self.kv(x).view(b, x.shape[1], 2, self.num_heads, self.head_dim)
            k, v = (t.transpose(1, 2) for t in kv.unbind(2))  # (B, h, N, hd) each
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # (B, h, n, hd)
        out = out.transpose(1, 2).reshape(b, n, d)
        return self.proj(out) if self.proj is not None else out

    def _pool_first(self, q: Tensor, x: Tensor, token_affine: tuple[Tensor, Tensor] | None) -> Tensor:
        """The same attention without projecting the N tokens to keys and values (exact up to rounding).

        Logits q.(W_k x + b_k) = (W_k^T q).x + q.b_k, and the last term is one constant per query, which the
        softmax cancels; the output sum_i a_i (W_v x_i + b_v) = W_v (sum_i a_i x_i) + b_v as the weights sum to 1.
        So each query moves into token space once and the tokens are only dotted and averaged: O(N D) per query
        and head instead of O(N D^2) for the projections. Few queries on many frozen tokens (attentive probes)
        train several times faster this way. A token affine (g, c) folds in the same way: u.(g x + c) =
        (u g).x + u.c, the last term again constant per query, and sum_i a_i (g x_i + c) = g sum_i a_i x_i + c.
        """
        h, hd, d = self.num_heads, self.head_dim, x.shape[-1]
        w_k, w_v = self.kv.weight.view(2, h, hd, d).unbind(0)  # (h, hd, D) each
        u = torch.einsum("bhnc,hcd->bhnd", q, w_k) * hd ** -0.5  # (B, h, n, D) queries in token space
        if token_affine is not None:
            u = u * token_affine[0]
        attn = torch.einsum("bhnd,bmd->bhnm", u, x).softmax(dim=-1)  # (B, h, n, N)
        pooled = torch.einsum("bhnm,bmd->bhnd", attn, x)  # (B, h, n, D)
        if token_affine is not None:
            pooled = pooled * token_affine[0] + token_affine[1]
        out = torch.einsum("bhnd,hcd->bhnc", pooled, w_v)  # (B, h, n, hd)
        if self.kv.bias is not None:
            out = out + self.kv.bias.view(2, h, 1, hd)[1]
        return out


class CrossAttentionBlock(nn.Module):
    """`q += xattn(q, LN1 x)`, then `q += mlp(LN2 q)` (the query itself is not normalised, as upstream)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 use_proj: bool = True):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.xattn = CrossAttention(dim, num_heads, qkv_bias=qkv_bias, use_proj=use_proj)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, q: Tensor, x: Tensor) -> Tensor:
        n1 = self.norm1
        if self.xattn.pools_first(q.shape[1]) and n1.elementwise_affine and n1.bias is not None:
            # LN1's affine goes into the attention: the normalised tokens need no gradient (frozen features)
            x = F.layer_norm(x, n1.normalized_shape, eps=n1.eps)
            q = q + self.xattn(q, x, token_affine=(n1.weight, n1.bias))
        else:
            q = q + self.xattn(q, n1(x))
        return q + self.mlp(self.norm2(q))


@torch.no_grad()
def init_weights(module: nn.Module, std: float = 0.02, generator: torch.Generator | None = None) -> None:
    """Official init on every submodule: trunc_normal(std) Linear/Conv weights (cut-offs +-2 absolute, as
    upstream), zero biases, LayerNorm 1/0. Draws from `generator` when given (deterministic, no global RNG)."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.Conv3d)):
            nn.init.trunc_normal_(m.weight, std=std, a=-2.0, b=2.0, generator=generator)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            if m.weight is not None:
                nn.init.ones_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


@torch.no_grad()
def init_modality(module: nn.Module, generator: torch.Generator | None = None) -> None:
    """V-JEPA 2.1 modality vectors (`img_mod_embed`, `video_mod_embed`) drawn N(0, 1e-6^2), as upstream."""
    for p in (module.img_mod_embed, module.video_mod_embed):
        nn.init.normal_(p, std=1e-6, generator=generator)


@torch.no_grad()
def rescale_blocks(blocks, first_layer: int = 1) -> None:
    """`_rescale_blocks`: divide attn.proj and mlp.fc2 weights of block l (1-based) by sqrt(2 l)."""
    for layer_id, blk in enumerate(blocks, first_layer):
        blk.attn.proj.weight.div_(math.sqrt(2.0 * layer_id))
        blk.mlp.fc2.weight.div_(math.sqrt(2.0 * layer_id))


def run_blocks(blocks, x: Tensor, rope: RopeTable | None = None, attn_mask: Tensor | None = None,
               checkpointing: bool = False, return_layers: list[int] | None = None,
               layout: Packed | None = None) -> tuple[Tensor, list[Tensor]]:
    """Run `blocks` in order (on packed (S, D) tokens with a `layout`); activation checkpointing (non-reentrant)
    when asked and training.

    Returns the output and the hidden states after the blocks in `return_layers` (negative indices allowed).
    """
    keep: set[int] = set()
    if return_layers:
        n = len(blocks)
        for i in return_layers:
            if not -n <= i < n:
                raise ValueError(f"return_layers index {i} out of range for {n} blocks")
            keep.add(i % n)
    hidden: dict[int, Tensor] = {}
    for i, blk in enumerate(blocks):
        if checkpointing and torch.is_grad_enabled():
            x = torch.utils.checkpoint.checkpoint(blk, x, rope, attn_mask, layout, use_reentrant=False)
        elif layout is not None:
            x = blk(x, rope, attn_mask, layout)
        else:
            x = blk(x, rope, attn_mask)
        if i in keep:
            hidden[i] = x
    return x, [hidden[i % len(blocks)] for i in (return_layers or [])]


class TokenMLP(nn.Module):
    """Frozen patch tokens -> a vector: LayerNorm, a per-token projection to `proj` channels, the tokens
    flattened in grid order (so the position of what is seen survives, unlike mean pooling), then an Mlp.
    (B, N, D) -> (B, out_dim)."""

    def __init__(self, num_tokens: int, dim: int, out_dim: int, proj: int = 8, hidden: int = 128):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.proj = nn.Linear(dim, proj)
        self.mlp = Mlp(num_tokens * proj, hidden, out_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.mlp(self.proj(self.norm(x)).flatten(1))  # (B, N * proj) -> (B, out_dim)


def init_fan_in(module: nn.Module, generator: torch.Generator | None = None) -> None:
    """Small heads: trunc_normal(1 / sqrt(fan_in)) Linear weights (unit-scale outputs from the start, where the
    ViT's std 0.02 leaves a shallow head on a long plateau), zero biases, LayerNorm 1/0; from `generator`."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            std = m.in_features ** -0.5
            nn.init.trunc_normal_(m.weight, std=std, a=-2 * std, b=2 * std, generator=generator)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
