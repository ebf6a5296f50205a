"""The loop's bookkeeping: metrics records, throughput, collapse and data-bound warnings, model export."""

from __future__ import annotations

import logging
from pathlib import Path

from torch import Tensor, nn

from vjepa_cli.config.train import PretrainConfig
from vjepa_cli.errors import VjepaError

log = logging.getLogger(__name__)
DATA_BOUND_SHARE = 0.2  # warn when waiting for data takes more than this share of the step time


class RunLog:
    """Accumulates a logging window of steps; the main process writes `metrics.jsonl` at each log step."""

    def __init__(self, cfg: PretrainConfig, out: Path, main: bool, resume: bool, start: int,
                 failures: dict | None = None):
        from vjepa_cli.data.dataset import FailureLog
        from vjepa_cli.train.metrics import MetricsWriter

        self.cfg, self.out, self.main = cfg, out, main
        self.failures = FailureLog()
        if failures:
            self.failures.load_state_dict(failures)
        self.writer = None
        if main:
            out.mkdir(parents=True, exist_ok=True)
            self.writer = MetricsWriter(out, cfg.tensorboard, resume_step=start if resume else None)
        self.warnings: list[str] = []
        self._warned: set[str] = set()
        self.last_loss: float | None = None
        self.clips_per_s = 0.0
        self._reset()

    def _reset(self) -> None:
        self._n, self._loss, self._time, self._wait, self._bad = 0, 0.0, 0.0, 0.0, 0

    def _warn(self, key: str, msg: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self.warnings.append(msg)
            if self.main:  # one copy, not one per process
                log.warning(msg)

    def step(self, step: int, loss: float, vals, gnorm: Tensor | float | None, dt: float, wait: float,
             failures: list, global_batch: int, targets: Tensor | None) -> None:
        """Record one optimizer step; `targets` (the step's normalised target features) marks a log step."""
        from vjepa_cli.train.loss import effective_rank, feature_std

        self.failures.update(failures)
        self._n += 1
        self._loss += loss
        self._time += dt
        self._wait += wait
        self._bad += len(failures)
        self.last_loss = loss
        self.clips_per_s = global_batch / max(dt, 1e-9) if self._n == 1 else self._n * global_batch / self._time
        if targets is None:
            return
        share = self._wait / max(self._time, 1e-9)
        rec = {
            "step": step, "loss": self._loss / self._n, "lr": vals.lr, "wd": vals.wd, "ema": vals.ema,
            "grad_norm": None if gnorm is None else float(gnorm),
            "clips_per_s": self._n * global_batch / max(self._time, 1e-9), "data_wait": share,
            "target_std": feature_std(targets), "target_erank": effective_rank(targets),
            "bad_videos": self._bad, "bad_videos_total": self.failures.count,
        }
        if rec["target_std"] < self.cfg.collapse_std:
            self._warn("collapse", f"step {step}: target-feature std {rec['target_std']:.3g} is below "
                       f"{self.cfg.collapse_std} (representation collapse?); consider a lower lr or a slower EMA")
        if share > DATA_BOUND_SHARE and step > self.cfg.log_every:  # the first window includes worker start-up
            self._warn("data", f"step {step}: waiting for data takes {share:.0%} of the step time; raise "
                       "data.num_workers or preprocess the videos (`vjepa preprocess`)")
        if self.writer is not None:
            self.writer.write(rec)
        self._reset()

    def loss_curve(self) -> Path | None:
        from vjepa_cli.train.metrics import loss_curve_png

        try:
            return loss_curve_png(self.out / "metrics.jsonl", self.out / "loss.png")
        except (OSError, ValueError) as e:  # a plot is never worth failing a finished run
            log.warning("could not draw the loss curve: %s", e)
            return None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def export_model(path: Path, cfg: PretrainConfig, target: nn.Module, predictor: nn.Module, step: int,
                 name: str) -> Path:
    """Write our model file: the EMA target encoder (what evaluation uses) and the predictor."""
    from vjepa_cli.config._load import config_hash
    from vjepa_cli.io.convert import model_metadata, now_iso, pack
    from vjepa_cli.io.tensors import save_tensors

    prov = {"source": "vjepa pretrain", "run": name, "step": step, "encoder": "target_encoder (EMA)",
            "recipe_hash": config_hash(cfg), "seed": cfg.seed, "created": now_iso()}
    sd = pack(target.state_dict(), predictor.state_dict())
    return save_tensors(path, sd, model_metadata(cfg.model, prov, has_predictor=True))


def init_weights_from(path: str, encoder: nn.Module, predictor: nn.Module) -> dict | None:
    """Start from existing weights (e.g. V-JEPA 2's cooldown from a pretrained run), strictly.

    From one of our training checkpoints the online encoder, predictor and target encoder all carry over
    (the target's state dict is returned for the caller to load); from a model file or an official /
    transformers checkpoint, the encoder (the target encoder where there is a choice) and the predictor.
    """
    target = None
    from vjepa_cli.io.checkpoint import CKPT_FORMAT, load_checkpoint
    from vjepa_cli.io.convert import read_weights, sniff
    from vjepa_cli.io.tensors import read_metadata

    if sniff(Path(path)) == "safetensors" and read_metadata(path).get("format") == CKPT_FORMAT:
        tensors, _ = load_checkpoint(path)
        enc = {k.removeprefix("encoder."): v for k, v in tensors.items() if k.startswith("encoder.")}
        target = {k.removeprefix("target_encoder."): v for k, v in tensors.items() if k.startswith("target_encoder.")}
        pred = {k.removeprefix("predictor."): v for k, v in tensors.items() if k.startswith("predictor.")} or None
    else:
        w = read_weights(path)
        enc, pred = w.encoder, w.predictor
        if w.predictor_kind == "ac":  # an action-conditioned predictor is not a mask predictor: encoder only
            log.warning("init_from %s holds a V-JEPA 2-AC predictor; only its encoder is used", path)
            pred = None
    try:
        encoder.load_state_dict(enc, strict=True)
        if pred is not None:
            predictor.load_state_dict(pred, strict=True)
    except RuntimeError as e:
        raise VjepaError(f"init_from {path}: the weights do not fit the recipe's model: "
                         f"{str(e).strip().splitlines()[0]}") from None
    if pred is None:
        log.warning("init_from %s has no predictor; the predictor starts from scratch", path)
    return target
