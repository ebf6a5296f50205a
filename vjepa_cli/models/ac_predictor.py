"""Action-conditioned predictor (V-JEPA 2-AC): next-frame patch features from frame features + actions.

Assran et al., "V-JEPA 2: Self-Supervised Video Models Enable Understanding, Prediction and Planning"
(2025), sec. 3. Per time step t the sequence holds `[action_t, (state_t,) (extrinsics_t,) patch tokens of
frame t]`; block-causal attention lets every token of step t see all tokens of steps <= t, and the patch
tokens of step t are read out as the prediction of frame t+1. Positions are 3D RoPE (time, row, column) with
the conditioning tokens rotated on time only, or learned embeddings. Parameter names follow the official
model (`predictor_embed`, `action_encoder`, `state_encoder`, `extrinsics_encoder`, `predictor_blocks.i`,
`predictor_norm`, `predictor_proj`), so the released `vjepa2-ac-vitg.pt` predictor loads strictly
(`vjepa convert`): it is 1024 wide, 24 blocks, 16 heads, 7-d actions and states, with a 6-d
`extrinsics_encoder` that is stored but unused (the official `use_extrinsics` switch is off).

Official RoPE layout (`ACRoPEAttention`): per head, the first `d = 2 * ((head_dim // 3) // 2)` channels
rotate with the frame index, the next d with the row, the next d with the column times `H'/W'` (1 on
square grids), the rest are left alone; conditioning tokens rotate only their first d channels, with the
frame index. Here that is RoPE at positions (t, 0, 0), which leaves the row/column channels unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

from vjepa_cli.config.model import ACPredictorConfig
from vjepa_cli.models.layers import LN_EPS, Block, init_weights, run_blocks
from vjepa_cli.models.pos_embed import RopeTable


def block_causal_mask(num_frames: int, tokens_per_frame: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Boolean [T*P, T*P] mask, True = may attend: token i sees token j iff frame(j) <= frame(i)."""
    frame = torch.arange(num_frames, device=device).repeat_interleave(tokens_per_frame)  # (T*P,)
    return frame[:, None] >= frame[None, :]


