"""`vjepa surprise`: per-window surprise curves as CSV + PNG, and the intuitive-physics score of a set of
matched possible/impossible videos (Garrido et al. 2025; metrics in `vjepa_cli.infer.metrics`)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vjepa_cli.config.extract import SurpriseConfig
from vjepa_cli.errors import VjepaError
from vjepa_cli.infer.inputs import VideoJob, collect_videos, plan_outputs
from vjepa_cli.infer.metrics import physics_metrics
from vjepa_cli.infer.predict import SurpriseCurve, open_model, surprise_curves
from vjepa_cli.io.atomic import write_text_atomic
from vjepa_cli.runtime import resolve_device


def curve_csv(curve: SurpriseCurve) -> str:
    """One row per window: index, start/end seconds, combined surprise, then one column per context length."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    ctx = list(curve.per_context)
    w.writerow(["window", "start_s", "end_s", "surprise", *[f"context_{c}" for c in ctx]])
    for i in range(len(curve.curve)):
        w.writerow([i, f"{curve.times[i, 0]:.4f}", f"{curve.times[i, 1]:.4f}", f"{curve.curve[i]:.6f}",
                    *[f"{curve.per_context[c][i]:.6f}" for c in ctx]])
    return buf.getvalue()


def curve_png(curve: SurpriseCurve, title: str = "", combine: str = "min"):
    """Surprise against window end time (one line per context length, plus the combined curve)."""
    from vjepa_cli.plot import line_plot

    t = curve.times[:, 1]
    series, styles = {}, {}
    if len(curve.per_context) > 1:  # thin context lines first, the combined curve on top (it equals one of them)
        series = {f"context {c} frames": (t, v) for c, v in curve.per_context.items()}
        styles = {k: {"linewidth": 1.0, "alpha": 0.6} for k in series}
    name = f"combined ({combine} over contexts)" if len(curve.per_context) > 1 else "surprise"
    series[name] = (t, curve.curve)
    styles[name] = {"color": "black", "linewidth": 2.2, "linestyle": (0, (5, 2)), "zorder": 5}
    return line_plot(series, title=title or "surprise", xlabel="window end (s)", ylabel="L1 surprise", styles=styles)


@dataclass
class SurpriseResult:
    curves: list[SurpriseCurve | str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)  # one summary per video (with csv/png or error)

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if "error" in r]


def run_surprise(inputs: Iterable[str | Path], output: str | Path, cfg: SurpriseConfig, model_path: str | Path | None = None,
                 stdin_lines: Iterable[str] | None = None, model: Any = None, on_windows=None,
                 plot: bool = True, context_model: str | Path | None = None) -> SurpriseResult:
    """Surprise curves of every video in `inputs`, written as `<name>.csv` (+ `<name>.png`) under `output`
    (or to `output` itself when it names one `.csv` for one video)."""
    from vjepa_cli.data.media import write_png

    jobs = plan_outputs(collect_videos(inputs, stdin_lines), Path(output), suffix=".csv")
    if model is None:
        model, device, _ = open_model(model_path, cfg, context_model)
    else:
        device = resolve_device(cfg.device)
    curves, _ = surprise_curves(model, jobs, cfg, device, on_windows=on_windows)
    result = SurpriseResult(curves=curves)
    for job, c in zip(jobs, curves, strict=True):
        if isinstance(c, str):
            result.rows.append({"path": str(job.path), "error": c})
            continue
        write_text_atomic(job.output, curve_csv(c))
        row = {**c.summary(), "csv": str(job.output)}
        if plot:
            png = job.output.with_suffix(".png")
            write_png(png, curve_png(c, title=job.path.name, combine=cfg.combine))
            row["png"] = str(png)
        result.rows.append(row)
    return result


def score_pairs(pairs: Sequence[tuple[str | Path, str | Path]], cfg: SurpriseConfig, model_path: str | Path | None = None,
                model: Any = None, on_windows=None, context_model: str | Path | None = None) -> dict[str, Any]:
    """Surprise of matched (possible, impossible) videos -> pairwise accuracy, AUROC, AUPRC (max and mean),
    for the combined curve and for each context length. A pair with an unreadable video is an error."""
    if model is None:
        model, device, _ = open_model(model_path, cfg, context_model)
    else:
        device = resolve_device(cfg.device)
    flat = [p for pair in pairs for p in pair]
    jobs = [VideoJob(i, Path(p), Path()) for i, p in enumerate(flat)]
    curves, _ = surprise_curves(model, jobs, cfg, device, on_windows=on_windows)
    bad = [(str(flat[i]), c) for i, c in enumerate(curves) if isinstance(c, str)]
    if bad:
        raise VjepaError(f"{len(bad)} video(s) could not be scored, e.g. {bad[0][0]}: {bad[0][1]}")
    poss, imp = curves[0::2], curves[1::2]
    out: dict[str, Any] = {"combined": cfg.combine, **physics_metrics([c.curve for c in poss], [c.curve for c in imp])}
    for ctx in cfg.context_frames:
        m = physics_metrics([c.per_context[ctx] for c in poss], [c.per_context[ctx] for c in imp])
        out[f"context_{ctx}"] = {k: v for k, v in m.items() if k != "pairs"}
    out["per_video"] = [{"possible": str(a.path), "impossible": str(b.path), "max": [a.max, b.max],
                         "mean": [a.mean, b.mean], "peak": [a.peak, b.peak]} for a, b in zip(poss, imp, strict=True)]
    return out


def read_pairs(path: str | Path) -> list[tuple[Path, Path]]:
    """Matched (possible, impossible) videos from: a `vjepa synth --task physics --impossible` folder (its
    synth.json), a CSV with columns `possible,impossible`, or a manifest whose rows come in pairs labelled
    0 (possible) then 1 (impossible). Relative paths resolve against the file's folder."""
    import json

    from vjepa_cli.data.manifest import read_manifest

    path = Path(path)
    if path.is_dir():
        info = path / "synth.json"
        if not info.is_file():
            raise VjepaError(f"{path} has no synth.json", hint="make one with `vjepa synth DIR --task physics --impossible`")
        vids = json.loads(info.read_text())["videos"]
        rows = [(str(path / v["path"]), int(v["label"])) for v in vids]
    elif not path.is_file():
        raise VjepaError(f"pairs file not found: {path}")
    elif path.read_text().split("\n", 1)[0].replace(" ", "").startswith("possible,impossible"):
        root = path.resolve().parent
        recs = list(csv.DictReader(io.StringIO(path.read_text())))
        res = [(Path(r["possible"].strip()), Path(r["impossible"].strip())) for r in recs]
        return [(a if a.is_absolute() else root / a, b if b.is_absolute() else root / b) for a, b in res]
    else:
        rows = [(r.path, r.label) for r in read_manifest(path)]
    if len(rows) % 2 or any((rows[i][1], rows[i + 1][1]) != (0, 1) for i in range(0, len(rows), 2)):
        raise VjepaError(f"{path}: videos must come in pairs labelled 0 (possible) then 1 (impossible)")
    return [(Path(rows[i][0]), Path(rows[i + 1][0])) for i in range(0, len(rows), 2)]
