"""Attentive and linear probes on frozen features (V-JEPA / V-JEPA 2 frozen evaluation).

- `tasks/`: one module per dataset family and `registry.py`, the one name -> loader dict (a new task goes there);
- `features.py`: clips of a sample and their frozen-encoder features, with the on-disk feature cache;
- `heads.py`: probe heads, the lr x wd grid trained in one pass, classification metrics;
- `run.py`: `run_probe`, the steps from model and task to a `ProbeResult`;
- `outputs.py`: what a run writes, all or nothing.
"""

__all__ = ["ProbeResult", "run_probe"]


def __getattr__(name: str):
    # `vjepa_cli.eval.probe.run_probe` as documented; imported on first use, so the tasks stay cheap to import.
    if name in __all__:
        from vjepa_cli.eval.probe import run

        return getattr(run, name)
    raise AttributeError(f"module 'vjepa_cli.eval.probe' has no attribute {name!r}")
