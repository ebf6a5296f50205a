"""The world-model file that `vjepa wm train` writes and `wm plan` / `wm eval` read.

One safetensors file: `encoder.*` (the frozen encoder the predictor was trained on) and `predictor.*`
(the action-conditioned predictor), with JSON metadata: `format`, `encoder_config` (a ModelConfig),
`encoder_source`, `predictor_config` (an ACPredictorConfig), `action_names`, `action_low`, `action_high`,
`state_names`, `fps`, `stride`, `env`, optional heads (`reward.*` with `reward_config`, `policy.*` with
`policy_config`, `state.*` with `state_config`, `goal_reader.*` with `goal_reader_config`), `plan`
(WMPlanConfig defaults: `{cem: {...}, max_steps, prior_weight}`; files written before hold the CEM settings
flat, `{horizon, samples, ...}`, which still reads), `wm_config` and `step`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from vjepa_cli.config._load import from_dict, to_dict
from vjepa_cli.config.model import ModelConfig
from vjepa_cli.config.wm import WMPlanConfig
from vjepa_cli.errors import VjepaError
from vjepa_cli.io.tensors import load_tensors, meta_json, save_tensors
from vjepa_cli.models.ac_predictor import ACPredictor, ACPredictorConfig, select_states
from vjepa_cli.models.frozen import FrozenEncoder, encode_frames
from vjepa_cli.models.goal_reader import GoalReader, GoalReaderConfig
from vjepa_cli.models.policy_head import PolicyHead, PolicyHeadConfig
from vjepa_cli.models.reward_head import RewardHead, RewardHeadConfig
from vjepa_cli.models.state_head import StateHead, StateHeadConfig

FORMAT = "vjepa-wm/1"


class Predicted(NamedTuple):
    """A rollout of a predictor that predicts states too (`WorldModel.rollout_states`)."""

    features: torch.Tensor  # (S, H, N, D)
    states: torch.Tensor  # (S, H, S_dim), in the states' own units: the entries `predictor.cfg.state_dims` names


@dataclass(frozen=True)
class PlanContext:
    """Where a plan starts when one frame is not enough (e.g. a moving arm: one frame shows no velocity):
    the last T0 observed frames' features, the T0 - 1 actions executed between them and, for a predictor that
    reads states (`predictor.use_states`), the observed states of those frames (the last is held ahead)."""

    frames: torch.Tensor  # (T0, N, D), the current frame last
    actions: torch.Tensor  # (T0 - 1, A)
    states: torch.Tensor | None = None  # (T0, S) or None


@dataclass
class WorldModel:
    """Frozen encoder + action-conditioned predictor + what planning needs to know about the actions."""

    encoder: FrozenEncoder
    predictor: ACPredictor
    action_low: tuple[float, ...]
    action_high: tuple[float, ...]
    action_names: tuple[str, ...]
    plan: WMPlanConfig
    meta: dict[str, Any]
    reward_head: RewardHead | None = None  # learned reward on features (wm train with heads.reward)
    policy_head: PolicyHead | None = None  # goal-conditioned behaviour cloning (heads.policy)
    state_head: StateHead | None = None  # state probe, a goal-conditioned distance for planning (heads.state)
    goal_reader: GoalReader | None = None  # reads a goal image's state from its pixels (heads.goal_reader)

    @property
    def device(self) -> torch.device:
        return next(self.predictor.parameters()).device

    def encode(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 [T, H, W, 3] -> layer-normed features [T, N, D]."""
        return encode_frames(self.encoder, frames)

    def rollout(self, z0: torch.Tensor | PlanContext, actions: torch.Tensor) -> torch.Tensor:
        """Planning rollout: start features z0 [N, D] (or a `PlanContext`: the last observed frames and the
        actions between them), actions [S, H, A] -> predicted features [S, H, N, D]. Differentiable in
        `actions` (the weights are frozen), for gradient planning; sampling planners call it under `no_grad`."""
        return self._rollout(z0, actions, False)

    def rollout_states(self, z0: PlanContext, actions: torch.Tensor) -> Predicted:
        """As `rollout`, for a predictor that predicts states (`predictor.predict_states`): the predicted
        features [S, H, N, D] and states [S, H, S_dim] (in the states' own units)."""
        if not self.predictor.cfg.predict_states:
            raise VjepaError("this world model does not predict states (trained without predictor.predict_states)",
                             "set plan.state_from=probe, or train with --set predictor.predict_states=true")
        return Predicted(*self._rollout(z0, actions, True))

    def _rollout(self, z0: torch.Tensor | PlanContext, actions: torch.Tensor, with_states: bool):
        S = actions.shape[0]
        if not isinstance(z0, PlanContext):  # one frame: a context with no past actions
            z0 = PlanContext(z0.unsqueeze(0), actions.new_zeros(0, actions.shape[-1]))
        if self.predictor.cfg.state_dim and z0.states is None:
            raise VjepaError("this world model reads the observed state with each frame (predictor.use_states)",
                             "plan it with `vjepa wm eval`, which observes states, or train one without states")
        ctx = z0.frames.unsqueeze(0).expand(S, *z0.frames.shape)  # (S, T0, N, D)
        past = z0.actions.to(actions).unsqueeze(0).expand(S, *z0.actions.shape)  # (S, T0 - 1, A)
        states = None  # (S, T0, S_dim) for a predictor that reads states
        if self.predictor.cfg.state_dim:
            read = select_states(self.predictor.cfg, z0.states.to(actions))  # (T0, S') the entries it reads
            states = read.unsqueeze(0).expand(S, *read.shape)
        return self.predictor.rollout(ctx, torch.cat([past, actions], 1), states, return_states=with_states)


