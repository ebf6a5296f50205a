"""EMA target, schedules (incl. the official ipe_scale figures), loss, collapse monitors, train config."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from vjepa_cli.config._load import from_dict, load_recipe
from vjepa_cli.config.train import OptimConfig, PretrainConfig
from vjepa_cli.errors import VjepaError
from vjepa_cli.train.ema import ema_update_, make_target
from vjepa_cli.train.jepa import build_optimizer
from vjepa_cli.train.loss import (
    anti_collapse,
    effective_rank,
    feature_std,
    jepa_loss,
    normalize_targets,
    variance_covariance,
)
from vjepa_cli.train.schedules import (
    cosine,
    horizon,
    linear,
    optim_values,
    warmup_cosine,
    warmup_stable_decay,
)


def _net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 3), nn.LayerNorm(3), nn.Linear(3, 2))


def test_build_optimizer_asks_for_fused_adamw_on_cpu_and_cuda(caplog, monkeypatch):
    """Fused AdamW for the CPU and for CUDA (its constructor checks only the parameters' devices, so CPU ones
    stand in), foreach elsewhere; a refusal on CUDA is a warning, not silent."""
    cfg = OptimConfig()
    for dev in ("cpu", "cuda"):
        opt = build_optimizer(_net(0), cfg, torch.device(dev))
        assert opt.defaults["fused"] is True and not opt.defaults["foreach"], dev
        assert [g["weight_decay"] for g in opt.param_groups] == [cfg.weight_decay, 0.0]
    assert not build_optimizer(_net(0), cfg, torch.device("mps")).defaults["fused"]

    adamw = torch.optim.AdamW

    def refuse_fused(params, fused=None, **kw):
        if fused:
            raise RuntimeError("`fused=True` requires all the params to be floating point Tensors")
        return adamw(params, **kw)

    monkeypatch.setattr(torch.optim, "AdamW", refuse_fused)
    with caplog.at_level("WARNING", logger="vjepa_cli.train.jepa"):
        opt = build_optimizer(_net(0), cfg, torch.device("cuda"))
    assert opt.defaults["foreach"] and not opt.defaults["fused"]
    assert "fused AdamW is not available here (`fused=True` requires" in caplog.text


def test_make_target_is_frozen_copy():
    online = _net(0)
    online.train()
    target = make_target(online)
    assert not target.training
    assert all(not p.requires_grad for p in target.parameters())
    assert all(p.requires_grad for p in online.parameters())
    for a, b in zip(online.parameters(), target.parameters(), strict=True):
        assert torch.equal(a, b) and a.data_ptr() != b.data_ptr()


def test_ema_matches_closed_form():
    online, target = _net(0), make_target(_net(1))
    t0 = [p.detach().clone() for p in target.parameters()]
    o = [p.detach().clone() for p in online.parameters()]
    ms = [0.9, 0.5, 0.99]
    for m in ms:
        ema_update_(target, online, m)
    # Online fixed: target_n = prod(m) * t0 + (1 - prod(m)) * online
    pm = math.prod(ms)
    for t, a, b in zip(target.parameters(), t0, o, strict=True):
        torch.testing.assert_close(t, pm * a + (1 - pm) * b, rtol=1e-6, atol=1e-6)
    before = [p.clone() for p in target.parameters()]
    ema_update_(target, online, 1.0)
    assert all(torch.equal(a, b) for a, b in zip(before, target.parameters(), strict=True))


def test_ema_step_by_step_loop_reference():
    online, target = _net(2), make_target(_net(3))
    ref = [p.detach().clone() for p in target.parameters()]
    for i, m in enumerate((0.99, 0.7)):
        with torch.no_grad():
            for p in online.parameters():
                p.add_(0.1 * (i + 1))
        ema_update_(target, online, m)
        ref = [m * r + (1 - m) * p.detach() for r, p in zip(ref, online.parameters(), strict=True)]
    for t, r in zip(target.parameters(), ref, strict=True):
        torch.testing.assert_close(t, r, rtol=1e-6, atol=1e-7)


def test_official_v1_end_values():
    # V-JEPA 1 ViT-L: 90k steps, warmup 12k, lr 2e-4 -> 6.25e-4 -> 1e-6, wd 0.04 -> 0.4, EMA 0.998 -> 1, ipe_scale 1.25.
    cfg = OptimConfig()
    v = optim_values(cfg, 90000, 90000)
    assert v.lr == pytest.approx(7.5e-5, rel=0.01)
    assert v.wd == pytest.approx(0.366, abs=0.001)
    assert v.ema == pytest.approx(0.9996, abs=1e-6)
    start = optim_values(cfg, 0, 90000)
    assert start.lr == pytest.approx(2e-4) and start.wd == pytest.approx(0.04) and start.ema == pytest.approx(0.998)
    assert optim_values(cfg, 12000, 90000).lr == pytest.approx(6.25e-4)
    assert optim_values(cfg, 6000, 90000).lr == pytest.approx(4.125e-4)  # halfway through warmup
    # Without ipe_scale the schedules end at their final values.
    end = optim_values(OptimConfig(ipe_scale=1.0), 90000, 90000)
    assert end.lr == pytest.approx(1e-6) and end.wd == pytest.approx(0.4) and end.ema == pytest.approx(1.0)


def test_v2_constant_and_cooldown():
    cfg = OptimConfig(lr=5.25e-4, start_lr=1e-4, final_lr=5.25e-4, warmup_steps=12000, schedule="constant",
                      weight_decay=0.04, final_weight_decay=0.04, ema=(0.99925, 0.99925), ema_schedule="constant",
                      clip_grad=None)
    for step in (12000, 50000, 240000):
        v = optim_values(cfg, step, 240000)
        assert v.lr == pytest.approx(5.25e-4) and v.wd == pytest.approx(0.04) and v.ema == 0.99925
    # Cooldown: linear 5.25e-4 -> 1e-6 laid over 1.25 x 12k steps, stopped after 12k at ~1.06e-4.
    cool = OptimConfig(lr=5.25e-4, start_lr=5.25e-4, final_lr=1e-6, warmup_steps=0, schedule="wsd", anneal_steps=12000)
    assert optim_values(cool, 0, 12000).lr == pytest.approx(5.25e-4)
    assert optim_values(cool, 12000, 12000).lr == pytest.approx(1.058e-4, rel=1e-3)
    assert optim_values(cool, 6000, 12000).lr == pytest.approx(5.25e-4 - 0.4 * (5.25e-4 - 1e-6))


def test_wsd_phases():
    f = dict(lr=1.0, start_lr=0.0, final_lr=0.1, warmup=10, decay_start=80, decay_len=20)
    assert warmup_stable_decay(5, **f) == pytest.approx(0.5)
    assert warmup_stable_decay(50, **f) == 1.0
    assert warmup_stable_decay(90, **f) == pytest.approx(0.55)
    assert warmup_stable_decay(100, **f) == pytest.approx(0.1)
    cfg = OptimConfig(lr=1.0, start_lr=0.0, final_lr=0.1, warmup_steps=10, schedule="wsd", anneal_steps=20, ipe_scale=1.0)
    assert optim_values(cfg, 90, 100).lr == pytest.approx(0.55)


def test_schedule_closed_forms():
    assert horizon(90000, 1.25) == 112500
    # cosine lr at the middle of its decay: halfway between peak and final
    assert warmup_cosine(60, lr=1.0, start_lr=0.0, final_lr=0.0, warmup=20, t_max=100) == pytest.approx(0.5)
    assert cosine(50, start=0.0, end=1.0, t_max=100) == pytest.approx(0.5)
    assert cosine(25, start=1.0, end=0.0, t_max=100) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert cosine(200, start=1.0, end=0.0, t_max=100) == 0.0
    assert linear(30, start=1.0, end=2.0, t_max=100) == pytest.approx(1.3)


def test_normalize_targets_is_affine_free_layer_norm():
    h = torch.randn(2, 5, 8) * 3 + 1
    n = normalize_targets(h)
    mu = h.mean(-1, keepdim=True)
    var = h.var(-1, unbiased=False, keepdim=True)
    torch.testing.assert_close(n, (h - mu) / torch.sqrt(var + 1e-5))


def test_loss_hand_computed():
    z1 = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])  # (1, 2, 2)
    h1 = torch.tensor([[[0.0, 0.0], [1.0, 1.0]]])
    z2 = torch.tensor([[[0.0, -2.0]]])  # (1, 1, 2)
    h2 = torch.tensor([[[1.0, 1.0]]])
    # L1: pair 1 mean(|1,2,2,3|) = 2, pair 2 mean(|1,3|) = 2 -> 2
    assert float(jepa_loss([z1, z2], [h1, h2])) == pytest.approx(2.0)
    # loss_exp 2: pair 1 mean(1,4,4,9)/2 = 2.25, pair 2 mean(1,9)/2 = 2.5 -> 2.375
    assert float(jepa_loss([z1, z2], [h1, h2], loss_exp=2.0)) == pytest.approx(2.375)
    with pytest.raises(ValueError):
        jepa_loss([z1], [h1, h2])


def test_variance_covariance_terms():
    torch.manual_seed(0)
    x = torch.randn(4000, 3)
    v, c = variance_covariance(x)
    assert float(v) < 0.05 and float(c) < 0.01  # unit variance, uncorrelated: both ~0
    col = torch.zeros(10, 3)
    v, c = variance_covariance(col)
    assert float(v) == pytest.approx(1 - math.sqrt(1e-4), abs=1e-6)  # collapsed: hinge at its max
    y = torch.randn(500, 1).repeat(1, 2)  # two identical channels: covariance = variance ~ 1
    v, c = variance_covariance(y)
    assert float(c) == pytest.approx(2 * float(y[:, 0].var()) ** 2 / 2, rel=1e-4)
    assert float(anti_collapse([col.view(1, 10, 3)])) > 0.9


def test_collapse_monitors():
    torch.manual_seed(0)
    h = torch.randn(4, 64, 16)
    assert feature_std(h) == pytest.approx(float(h.reshape(-1, 16).std(0).mean()))
    assert feature_std(torch.ones(4, 8, 16)) == 0.0
    # Orthonormal columns: singular values equal -> effective rank = D.
    q, _ = torch.linalg.qr(torch.randn(64, 8))
    assert effective_rank(q) == pytest.approx(8.0, rel=1e-4)
    # Rank one: effective rank 1.
    r1 = torch.randn(64, 1) @ torch.randn(1, 8)
    assert effective_rank(r1) == pytest.approx(1.0, abs=1e-3)
    assert 1.0 < effective_rank(h) <= 16.0


def test_pretrain_config_defaults_and_errors(tmp_path):
    cfg = PretrainConfig()
    assert cfg.grid == (8, 14, 14)
    p = tmp_path / "r.yaml"
    p.write_text("optim: {lr: 1.0e-3, schedule: wsd, anneal_steps: 10}\nsteps: 100\nmask: {kind: future}\n")
    cfg = load_recipe(PretrainConfig, p, ["batch_size=4", "optim.ema=[0.99, 0.99]"])
    assert cfg.optim.lr == 1e-3 and cfg.steps == 100 and cfg.batch_size == 4 and cfg.optim.ema == (0.99, 0.99)
    assert cfg.mask.kind == "future"
    with pytest.raises(VjepaError, match="optim.lr"):
        from_dict(PretrainConfig, {"optim": {"lrr": 1.0}})
    with pytest.raises(VjepaError, match="anneal_steps"):
        from_dict(PretrainConfig, {"optim": {"schedule": "wsd"}})
    with pytest.raises(VjepaError, match="steps"):
        from_dict(PretrainConfig, {"steps": 0})


def test_run_dir_lock_and_failed_start(tmp_path):
    """The run folder: locked while a run holds it; a run that fails before `commit()` removes what it made
    (the folder and parents it created, or only the new paths, times put back); a committed one is kept."""
    from tests._train_helpers import folder_snapshot
    from vjepa_cli.train.rundir import LOCK, RunDir

    made = tmp_path / "a" / "b" / "run"
    with pytest.raises(RuntimeError, match="at start"):
        with RunDir(made):
            (made / "config.yaml").write_text("x")
            raise RuntimeError("failed at start")
    assert not (tmp_path / "a").exists()

    old = tmp_path / "old"
    (old / "sub").mkdir(parents=True)
    (old / "sub" / "a.txt").write_text("a")
    before = folder_snapshot(old)
    with pytest.raises(RuntimeError, match="at start"):
        with RunDir(old):
            (old / "sub" / "b.txt").write_text("b")
            (old / "new" / "deep").mkdir(parents=True)
            with pytest.raises(VjepaError, match="in use by another run"):  # a second run on the folder
                RunDir(old).__enter__()
            assert (old / "new" / "deep").is_dir()  # the refused run touched nothing
            raise RuntimeError("failed at start")
    assert folder_snapshot(old) == before

    with pytest.raises(RuntimeError, match="later"):
        with RunDir(old) as d:
            d.commit()
            (old / "c.txt").write_text("c")
            raise RuntimeError("failed later")
    assert (old / "c.txt").is_file() and not (old / LOCK).exists()
    with RunDir(old), pytest.raises(VjepaError, match=f"{old} is in use"):
        with RunDir(old):
            pass
    (tmp_path / "file").write_text("")
    with pytest.raises(VjepaError, match="is a file"):
        RunDir(tmp_path / "file").__enter__()


def test_is_disk_full_knows_the_forms_a_full_disk_takes():
    import errno
    import os

    from safetensors import SafetensorError

    from vjepa_cli.io.atomic import is_disk_full
    from vjepa_cli.train.rundir import disk_full_is_clear

    assert is_disk_full(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    assert is_disk_full(OSError(errno.EDQUOT, os.strerror(errno.EDQUOT)))
    # What safetensors raises on a real full tmpfs (checked by hand): its own error, the OS's text inside.
    assert is_disk_full(SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)"))
    try:  # an io helper that turned ENOSPC into its own one-line error
        try:
            raise OSError(errno.ENOSPC, "full")
        except OSError:
            raise VjepaError("could not write x") from None
    except VjepaError as e:
        assert is_disk_full(e)
    assert not is_disk_full(OSError(errno.EACCES, os.strerror(errno.EACCES)))
    with pytest.raises(VjepaError, match="no space left on the device writing a.bin; the previous checkpoint"):
        with disk_full_is_clear("a.bin", "b.bin"):
            raise SafetensorError("I/O error: No space left on device (os error 28)")
    with pytest.raises(PermissionError):
        with disk_full_is_clear("a.bin", None):
            raise PermissionError(errno.EACCES, "denied")


def test_checkpoint_text_metadata_stays_text(tmp_path):
    """A hex hash that happens to be all digits, or a run named "42", reads back as the text it was, not as a
    number (a world-model run whose recipe hashed to 157198882789 could not resume)."""
    import torch

    from vjepa_cli.io.checkpoint import load_checkpoint, save_checkpoint

    meta = {"config_hash": "157198882789", "name": "42", "kind": "1e5", "step": 3, "sampler": {"step": 6}}
    save_checkpoint(tmp_path / "c.safetensors", {"w": torch.zeros(2)}, meta)
    _, back = load_checkpoint(tmp_path / "c.safetensors")
    assert {k: back[k] for k in meta} == meta
