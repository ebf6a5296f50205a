"""World-model recipe (`vjepa wm train`): episodes, frozen encoder, action-conditioned predictor, loss,
optimisation, and the planner settings stored with the trained model."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import ClassVar, Literal, get_args

from vjepa_cli.config.model import ACPredictorConfig, ModelConfig
from vjepa_cli.config.plan import CEMConfig, GDConfig, MPPIConfig, PlannerConfig


def _tiny_encoder() -> ModelConfig:
    # 64px frames, 8px patches -> 8x8 tokens; 2 blocks keep the random features local (see README)
    return ModelConfig(arch="vit_tiny", embed_dim=96, depth=2, num_heads=4, patch_size=8, tubelet_size=2,
                       num_frames=2, img_size=64, pos_embed="sincos")


@dataclass(frozen=True)
class WMDataConfig:
    """Where episodes come from; when `episodes` is empty they are collected from `env` first."""

    episodes: str = ""  # folder with manifest.csv (from `vjepa wm collect`); "" = collect into OUT/episodes
    env: str = "reach2d"  # environment to collect from when `episodes` is empty
    num_episodes: int = 300  # episodes to collect
    steps: int = 24  # actions per collected episode
    policy: Literal["random", "noisy"] = "random"  # collection policy
    size: int = 64  # rendered frame side, pixels
    seed: int = 0  # collection seed
    num_frames: int = 6  # frames per training window
    fps: float | None = None  # sample windows at this rate (None = every recorded frame)
    cache_dir: str = ""  # feature cache folder ("" = EPISODES/features)
    # goals of Gymnasium environments without their own (`wm eval`, see vjepa_cli/envs/gym.py)
    goal_steps: int = 25  # actions of the goal policy from the seeded reset to the goal frame
    goal_policy: Literal["random", "walk", "scripted"] = "random"  # how those actions are chosen
    success_radius: float = 0.0  # task-distance threshold of success (0 = the environment's own or known one)
    # more poses for the state probe (`heads.state`): seeded resets' first and goal frames with their states
    probe_resets: int = 0

    def __post_init__(self):
        if self.num_episodes < 1 or self.steps < 1 or self.size < 16:
            raise ValueError("num_episodes and steps must be >= 1, size >= 16")
        if self.probe_resets < 0:
            raise ValueError("probe_resets must be >= 0")
        if self.num_frames < 2:
            raise ValueError("num_frames must be >= 2 (a frame and its successor)")
        if self.goal_steps < 0 or self.success_radius < 0:
            raise ValueError("goal_steps and success_radius must be >= 0")


@dataclass(frozen=True)
class WMEncoderConfig:
    """The frozen encoder: a model file's encoder, or a randomly initialised one with a fixed seed."""

    path: str = ""  # model file to take the encoder from ("" = random init of `model` with `seed`)
    model: ModelConfig = field(default_factory=_tiny_encoder)  # architecture when `path` is empty
    seed: int = 0  # init seed of the random encoder
    batch_size: int = 64  # frames per encoder forward when caching features

    def __post_init__(self):
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")