class ACPredictor(nn.Module):
    """`forward(z [B, T, N, D], actions [B, T, A], states [B, T, S]?, extrinsics [B, T, E]?) -> [B, T, N, D]`:
    output t predicts frame t+1; with `with_states` (a predictor built with `predict_states`) also the states
    [B, T, S] it predicts for frames 1..T, in the states' own units."""

    def __init__(self, cfg: ACPredictorConfig, generator: torch.Generator | None = None):
        super().__init__()
        self.cfg = cfg
        Dp = cfg.pred_embed_dim
        self.predictor_embed = nn.Linear(cfg.embed_dim, Dp)
        self.action_encoder = nn.Linear(cfg.action_dim, Dp)
        self.state_encoder = nn.Linear(cfg.state_dim, Dp) if cfg.state_dim else None
        # stored whenever the weights have one (official); used only with `use_extrinsics`
        self.extrinsics_encoder = nn.Linear(cfg.extrinsics_dim, Dp) if cfg.extrinsics_dim else None
        self.predictor_blocks = nn.ModuleList(
            Block(Dp, cfg.num_heads, cfg.mlp_ratio, use_rope=cfg.pos == "rope") for _ in range(cfg.depth))
        self.predictor_norm = nn.LayerNorm(Dp, eps=LN_EPS)
        self.predictor_proj = nn.Linear(Dp, cfg.embed_dim)
        # reads the state token's output as the next state's change (standardised units)
        self.state_proj = nn.Linear(Dp, cfg.state_dim) if cfg.predict_states else None
        if cfg.state_mean:
            self.register_buffer("state_mean", torch.tensor(cfg.state_mean), persistent=False)
            self.register_buffer("state_std", torch.tensor(cfg.state_std), persistent=False)
        if cfg.pos == "learned":
            self.pos_embed = nn.Parameter(torch.zeros(1, cfg.max_frames, cfg.tokens_per_frame, Dp))
        self._masks: dict[tuple[int, str], torch.Tensor] = {}  # block-causal masks, cached per (T, device)
        self._ropes: dict[tuple[int, str, torch.dtype], RopeTable] = {}  # RoPE tables, cached likewise
        self.reset_parameters(generator)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Official init (truncated normal 0.02, zero biases), drawn from `generator`."""
        init_weights(self, generator=generator)
        if self.cfg.pos == "learned":
            nn.init.trunc_normal_(self.pos_embed, std=0.02, generator=generator)

    def mask(self, num_frames: int, device: torch.device) -> torch.Tensor:
        key = (num_frames, str(device))
        if key not in self._masks:  # built for the T in use, not for a maximum (512 frames = GBs)
            self._masks[key] = block_causal_mask(num_frames, self.cfg.tokens_per_frame, device)
        return self._masks[key]

    def rope(self, num_frames: int, device: torch.device, dtype: torch.dtype) -> RopeTable:
        key = (num_frames, str(device), dtype)
        if key not in self._ropes:
            head_dim = self.cfg.pred_embed_dim // self.cfg.num_heads
            self._ropes[key] = RopeTable.build(self.positions(num_frames, device), head_dim, dtype)
        return self._ropes[key]

    def positions(self, num_frames: int, device: torch.device) -> torch.Tensor:
        """RoPE positions [T*P, 3]: (t, 0, 0) for conditioning tokens (time only), (t, row, col * H'/W') for
        patches (the official column scaling; 1 on square grids)."""
        gh, gw = self.cfg.grid
        c = self.cfg.cond_tokens
        rows = torch.arange(gh, device=device).repeat_interleave(gw)
        cols = torch.arange(gw, device=device).repeat(gh)
        frame_pos = torch.zeros(c + gh * gw, 3, device=device)
        frame_pos[c:, 1], frame_pos[c:, 2] = rows.float(), cols.float() * (gh / gw)
        pos = frame_pos.repeat(num_frames, 1)  # (T*P, 3)
        pos[:, 0] = torch.arange(num_frames, device=device).repeat_interleave(c + gh * gw).float()
        return pos

    def forward(self, z: torch.Tensor, actions: torch.Tensor, states: torch.Tensor | None = None,
                extrinsics: torch.Tensor | None = None,
                with_states: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        B, T, N, _ = z.shape
        cfg = self.cfg
        if with_states and self.state_proj is None:
            raise ValueError("this predictor does not predict states (built without predict_states)")
        if N != cfg.grid[0] * cfg.grid[1]:
            raise ValueError(f"expected {cfg.grid[0] * cfg.grid[1]} patch tokens per frame, got {N}")
        if cfg.action_low:  # to [-1, 1] by the recorded bounds (plain numbers: nothing to load or move)
            lo, hi = (torch.tensor(b, dtype=actions.dtype, device=actions.device)
                      for b in (cfg.action_low, cfg.action_high))
            actions = (actions - (lo + hi) / 2) / ((hi - lo) / 2)  # (B, T, A)
        toks = [self.action_encoder(actions).unsqueeze(2)]  # (B, T, 1, Dp)
        if self.state_encoder is not None:
            if states is None:
                raise ValueError("this predictor was built with state tokens: pass states [B, T, S]")
            if cfg.state_mean:
                states = (states - self.state_mean) / self.state_std  # (B, T, S) standardised
            toks.append(self.state_encoder(states).unsqueeze(2))
        if cfg.use_extrinsics:
            if extrinsics is None:
                raise ValueError("this predictor uses extrinsics tokens: pass extrinsics [B, T, E]")
            toks.append(self.extrinsics_encoder(extrinsics).unsqueeze(2))
        toks.append(self.predictor_embed(z))  # (B, T, N, Dp)
        x = torch.cat(toks, 2)  # (B, T, P, Dp)
        rope = None
        if cfg.pos == "learned":
            if T > cfg.max_frames:
                raise ValueError(f"sequence of {T} frames exceeds max_frames={cfg.max_frames}")
            x = x + self.pos_embed[:, :T]
        else:
            rope = self.rope(T, z.device, x.dtype)
        x = x.flatten(1, 2)  # (B, T*P, Dp)
        x, _ = run_blocks(self.predictor_blocks, x, rope=rope, attn_mask=self.mask(T, z.device))
        x = x.view(B, T, cfg.tokens_per_frame, -1)  # (B, T, P, Dp)
        feats = self.predictor_proj(self.predictor_norm(x[:, :, cfg.cond_tokens:]))  # patch tokens (B, T, N, D)
        if not with_states:
            return feats
        nxt = states + self.state_proj(self.predictor_norm(x[:, :, 1]))  # the state token's change (B, T, S)
        if cfg.state_mean:
            nxt = nxt * self.state_std + self.state_mean
        return feats, nxt

    def rollout(self, context: torch.Tensor, actions: torch.Tensor, states: torch.Tensor | None = None,
                extrinsics: torch.Tensor | None = None,
                return_states: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Autoregressive prediction from `context` [B, T0, N, D]; see `autoregress`. A predictor built with
        `predict_states` feeds its predicted states forward (`return_states`: also return them, [B, H, S])."""
        if return_states and self.state_proj is None:
            raise ValueError("this predictor does not predict states (built without predict_states)")
        out = autoregress(self, context, actions, states, extrinsics, feed_states=self.state_proj is not None)
        return out if return_states or self.state_proj is None else out[0]