HEADS = {"reward": (RewardHead, RewardHeadConfig), "policy": (PolicyHead, PolicyHeadConfig),
         "state": (StateHead, StateHeadConfig), "goal_reader": (GoalReader, GoalReaderConfig)}  # optional


def save_world_model(path: str | Path, enc: FrozenEncoder, predictor: ACPredictor, meta: dict[str, Any],
                     heads: dict[str, torch.nn.Module] | None = None) -> Path:
    """Write the world-model file atomically (weights from the unwrapped modules; `heads`: name -> head)."""
    tensors = {f"encoder.{k}": v for k, v in enc.module.state_dict().items()}
    tensors.update({f"predictor.{k}": v for k, v in predictor.state_dict().items()})
    full = {"format": FORMAT, "encoder_config": to_dict(enc.config), "encoder_source": enc.source,
            "predictor_config": to_dict(predictor.cfg), **meta}
    for name, head in (heads or {}).items():
        tensors.update({f"{name}.{k}": v for k, v in head.state_dict().items()})
        full[f"{name}_config"] = to_dict(head.cfg)
    return save_tensors(path, tensors, full)


def load_world_model(path: str | Path, device: torch.device | str = "cpu") -> WorldModel:
    """Read a world-model file strictly; anything else is a clear VjepaError."""
    from vjepa_cli.models import build_encoder

    path = Path(path)
    tensors, meta = load_tensors(path, device="cpu")
    if meta.get("format") != FORMAT and meta.get("predictor_kind") == "ac":  # e.g. converted vjepa2-ac-vitg.pt
        raise VjepaError(f"{path} holds a V-JEPA 2-AC model (from `vjepa convert`), not a world-model file: planning "
                         "here needs the action bounds and settings that `vjepa wm train` records",
                         "use it from Python with vjepa_cli.load_model(path).ac_predictor, or as a wm recipe's "
                         "encoder.path")
    if meta.get("format") != FORMAT:
        raise VjepaError(f"{path} is not a world-model file (format {meta.get('format')!r})",
                         "train one with `vjepa wm train RECIPE -o DIR` and pass DIR/wm.safetensors")
    ecfg = from_dict(ModelConfig, meta_json(meta, "encoder_config"), f"{path} encoder_config")
    pdict = meta_json(meta, "predictor_config")
    pcfg = from_dict(ACPredictorConfig, pdict, f"{path} predictor_config")
    encoder = build_encoder(ecfg)
    predictor = ACPredictor(pcfg)
    for prefix, module in (("encoder.", encoder), ("predictor.", predictor)):
        sd = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        try:
            module.load_state_dict(sd, strict=True)
        except RuntimeError as e:
            raise VjepaError(f"{path}: {prefix.rstrip('.')} weights do not match their config: {e}") from None
    enc = FrozenEncoder(encoder.to(device).eval().requires_grad_(False), ecfg, meta_json(meta, "encoder_source", {}))
    predictor = predictor.to(device).eval().requires_grad_(False)
    plan = from_dict(WMPlanConfig, meta_json(meta, "plan", {}), f"{path} plan")
    info = {k: meta_json(meta, k) for k in meta}
    heads = {name: _load_head(path, tensors, meta, name, device) for name in HEADS if f"{name}_config" in meta}
    return WorldModel(enc, predictor, tuple(meta_json(meta, "action_low")), tuple(meta_json(meta, "action_high")),
                      tuple(meta_json(meta, "action_names", [])), plan, info, heads.get("reward"),
                      heads.get("policy"), heads.get("state"), heads.get("goal_reader"))


def _load_head(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any], name: str,
               device: torch.device | str) -> torch.nn.Module:
    cls, cfg_cls = HEADS[name]
    head = cls(from_dict(cfg_cls, meta_json(meta, f"{name}_config"), f"{path} {name}_config"))
    sd = {k[len(name) + 1:]: v for k, v in tensors.items() if k.startswith(f"{name}.")}
    try:
        head.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        raise VjepaError(f"{path}: {name} head weights do not match their config: {e}") from None
    return head.to(device).eval().requires_grad_(False)
