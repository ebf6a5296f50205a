"""An independent float64 V-JEPA 2.1 reference, written from the formulas of the official code as
`shared/reference/vjepa21-official.md` states them (sections 3 and 4), and synthetic official-layout checkpoints.

Nothing here imports `vjepa_cli.models`: tokens are cut with reshapes, RoPE is an explicit block-diagonal rotation
matrix per token built in a loop, LayerNorm, GELU and attention are spelled out. The checkpoints carry the
official key names (section 2) with random values, so conversion is tested against the layout, not our modules.
"""

from __future__ import annotations

import math

import torch

LN_EPS = 1e-6


# ------------------------------------------------------------------ formulas
def rope_axis_size(head_dim: int) -> int:
    """S = 2 * floor(floor(head_dim / 3) / 2) channels per axis (t, h, w); the rest pass through."""
    return 2 * ((head_dim // 3) // 2)


def token_position(n: int, grid: tuple[int, int, int], interp_grid: int = 0) -> tuple[float, float, float]:
    """(t, h, w) of token id n on a (T', H', W') grid; with interp_grid g, h and w are mapped onto 0..g-1."""
    _, hp, wp = grid
    t = n // (hp * wp)
    h = (n - t * hp * wp) // wp
    w = n - t * hp * wp - h * wp
    if interp_grid:
        return float(t), h * (interp_grid - 1) / (hp - 1), w * (interp_grid - 1) / (wp - 1)
    return float(t), float(h), float(w)


def rotation_matrix(pos: tuple[float, float, float], head_dim: int) -> torch.Tensor:
    """The 2.1 RoPE as a (head_dim, head_dim) matrix: adjacent pairs (2j, 2j+1) of each axis segment turn by
    p * 10000^(-2j/S) (out_2j = x_2j cos - x_2j+1 sin, out_2j+1 = x_2j+1 cos + x_2j sin)."""
    s = rope_axis_size(head_dim)
    r = torch.eye(head_dim, dtype=torch.float64)
    for axis, p in enumerate(pos):
        for j in range(s // 2):
            theta = p * 10000.0 ** (-2.0 * j / s)
            c = axis * s + 2 * j
            r[c, c], r[c, c + 1] = math.cos(theta), -math.sin(theta)
            r[c + 1, c], r[c + 1, c + 1] = math.sin(theta), math.cos(theta)
    return r


def rotations(ids: torch.Tensor, grid, head_dim: int, interp_grid: int = 0) -> torch.Tensor:
    """ids (B, N) -> (B, N, hd, hd) rotation matrices."""
    return torch.stack([torch.stack([rotation_matrix(token_position(int(n), grid, interp_grid), head_dim)
                                     for n in row]) for row in ids])


def layer_norm(x, w, b, eps=LN_EPS):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * w + b


def gelu(x):
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def linear(x, sd, name):
    return x @ sd[f"{name}.weight"].T + sd[f"{name}.bias"]


def block(x, sd, name, heads, rot):
    """Pre-norm block: x + proj(attention of RoPE-rotated q, k), then x + fc2(gelu(fc1(LN x)))."""
    b, n, d = x.shape
    hd = d // heads
    qkv = linear(layer_norm(x, sd[f"{name}.norm1.weight"], sd[f"{name}.norm1.bias"]), sd, f"{name}.attn.qkv")
    q, k, v = qkv.view(b, n, 3, heads, hd).permute(2, 0, 3, 1, 4)  # (B, h, N, hd) each
    q = torch.einsum("bnij,bhnj->bhni", rot, q)
    k = torch.einsum("bnij,bhnj->bhni", rot, k)
    att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd), dim=-1)
    x = x + linear((att @ v).transpose(1, 2).reshape(b, n, d), sd, f"{name}.attn.proj")
    h = layer_norm(x, sd[f"{name}.norm2.weight"], sd[f"{name}.norm2.bias"])
    return x + linear(gelu(linear(h, sd, f"{name}.mlp.fc1")), sd, f"{name}.mlp.fc2")


# ------------------------------------------------------------------ reference forward passes
def ref_encoder(sd, x, *, heads, levels, masks=None, hierarchical=False, patch=16, tubelet=2, interp_grid=16):
    """The 2.1 encoder (VT, MOD). x (B, C, T, H, W); T == 1 is the image path. Returns (B, N, D) (the last
    level), or (B, N, 4D) hierarchical; with a mask (B, K) of kept ids, only those tokens."""
    sd = {k: v.double() for k, v in sd.items()}
    x = x.double()
    image = x.shape[2] == 1
    kt = 1 if image else tubelet
    w = sd["patch_embed_img.proj.weight" if image else "patch_embed.proj.weight"]
    bias = sd["patch_embed_img.proj.bias" if image else "patch_embed.proj.bias"]
    bsz, c, t, h, wd = x.shape
    grid = (t // kt, h // patch, wd // patch)
    cells = x.view(bsz, c, grid[0], kt, grid[1], patch, grid[2], patch).permute(0, 2, 4, 6, 1, 3, 5, 7)
    tok = cells.reshape(bsz, -1, c * kt * patch * patch) @ w.reshape(w.shape[0], -1).T + bias  # t, h, w order
    tok = tok + sd["img_mod_embed" if image else "video_mod_embed"]
    ids = torch.arange(tok.shape[1]).expand(bsz, -1) if masks is None else masks
    tok = torch.stack([tok[i, ids[i]] for i in range(bsz)])
    rot = rotations(ids, grid, tok.shape[-1] // heads, interp_grid)
    outs = []
    for i in range(1 + max(levels)):
        tok = block(tok, sd, f"blocks.{i}", heads, rot)
        if i in levels:
            k = levels.index(i)
            outs.append(layer_norm(tok, sd[f"norms_block.{k}.weight"], sd[f"norms_block.{k}.bias"]))
    return torch.cat(outs, dim=-1) if hierarchical else outs[-1]


def ref_predictor(sd, ctx, ctx_ids, tgt_ids, *, grid, levels_in, heads=12, mask_index=0, modality="video"):
    """The 2.1 predictor (PR): embed the context (Linear, or Linear-GELU-Linear for several levels), mask tokens
    at the targets, sort by id, add the modality vector, blocks with RoPE on the (unscaled) grid, norm, unsort,
    then `predictor_proj` on targets and `predictor_proj_context` on the context. Returns (targets, context)."""
    sd = {k: v.double() for k, v in sd.items()}
    ctx = ctx.double()
    x = linear(ctx, sd, "predictor_embed") if levels_in == 1 else \
        linear(gelu(linear(ctx, sd, "predictor_embed.0")), sd, "predictor_embed.2")
    b, kc, d = x.shape
    n_tokens = sum(1 for k in sd if k.startswith("mask_tokens."))
    tgt = sd[f"mask_tokens.{mask_index % n_tokens}"].expand(b, tgt_ids.shape[1], d)
    x, ids = torch.cat([x, tgt], 1), torch.cat([ctx_ids, tgt_ids], 1)
    order = ids.argsort(dim=1)
    x = torch.stack([x[i, order[i]] for i in range(b)])
    x = x + sd["img_mod_embed" if modality == "image" else "video_mod_embed"]
    sorted_ids = torch.stack([ids[i, order[i]] for i in range(b)])
    rot = rotations(sorted_ids, grid, d // heads)
    depth = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("predictor_blocks."))
    for i in range(depth):
        x = block(x, sd, f"predictor_blocks.{i}", heads, rot)
    x = layer_norm(x, sd["predictor_norm.weight"], sd["predictor_norm.bias"])
    back = order.argsort(dim=1)
    x = torch.stack([x[i, back[i]] for i in range(b)])
    return linear(x[:, kc:], sd, "predictor_proj"), linear(x[:, :kc], sd, "predictor_proj_context")


# ------------------------------------------------------------------ synthetic official-layout checkpoints
def encoder_shapes(dim, depth, hidden, patch=16, tubelet=2, chans=3) -> dict:
    """Key -> shape of a 2.1 encoder state dict (section 2): 2 + 4 + 8 + 12 * depth keys."""
    shapes = {"img_mod_embed": (1, 1, dim), "video_mod_embed": (1, 1, dim),
              "patch_embed.proj.weight": (dim, chans, tubelet, patch, patch), "patch_embed.proj.bias": (dim,),
              "patch_embed_img.proj.weight": (dim, chans, 1, patch, patch), "patch_embed_img.proj.bias": (dim,)}
    for i in range(depth):
        p = f"blocks.{i}"
        shapes.update({f"{p}.norm1.weight": (dim,), f"{p}.norm1.bias": (dim,), f"{p}.norm2.weight": (dim,),
                       f"{p}.norm2.bias": (dim,), f"{p}.attn.qkv.weight": (3 * dim, dim),
                       f"{p}.attn.qkv.bias": (3 * dim,), f"{p}.attn.proj.weight": (dim, dim),
                       f"{p}.attn.proj.bias": (dim,), f"{p}.mlp.fc1.weight": (hidden, dim),
                       f"{p}.mlp.fc1.bias": (hidden,), f"{p}.mlp.fc2.weight": (dim, hidden), f"{p}.mlp.fc2.bias": (dim,)})
    for k in range(4):
        shapes.update({f"norms_block.{k}.weight": (dim,), f"norms_block.{k}.bias": (dim,)})
    return shapes


def predictor_shapes(dim, depth, levels, out_dim, pdim=384, mask_tokens=8) -> dict:
    """Key -> shape of a 2.1 predictor state dict (section 2): 162 keys for B/L, 308 for g/G at depth 12 / 24."""
    shapes = {"video_mod_embed": (1, 1, pdim), "img_mod_embed": (1, 1, pdim)}
    if levels == 1:
        shapes.update({"predictor_embed.weight": (pdim, dim), "predictor_embed.bias": (pdim,)})
    else:
        shapes.update({"predictor_embed.0.weight": (dim, levels * dim), "predictor_embed.0.bias": (dim,),
                       "predictor_embed.2.weight": (pdim, dim), "predictor_embed.2.bias": (pdim,)})
    shapes.update({f"mask_tokens.{i}": (1, 1, pdim) for i in range(mask_tokens)})
    shapes.update({k.replace("blocks.", "predictor_blocks.", 1): s for k, s in encoder_shapes(pdim, depth, 4 * pdim).items()
                   if k.startswith("blocks.")})
    out = levels * out_dim
    shapes.update({"predictor_norm.weight": (pdim,), "predictor_norm.bias": (pdim,),
                   "predictor_proj.weight": (out, pdim), "predictor_proj.bias": (out,),
                   "predictor_proj_context.weight": (out, pdim), "predictor_proj_context.bias": (out,)})
    return shapes


def random_state(shapes: dict, seed: int) -> dict:
    """Random tensors for `shapes`: LayerNorm weights near 1, other tensors N(0, 0.05^2) (mask tokens and
    modality vectors included, so every difference shows)."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, s in shapes.items():
        v = torch.randn(s, generator=g) * 0.05
        if "norm" in k and k.endswith(".weight"):
            v = v + 1.0
        sd[k] = v
    return sd


def official_checkpoint(encoder: dict, predictor: dict | None, *, key: str, prefix: str = "") -> dict:
    """A checkpoint dict as the official code writes it: the encoder under `key` (`ema_encoder` in the B/L
    releases, `target_encoder` in g/G and training checkpoints), names optionally `module.backbone.`-prefixed."""
    pre = lambda sd: {prefix + k: v.clone() for k, v in sd.items()}  # noqa: E731
    ck = {key: pre(encoder)}
    if predictor is not None:
        ck["predictor"] = pre(predictor)
    if key == "target_encoder":  # a training checkpoint also holds the context encoder and counters
        ck.update(encoder=pre({k: v + 0.01 for k, v in encoder.items()}), epoch=3, loss=0.25, batch_size=2,
                  world_size=1, lr=1e-4, opt=None, scaler=None)
    return ck