@dataclass(frozen=True)
class WMPredictorConfig:
    """The training-time choices of the action-conditioned predictor. Its full architecture, an
    `ACPredictorConfig`, adds what the data and encoder fix (feature width, token grid, action and state
    size, sequence length) in `ac_config`, the one place where the two meet: each field here is passed on
    under the same name, so none of them is listed twice."""

    pred_embed_dim: int = 192  # predictor width
    depth: int = 4  # blocks
    num_heads: int = 4  # heads
    mlp_ratio: float = 4.0  # MLP hidden / width
    pos: Literal["rope", "learned"] = "rope"  # 3D RoPE or learned positions
    use_states: bool = False  # add a state token per frame (needs states in the episodes)
    action_norm: bool = True  # map actions to [-1, 1] by the episodes' action bounds before the predictor
    # also predict each next state and feed it forward in rollouts, instead of holding the last observed one
    # (needs use_states; states are standardised by the episodes' mean and spread); loss.state_weight weighs it
    predict_states: bool = False
    # the entries of the episodes' state vector the predictor reads (and predicts), e.g. PushT's agent position
    # [0, 1] but not the block's pose; () = all (needs use_states)
    state_dims: tuple[int, ...] = ()

    def __post_init__(self):
        if (self.predict_states or self.state_dims) and not self.use_states:
            raise ValueError("predictor.predict_states and predictor.state_dims need predictor.use_states: true")
        # the architecture's own checks, with placeholder data sizes: a bad recipe fails before any work
        self.ac_config(embed_dim=1, grid=(1, 1), action_dim=1, state_dim=max(self.state_dims, default=0) + 1,
                       max_frames=1)

    def ac_config(self, *, embed_dim: int, grid: tuple[int, int], action_dim: int, state_dim: int,
                  max_frames: int, action_low: tuple[float, ...] = (), action_high: tuple[float, ...] = (),
                  state_mean: tuple[float, ...] = (), state_std: tuple[float, ...] = ()) -> ACPredictorConfig:
        """The predictor's architecture for features of width `embed_dim` on a (H', W') `grid`, actions of
        `action_dim` within [action_low, action_high] (used only with `action_norm`), states of `state_dim`
        with per-dimension `state_mean` and `state_std` (used only with `use_states`; the statistics only with
        `predict_states`) and windows up to `max_frames`."""
        skip = ("use_states", "action_norm", "state_dims")
        choices = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}
        norm = self.action_norm and bool(action_low)
        stats = self.predict_states and bool(state_mean)
        if self.state_dims and max(self.state_dims) >= state_dim:
            raise ValueError(f"predictor.state_dims {list(self.state_dims)} out of range for {state_dim}-d states")
        read = (len(self.state_dims) or state_dim) if self.use_states else 0
        return ACPredictorConfig(**choices, embed_dim=embed_dim, grid=grid, action_dim=action_dim,
                                 state_dim=read, max_frames=max_frames,
                                 state_dims=tuple(self.state_dims) if self.use_states else (),
                                 action_low=tuple(action_low) if norm else (),
                                 action_high=tuple(action_high) if norm else (),
                                 state_mean=tuple(state_mean) if stats else (),
                                 state_std=tuple(state_std) if stats else ())


@dataclass(frozen=True)
class WMLossConfig:
    """Teacher forcing plus an autoregressive rollout, both L1 on layer-normed features."""

    rollout_steps: int = 2  # frames predicted from the first frame using own predictions (0 = off)
    rollout_weight: float = 1.0  # weight of the rollout loss
    tf_weight: float = 1.0  # weight of the teacher-forcing loss
    state_weight: float = 1.0  # weight of the predicted states' error (standardised) in both (predictor.predict_states)
    # that error: "l1" (its minimiser is the median change: a rare event such as a pushed block predicts as no
    # change at all) or "l2" (the mean change: what a planner needs to see an occasional push pay off)
    state_loss: Literal["l1", "l2"] = "l1"

    def __post_init__(self):
        if self.rollout_steps < 0 or self.rollout_weight < 0 or self.tf_weight < 0 or self.state_weight < 0:
            raise ValueError("rollout_steps and the weights must be >= 0")


@dataclass(frozen=True)
class WMOptimConfig:
    """AdamW with a warmup-constant-anneal (WSD) learning rate, as the official 2-AC recipe."""

    steps: int = 3000  # optimiser steps
    batch_size: int = 32  # windows per step
    lr: float = 1e-3  # peak learning rate
    start_lr: float = 1e-4  # learning rate at step 0
    final_lr: float = 0.0  # learning rate at the end of the anneal
    warmup_steps: int = 200  # linear warmup
    anneal_steps: int = 500  # linear decay to final_lr over the last steps
    weight_decay: float = 0.04  # AdamW weight decay
    betas: tuple[float, float] = (0.9, 0.999)  # AdamW betas
    grad_clip: float = 1.0  # max grad norm (0 = off)
    mixed_precision: Literal["no", "auto", "fp32", "bf16", "fp16"] = "no"  # autocast; auto = bf16 on CUDA; fp32 = no

    def __post_init__(self):
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("steps and batch_size must be >= 1")
        if self.warmup_steps + self.anneal_steps > self.steps:
            raise ValueError("warmup_steps + anneal_steps must be <= steps")
        if self.lr <= 0 or self.grad_clip < 0:
            raise ValueError("lr must be > 0 and grad_clip >= 0")