def select_states(cfg: ACPredictorConfig, states: torch.Tensor | None) -> torch.Tensor | None:
    """The entries of recorded state vectors [..., S_recorded] that the predictor reads (`cfg.state_dims`; all
    when empty) -> [..., state_dim]; None stays None."""
    if states is None or not cfg.state_dims:
        return states
    return states[..., list(cfg.state_dims)]


def _hold_last(x: torch.Tensor | None, length: int) -> torch.Tensor | None:
    """Pad x [B, T, C] to `length` steps by repeating its last step (None stays None)."""
    if x is None or x.shape[1] >= length:
        return x
    return torch.cat([x, x[:, -1:].expand(-1, length - x.shape[1], -1)], 1)


def autoregress(step_fn, context: torch.Tensor, actions: torch.Tensor, states: torch.Tensor | None = None,
                extrinsics: torch.Tensor | None = None,
                feed_states: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Roll a predictor forward on its own outputs.

    `step_fn(z [B, T, N, D], a [B, T, A], s [B, T, S] | None) -> [B, T, N, D]` is the predictor (or a
    wrapper of it, e.g. for data parallelism). From `context` [B, T0, N, D] and `actions` [B, T0-1+H, A]
    (the context's own actions, then H new ones) predict H frames -> [B, H, N, D]. Without future
    states, the last given state is held (`states` [B, >=T0, S]); likewise `extrinsics` [B, >=T0, E],
    which are passed to `step_fn` as a fourth argument only when given. With `feed_states` the predictor
    predicts the states too (`step_fn(..., with_states=True) -> (features, states [B, T, S])`): the context's
    T0 observed states are followed by its own predictions, and the result is (features, states [B, H, S]).
    """
    T0 = context.shape[1]
    H = actions.shape[1] - (T0 - 1)
    if H < 1:
        raise ValueError("actions must cover the context and at least one new step")
    if feed_states:
        if states is None or states.shape[1] < T0:
            raise ValueError("a predictor that predicts states needs the context's states [B, T0, S]")
        states = states[:, :T0]
    else:
        states = _hold_last(states, actions.shape[1])
    extrinsics = _hold_last(extrinsics, actions.shape[1])
    seq, out, out_s = context, [], []
    for _ in range(H):
        T = seq.shape[1]
        args = (seq, actions[:, :T], None if states is None else states[:, :T])
        if extrinsics is not None:
            args += (extrinsics[:, :T],)
        if feed_states:
            feats, nxt_s = step_fn(*args, with_states=True)
            nxt = feats[:, -1]  # (B, N, D)
            out_s.append(nxt_s[:, -1])  # (B, S)
            states = torch.cat([states, nxt_s[:, -1:]], 1)
        else:
            nxt = step_fn(*args)[:, -1]  # (B, N, D)
        out.append(nxt)
        seq = torch.cat([seq, nxt.unsqueeze(1)], 1)
    if feed_states:
        return torch.stack(out, 1), torch.stack(out_s, 1)  # (B, H, N, D), (B, H, S)
    return torch.stack(out, 1)  # (B, H, N, D)
