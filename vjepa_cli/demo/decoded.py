"""The demo's decoder stage: a regression decoder trained on the physics model's features, then the most
surprising window of a possible and of an impossible physics video, decoded (`decoded.png`)."""

from __future__ import annotations

from pathlib import Path

# quick: the pipeline only (a 1-block decoder, 10 steps of 4 clips); full: about 50 s at 4 steps/s, enough for
# the floor, the bar and the balls' colours and places (README, "What the decoder shows")
QUICK_SETS = ["optim.steps=10", "data.clips=16", "optim.batch_size=4", "optim.warmup_steps=2", "decoder.width=64",
              "decoder.depth=1", "decoder.refine_channels=8", "checkpoint_every=10", "log_every=5"]
FULL_SETS = ["optim.steps=200", "data.clips=256", "optim.batch_size=8", "checkpoint_every=200"]


def decoded_picture(quick: bool, out: Path, phys_model: Path, phys_ctx: Path, synth_spec, pair: tuple[Path, Path],
                    scfg, device: str | None) -> dict:
    """Train the decoder into `out/decoder.safetensors` (on the physics pretraining's own videos) and write
    `out/decoded.png`; returns its training summary."""
    from vjepa_cli.config._load import load_recipe
    from vjepa_cli.config.decoder import DecoderTrainConfig
    from vjepa_cli.data.synth import ensure_synth
    from vjepa_cli.infer.decoded import write_picture
    from vjepa_cli.infer.inputs import VideoJob
    from vjepa_cli.infer.predict import open_model, surprise_curves
    from vjepa_cli.infer.render_prediction import open_decoder, surprise_prediction

    videos = ensure_synth(synth_spec).out_dir  # already made for the physics pretraining
    sets = (QUICK_SETS if quick else FULL_SETS) + [f"model={phys_model}", f"data.source={videos}"]
    if device:
        sets.append(f"device={device}")
    from vjepa_cli.train.decoder import run_decoder_train

    res = run_decoder_train(load_recipe(DecoderTrainConfig, None, sets), out / "decoder.safetensors")
    model, dev, _ = open_model(phys_model, scfg, phys_ctx)
    curves, _ = surprise_curves(model, [VideoJob(i, Path(p), Path()) for i, p in enumerate(pair)], scfg, dev)
    decoder = open_decoder(res.output, dev)
    preds = []
    for name, curve in zip(("possible", "impossible"), curves, strict=True):
        p = surprise_prediction(model, decoder, curve, scfg, samples=1)
        p.title = f"{name}: {p.title}"
        preds.append(p)
    write_picture(out / "decoded.png", preds)
    return {"decoder_steps": res.steps, "decoder_seconds": res.seconds, "decoder_loss": res.final_loss}