LRSchedule = Literal["constant", "cosine"]  # the heads' learning-rate schedules


@dataclass(frozen=True)
class WMHeadsConfig:
    """Optional heads on frozen features, trained after the predictor on the same cached features and stored
    in the world-model file: a reward regressor (needs rewards in the episodes), a goal-conditioned
    behaviour-cloning policy (hindsight goals up to `goal_horizon` frames ahead) and a state probe (needs states:
    a goal-conditioned distance for planning, `plan.state_weight`)."""

    reward: bool = False  # train the reward head
    policy: bool = False  # train the policy head (a PolicyPrior for MPC)
    state: bool = False  # train the state probe (the recorded states at `state_dims`)
    state_dims: tuple[int, ...] = ()  # state indices the probe predicts (empty = all)
    state_rollout: int = 0  # also fit the probe on the predictor's own 1..K-step rollouts (what planning probes)
    state_members: int = 1  # state probes trained apart (own init and batches) and averaged: an ensemble
    proj: int = 8  # per-token channels before flattening the token grid
    hidden: int = 128  # MLP hidden width
    steps: int = 400  # AdamW steps per head
    batch_size: int = 64  # samples per step
    lr: float = 1e-3  # AdamW peak learning rate
    lr_schedule: LRSchedule = "constant"  # or "cosine": from lr down to 0 over the steps
    goal_horizon: int = 10  # policy: the goal is 1..goal_horizon frames after the current one
    # a goal reader: a small CNN that reads the state (at `state_dims`) from a goal image's pixels, trained on the
    # collection's probe resets (needs data.probe_resets); planning uses it with plan.goal_state_from=reader
    goal_reader: bool = False
    reader_steps: int = 6000  # its AdamW steps (cosine from reader_lr down to 0)
    reader_batch: int = 128  # its frames per step
    reader_lr: float = 2e-3  # its peak learning rate

    def __post_init__(self):
        if min(self.proj, self.hidden, self.steps, self.batch_size, self.goal_horizon) < 1 or self.lr <= 0:
            raise ValueError("heads: proj, hidden, steps, batch_size, goal_horizon must be >= 1 and lr > 0")
        if min(self.reader_steps, self.reader_batch) < 1 or self.reader_lr <= 0:
            raise ValueError("heads: reader_steps and reader_batch must be >= 1 and reader_lr > 0")
        if self.state_rollout < 0:
            raise ValueError("heads.state_rollout must be >= 0")
        if self.state_members < 1:
            raise ValueError("heads.state_members must be >= 1")
        if self.lr_schedule not in get_args(LRSchedule):  # recipes are checked by the loader; this guards code
            raise ValueError(f"heads.lr_schedule must be one of {get_args(LRSchedule)}, not {self.lr_schedule!r}")


