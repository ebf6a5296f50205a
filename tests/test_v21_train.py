"""Training with the V-JEPA 2.1 objective: the loss pieces against independent references (brute-force loops,
closed forms), the image/video plan, the options-off path, the recipes, and tiny runs on CPU."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vjepa_cli.config._load import builtin_recipes, load_recipe, to_dict
from vjepa_cli.config.objective import ImagesConfig, ObjectiveConfig
from vjepa_cli.config.train import PretrainConfig
from vjepa_cli.errors import VjepaError
from vjepa_cli.models import build_encoder, build_predictor
from vjepa_cli.train.dense_loss import (
    context_lambda,
    context_loss,
    distance_weights,
    grid_coords,
    normalize_levels,
)
from vjepa_cli.train.jepa import JepaModel, target_features
from vjepa_cli.train.jepa21 import Jepa21Model, target_features21
from vjepa_cli.train.pretrainer21 import PlannedSampler, image_ranks, step_modalities

pytestmark = pytest.mark.usefixtures("one_thread")

# A tiny 2.1 model: 32 px, 4-frame clips -> video grid 2 x 2 x 2, image grid 1 x 2 x 2.
TINY21 = [
    "model.embed_dim=48", "model.depth=4", "model.num_heads=3", "model.levels=[0,1,2,3]", "model.num_frames=4",
    "model.img_size=32", "model.pred_embed_dim=24", "model.pred_depth=1", "model.pred_num_heads=2",
    "data.synth={task: motion, videos: 8, frames: 8, size: 32, seed: 0}", "data.frames_per_clip=4",
    "data.frame_step=2", "data.crop_size=32", "data.num_workers=0",
    "objective.images.data.synth={task: shapes, videos: 8, frames: 4, size: 32, seed: 0}",
    "objective.images.data.crop_size=32", "objective.images.data.num_workers=0", "objective.images.batch_size=4",
    "objective.images.mask.blocks=[{num_blocks: 1, spatial_scale: [0.25, 0.25]}]",
    "objective.lambda_warmup=[1, 3]", "batch_size=4", "steps=6", "log_every=1", "checkpoint_every=3", "keep_last=1",
    "optim.warmup_steps=1", "optim.lr=1e-3", "dtype=fp32", "device=cpu",
]


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("VJEPA_CACHE", str(tmp_path_factory.getbasetemp() / "synth-cache"))


def tiny21(*extra: str) -> PretrainConfig:
    return load_recipe(PretrainConfig, "tiny-cpu-v21", [*TINY21, *extra])


# ---- the loss pieces against references -------------------------------------------------------------------------

def _brute_weights(ctx, tgt, grid):
    _, hh, ww = grid
    out = torch.empty(ctx.shape)
    for b in range(ctx.shape[0]):
        for i, c in enumerate(ctx[b].tolist()):
            ct, ch, cw = c // (hh * ww), (c // ww) % hh, c % ww
            best = min(math.sqrt((ct - t // (hh * ww)) ** 2 + (ch - (t // ww) % hh) ** 2 + (cw - t % ww) ** 2)
                       for t in tgt[b].tolist())
            out[b, i] = 1.0 / math.sqrt(best)
    return out


@pytest.mark.parametrize("grid", [(3, 4, 5), (1, 6, 4), (8, 2, 2)])
def test_distance_weights_match_a_brute_force_loop(grid, monkeypatch):
    n = grid[0] * grid[1] * grid[2]
    g = torch.Generator().manual_seed(sum(grid))
    perm = torch.stack([torch.randperm(n, generator=g) for _ in range(3)])  # (B, N): disjoint context / targets
    kc = n // 3
    ctx, tgt = perm[:, :kc].sort(1).values, perm[:, kc:].sort(1).values
    want = _brute_weights(ctx, tgt, grid)
    torch.testing.assert_close(distance_weights(ctx, tgt, grid), want, rtol=1e-6, atol=1e-6)
    monkeypatch.setattr("vjepa_cli.train.dense_loss.MAX_PAIRS", 1)  # one sample per chunk: same answer
    torch.testing.assert_close(distance_weights(ctx, tgt, grid), want, rtol=1e-6, atol=1e-6)
    assert torch.equal(distance_weights(ctx, tgt, grid, weighted=False), torch.ones(ctx.shape))


def test_distance_weights_closed_form_on_a_future_mask():
    # grid 4 x 1 x 1, context t = 0, 1, target t = 2, 3: distances 2 and 1
    w = distance_weights(torch.tensor([[0, 1]]), torch.tensor([[2, 3]]), (4, 1, 1))
    torch.testing.assert_close(w, torch.tensor([[1 / math.sqrt(2), 1.0]]))
    assert grid_coords(torch.tensor([[23]]), (2, 3, 4)).tolist() == [[[1.0, 2.0, 3.0]]]  # 23 = 1*12 + 2*4 + 3


def test_context_loss_is_a_plain_weighted_mean():
    z, h = torch.randn(2, 5, 6), torch.randn(2, 5, 6)
    w = torch.rand(2, 5)
    want = sum(abs(z[b, i, c] - h[b, i, c]) * w[b, i] for b in range(2) for i in range(5) for c in range(6)) / 60
    torch.testing.assert_close(context_loss(z, h, w), want)
    want2 = sum((z[b, i, c] - h[b, i, c]) ** 2 * w[b, i] for b in range(2) for i in range(5) for c in range(6)) / 120
    torch.testing.assert_close(context_loss(z, h, w, loss_exp=2.0), want2)


def test_per_level_normalisation_matches_a_loop_over_slices():
    h = torch.randn(2, 7, 4 * 6) * 3 + 1
    want = torch.cat([F.layer_norm(h[..., k * 6:(k + 1) * 6], (6,)) for k in range(4)], dim=-1)
    torch.testing.assert_close(normalize_levels(h, 4), want)
    assert torch.equal(normalize_levels(h, 1), F.layer_norm(h, (24,)))  # 1 level: the V-JEPA 1/2 target


@pytest.mark.parametrize("progressive", [True, False])
def test_lambda_schedule_closed_form(progressive):
    obj = ObjectiveConfig(predict_context=True, lambda_vid=0.5, lambda_img=0.3, lambda_warmup=(15000, 30000),
                          lambda_progressive=progressive)
    for step in (0, 14999, 15000, 20000, 29999, 30000, 10**6):
        ramp = min(1.0, max(0.0, (step - 15000) / 15000)) if progressive else 1.0
        assert context_lambda(obj, step, "video") == pytest.approx(0.5 * ramp, abs=1e-12)
        assert context_lambda(obj, step, "image") == pytest.approx(0.3 * ramp, abs=1e-12)
    assert context_lambda(ObjectiveConfig(predict_context=False), 10**6, "video") == 0.0
    assert context_lambda(ObjectiveConfig(predict_context=True, lambda_warmup=(5, 5)), 5, "video") == 0.5


# ---- the model under the objective -----------------------------------------------------------------------------

def _models(cfg: PretrainConfig):
    gen = torch.Generator().manual_seed(0)
    return build_encoder(cfg.model, generator=gen), build_predictor(cfg.model, generator=gen)


def test_options_off_give_the_v1_loss_exactly():
    cfg = load_recipe(PretrainConfig, "tiny-cpu", ["model.embed_dim=48", "model.depth=2", "model.num_frames=4",
                                                   "model.img_size=32", "model.pred_embed_dim=24", "model.pred_depth=1"])
    assert "objective" not in to_dict(cfg)  # records of V-JEPA 1/2 runs are unchanged
    enc, pred = _models(cfg)
    clips = torch.randn(2, 3, 4, 32, 32, generator=torch.Generator().manual_seed(1))
    h = target_features(enc, clips)
    assert torch.equal(target_features21(enc, clips, 1), h)
    ctx, tgt = [torch.tensor([[0, 1, 2, 3]] * 2)], [torch.tensor([[4, 5, 6, 7]] * 2)]
    a = JepaModel(enc, pred)(clips, h, ctx, tgt, (2, 2, 2))
    b = Jepa21Model(enc, pred)(clips, h, ctx, tgt, (2, 2, 2), lam=0.7)
    assert torch.equal(a, b)


def test_the_21_loss_adds_lambda_times_the_context_term():
    cfg = tiny21()
    enc, pred = _models(cfg)
    clips = torch.randn(2, 3, 4, 32, 32, generator=torch.Generator().manual_seed(2))
    h = target_features21(enc, clips, 4)  # (2, 8, 4 * 48)
    assert h.shape == (2, 8, 192)
    ctx, tgt = [torch.tensor([[0, 1, 2, 3]] * 2)], [torch.tensor([[4, 5, 6, 7]] * 2)]
    model = Jepa21Model(enc, pred, hierarchical=True, predict_context=True)
    l0, l1 = model(clips, h, ctx, tgt, (2, 2, 2), lam=0.0), model(clips, h, ctx, tgt, (2, 2, 2), lam=1.0)
    with torch.no_grad():
        z = enc(clips, masks=ctx, hierarchical=True)
        zt, zc = pred(z, ctx[0], tgt[0], grid=(2, 2, 2), return_context=True)
    torch.testing.assert_close(l0, (zt - h[:, 4:]).abs().mean())
    w = 1 / math.sqrt(1.0)  # every context token (t = 0) is 1 step from a target (t = 1)
    torch.testing.assert_close(l1 - l0, w * (zc - h[:, :4]).abs().mean(), rtol=1e-5, atol=1e-6)


def test_a_few_steps_on_video_and_images_lower_the_loss():
    """Fixed targets, one video batch and one image batch through the image path: Adam lowers the mixed loss."""
    cfg = tiny21()
    enc, pred = _models(cfg)
    g = torch.Generator().manual_seed(3)
    video, image = torch.randn(2, 3, 4, 32, 32, generator=g), torch.randn(3, 3, 1, 32, 32, generator=g)
    hv, hi = target_features21(enc, video, 4), target_features21(enc, image, 4)  # frozen copies of the targets
    assert hi.shape == (3, 4, 192)  # T = 1: the image embedder, 1 x 2 x 2 tokens
    model = Jepa21Model(enc, pred, hierarchical=True, predict_context=True)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    vctx, vtgt = [torch.tensor([[0, 1, 2, 3]] * 2)], [torch.tensor([[4, 5, 6, 7]] * 2)]
    ictx, itgt = [torch.tensor([[0, 3]] * 3)], [torch.tensor([[1, 2]] * 3)]
    losses = []
    for _ in range(8):
        loss = 0.5 * model(video, hv, vctx, vtgt, (2, 2, 2), 0.5, "video") + \
            0.5 * model(image, hi, ictx, itgt, (1, 2, 2), 0.5, "image")
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert all(b < a for a, b in zip(losses, losses[1:], strict=False)) and losses[-1] < 0.95 * losses[0], losses
    assert enc.patch_embed_img.proj.weight.grad is not None and enc.img_mod_embed.grad is not None


# ---- the image / video plan ------------------------------------------------------------------------------------

def test_step_modalities():
    assert step_modalities(None, 5) == [("video", 1.0)]
    mixed = ImagesConfig(rank_ratio=0.25)
    assert step_modalities(mixed, 0) == [("video", 0.75), ("image", 0.25)]
    alt = ImagesConfig(mix="alternate", rank_ratio=0.25)
    plan = [step_modalities(alt, s)[0][0] for s in range(8)]
    assert plan.count("image") == 2 and plan == ["video", "video", "video", "image"] * 2
    half = ImagesConfig(mix="alternate")
    assert [step_modalities(half, s)[0][0] for s in range(4)] == ["video", "image", "video", "image"]
    # several processes: the first int(world * ratio) ranks read images, whatever `mix` says
    assert [step_modalities(half, 0, r, 4)[0][0] for r in range(4)] == ["image", "image", "video", "video"]
    assert image_ranks(8, 0.5) == 4
    with pytest.raises(VjepaError, match="each modality needs at least one"):
        image_ranks(2, 0.4)


def test_planned_sampler_keeps_global_steps_and_resumes():
    from vjepa_cli.data.sampler import StepBatchSampler

    base = StepBatchSampler([10], None, 2, seed=0, num_steps=12)
    owns = lambda s: s % 3 == 2  # noqa: E731
    got = list(PlannedSampler(base, owns, micro_batches=2))
    assert [b[0][0] for b in got] == [4, 5, 10, 11]  # micro-batches 4, 5 = step 2; 10, 11 = step 5
    again = PlannedSampler(StepBatchSampler([10], None, 2, seed=0, num_steps=12), owns, 2)
    again.load_state_dict({"step": 6})
    assert list(again) == got[2:]


def test_rank_split_streams():
    from types import SimpleNamespace

    from vjepa_cli.train.pretrainer21 import Pretrain21Trainer

    cfg = tiny21("objective.images.rank_ratio=0.25")
    fake = SimpleNamespace(cfg=cfg, grid=cfg.grid)
    one = Pretrain21Trainer._streams(fake, 0, 1)
    assert set(one) == {"video", "image"} and one["image"].grid == (1, 2, 2) and one["video"].grid == (2, 2, 2)
    img = Pretrain21Trainer._streams(fake, 0, 4)
    assert list(img) == ["image"] and tuple(img["image"])[2:] == (4, (1, 2, 2), cfg.seed + 1_000_003, 0, 1)
    vid = Pretrain21Trainer._streams(fake, 3, 4)
    assert list(vid) == ["video"] and (vid["video"].batch, vid["video"].rank, vid["video"].world) == (4 * 4 // 3, 2, 3)


# ---- config checks, recipes ------------------------------------------------------------------------------------

@pytest.mark.parametrize("sets, match", [
    (["model.levels=[]", "model.pred_levels=1"], "hierarchical_targets needs model.levels"),
    (["objective.hierarchical_targets=false"], "pred_levels > 1 predicts every level"),
    (["model.pred_context_head=false"], "predict_context needs model.pred_context_head"),
    (["model.image_embed=false"], "images needs model.image_embed"),
    (["objective.images.data.frames_per_clip=2"], "frames_per_clip must be 1"),
    (["objective.images.mask.kind=future"], "multiblock or tube"),
    (["objective.lambda_warmup=[10, 5]"], "lambda_warmup"),
    (["objective.lambda_wramup=[1, 2]"], "unknown key"),
])
def test_objective_config_refuses_what_cannot_train(sets, match):
    with pytest.raises(VjepaError, match=match):
        tiny21(*sets)


V21_RECIPES = [f"{s}-v21{c}" for s in ("vitb", "vitl", "vitg", "vitG") for c in ("", "-cooldown")]


@pytest.mark.parametrize("name", [*V21_RECIPES, "tiny-cpu-v21"])
def test_v21_recipes_load_with_the_published_settings(name, run_cli):
    assert name in builtin_recipes()
    cfg = load_recipe(PretrainConfig, name)
    o, m = cfg.objective, cfg.model
    assert o.hierarchical_targets and o.predict_context and o.images is not None and o.images.rank_ratio == 0.5
    assert m.pred_num_mask_tokens == 8 and m.pred_levels == 4 == len(m.levels) and m.rope_interleaved
    if name == "tiny-cpu-v21":
        return
    cooldown = name.endswith("cooldown")
    assert (o.lambda_vid, o.lambda_img, o.lambda_warmup) == (0.5, 0.5, (15000, 30000))
    assert o.weight_distance_loss is not cooldown and o.lambda_progressive is not cooldown
    assert cfg.data.frames_per_clip == (64 if cooldown else 16) and cfg.data.crop_size == 256
    assert cfg.steps == (12000 if cooldown else 300000)
    batches = {"vitb": (48, 144), "vitl": (24, 72), "vitg": (24, 72), "vitG": (12, 36)}[name.split("-")[0]]
    assert (cfg.batch_size * (2 if cooldown else 1), o.images.batch_size) == batches
    assert run_cli("pretrain", name, "--help").code == 0


def test_every_builtin_pretraining_recipe_loads():
    names = [n for n in builtin_recipes() if "/" not in n]
    assert {"tiny-cpu", "tiny-cpu-v21", *V21_RECIPES} <= set(names)
    for n in names:
        load_recipe(PretrainConfig, n)


# ---- tiny end-to-end runs --------------------------------------------------------------------------------------

@pytest.mark.parametrize("mix", ["mixed", "alternate"])
def test_tiny_21_run_on_video_and_images_resumes_exactly(tmp_path, mix):
    import os
    import signal

    from vjepa_cli.io.checkpoint import find_latest, load_checkpoint
    from vjepa_cli.models.load import load_model
    from vjepa_cli.train.metrics import read_metrics
    from vjepa_cli.train.pretrain import run_pretrain
    from vjepa_cli.train.pretrainer21 import Pretrain21Trainer

    cfg = tiny21(f"objective.images.mix={mix}")
    full = run_pretrain(cfg, tmp_path / "full")
    assert full.step == 6 and not full.interrupted and math.isfinite(full.final_loss)

    def on_step(info):
        if info.step == 3:
            os.kill(os.getpid(), signal.SIGINT)

    assert run_pretrain(cfg, tmp_path / "part", on_step=on_step).step == 3
    run_pretrain(cfg, tmp_path / "part", resume=True)
    a = load_checkpoint(find_latest(tmp_path / "full" / "checkpoints"))[0]
    b = load_checkpoint(find_latest(tmp_path / "part" / "checkpoints"))[0]
    for k in a:
        if not k.startswith("rng."):
            assert torch.equal(a[k], b[k]), k
    records = read_metrics(tmp_path / "full" / "metrics.jsonl")
    la = [r["loss"] for r in records]
    assert la == [r["loss"] for r in read_metrics(tmp_path / "part" / "metrics.jsonl")]
    if mix == "mixed":  # record k holds step k - 1's terms: lambda 0 until step 1, ramp to 0.5 at step 3
        assert [r["video_lam"] for r in records] == [0.0, 0.0, 0.25, 0.5, 0.5, 0.5]
        assert all(r["image_lam"] == r["video_lam"] and r["image_loss_ctx"] > 0 for r in records)
    m = load_model(tmp_path / "full" / "model.safetensors")
    assert m.config.pred_levels == 4 and m.encoder.levels == (0, 1, 2, 3)
    assert Pretrain21Trainer is not None


def test_two_processes_split_images_and_video_by_rank(tmp_path):
    """torchrun --nproc_per_node 2 (gloo, CPU): rank 0 reads images, rank 1 video; DDP gives both ranks' gradients
    to one model, so both patch embedders and both modality vectors move."""
    import json
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from safetensors.torch import load_file

    from tests.test_pretrain import _free_port
    from vjepa_cli.config._load import dump_yaml

    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    if not Path(torchrun).exists() and shutil.which("torchrun") is None:
        pytest.skip("torchrun not found")
    cfg = tiny21("steps=2", "checkpoint_every=2")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(dump_yaml(cfg))
    cmd = [torchrun, "--nproc_per_node", "2", "--master_port", str(_free_port()), "-m", "vjepa_cli", "pretrain",
           str(recipe), "-o", str(tmp_path / "two"), "--json"]
    p = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert json.loads(p.stdout.strip().splitlines()[-1])["world_size"] == 2
    trained = load_file(str(tmp_path / "two" / "checkpoints" / "step_00000002.safetensors"))
    enc, pred = _models(cfg)
    init = {f"encoder.{k}": v for k, v in enc.state_dict().items()}
    init.update({f"predictor.{k}": v for k, v in pred.state_dict().items()})
    for k in ("encoder.patch_embed_img.proj.weight", "encoder.patch_embed.proj.weight", "encoder.img_mod_embed",
              "encoder.video_mod_embed", "predictor.img_mod_embed", "predictor.video_mod_embed"):
        assert not torch.equal(trained[k], init[k]), k
        assert (trained[k] - init[k]).abs().max() < 5e-3, k  # two small Adam steps away: the same init
