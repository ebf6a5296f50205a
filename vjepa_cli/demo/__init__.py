"""`vjepa demo`: the whole pipeline on built-in synthetic data, with an honest report.

synth data -> pretrain (`tiny-cpu`) -> export the EMA encoder -> extract features -> probe `synth-motion`
with the pretrained and with the random-initialised encoder it started from -> surprise on `physics`
possible vs impossible pairs (AUROC) for both -> `report.md` with the table and the pictures.

`pipeline` holds the stages and `run_demo`; `report` the table, `demo.json` and `report.md`.
"""

from vjepa_cli.demo.pipeline import DemoConfig, DemoResult, random_init_model, run_demo
from vjepa_cli.demo.report import write_report

__all__ = ["DemoConfig", "DemoResult", "random_init_model", "run_demo", "write_report"]