@dataclass(frozen=True)
class WMPlanConfig:
    """MPC settings stored with the model: the planner (`method`) and each planner's settings, the episode length of `wm eval`, the prior blend.

    The CEM's action bounds are the episodes' (recorded in the model file), filled in by `cem_for`. Earlier
    releases spelled the CEM settings flat (`plan: {horizon: 3, samples: 128, ...}`, `--set plan.samples=256`,
    and so do the model files they wrote): that spelling still reads, as `plan.cem.<key>` (`ALIASES`).
    """

    ALIASES: ClassVar[dict[str, str]] = {k: f"cem.{k}" for k in (
        "horizon", "samples", "topk", "iterations", "momentum_mean", "momentum_std", "energy")}

    method: Literal["cem", "mppi", "gd"] = "cem"  # the planner `wm plan|eval` use (`vjepa_cli.plan.PLANNERS`)
    cem: CEMConfig = field(default_factory=CEMConfig)  # CEM over action sequences (leave low/high unset)
    mppi: MPPIConfig = field(default_factory=MPPIConfig)  # MPPI settings (leave low/high unset)
    gd: GDConfig = field(default_factory=GDConfig)  # gradient-descent settings (leave low/high unset)
    max_steps: int = 30  # MPC steps per episode in `wm eval`
    prior_weight: float = 0.0  # blend of a policy prior's action into the executed action
    goal_weight: float = 1.0  # weight of the goal-image energy (0 = the learned reward alone)
    reward_weight: float = 0.0  # weight of minus the learned reward summed over the horizon (needs heads.reward)
    state_weight: float = 0.0  # weight of the probed-state distance to the goal image's (needs heads.state)
    # per-entry weights of that distance, one per entry the state probe reads (its standardised units; () = all 1):
    # e.g. 0 for an agent whose position the goal image shows but the task ignores
    state_weights: tuple[float, ...] = ()
    rest_weight: float = 0.0  # weight of the probed state's change over the last planned step: arrive at rest
    prior: bool = False  # seed each plan with the learned policy head's action (needs heads.policy)
    context: int = 1  # observed frames each plan starts from (> 1: the recent frames and actions, for velocity)
    # where the state distance (state_weight, rest_weight) reads a planned step's state: the state probe on the
    # predicted features, or the predictor's own predicted state (a model trained with predictor.predict_states);
    state_from: Literal["probe", "predictor"] = "probe"
    # who reads the goal image's state for that distance: the state probe on its features, or the goal reader
    # (a model trained with heads.goal_reader) on its pixels, once per goal
    goal_state_from: Literal["probe", "reader"] = "probe"

    def __post_init__(self):
        if any(c.low or c.high for c in (self.cem, self.mppi, self.gd)):
            raise ValueError("cem/mppi/gd.low/high are the action bounds recorded with the episodes; leave them unset")
        if self.max_steps < 1 or self.context < 1:
            raise ValueError("max_steps and context must be >= 1")
        if not 0.0 <= self.prior_weight <= 1.0:
            raise ValueError("prior_weight must be in [0, 1]")
        weights = (self.goal_weight, self.reward_weight, self.state_weight)
        if min(weights) < 0 or sum(weights) == 0:
            raise ValueError("goal_weight, reward_weight and state_weight must be >= 0, not all 0")
        if self.rest_weight < 0:
            raise ValueError("rest_weight must be >= 0")
        if self.state_weights and (min(self.state_weights) < 0 or max(self.state_weights) == 0):
            raise ValueError("state_weights must be >= 0, not all 0")

    def cem_for(self, low: Sequence[float], high: Sequence[float]) -> CEMConfig:
        """The CEM settings for a model whose actions lie in [low, high] (per dimension)."""
        return replace(self.cem, low=tuple(float(x) for x in low), high=tuple(float(x) for x in high))

    def planner_for(self, low: Sequence[float], high: Sequence[float]) -> PlannerConfig:
        """The settings of the chosen `method` for a model whose actions lie in [low, high]."""
        return replace(getattr(self, self.method), low=tuple(float(x) for x in low),
                       high=tuple(float(x) for x in high))


@dataclass(frozen=True)
class WMConfig:
    """`vjepa wm train` recipe."""

    data: WMDataConfig = field(default_factory=WMDataConfig)
    encoder: WMEncoderConfig = field(default_factory=WMEncoderConfig)
    predictor: WMPredictorConfig = field(default_factory=WMPredictorConfig)
    loss: WMLossConfig = field(default_factory=WMLossConfig)
    optim: WMOptimConfig = field(default_factory=WMOptimConfig)
    plan: WMPlanConfig = field(default_factory=WMPlanConfig)
    heads: WMHeadsConfig = field(default_factory=WMHeadsConfig)
    seed: int = 0  # seed of predictor init and window sampling
    device: str = ""  # "" = cuda when available, else cpu
    log_every: int = 50  # steps between metrics.jsonl lines
    checkpoint_every: int = 500  # steps between resumable checkpoints
    log_with: tuple[str, ...] = ()  # experiment trackers next to metrics.jsonl: tensorboard, wandb, mlflow, aim

    def __post_init__(self):
        if self.log_every < 1 or self.checkpoint_every < 1:
            raise ValueError("log_every and checkpoint_every must be >= 1")
        if self.loss.rollout_steps >= self.data.num_frames:
            raise ValueError("loss.rollout_steps must be < data.num_frames")
