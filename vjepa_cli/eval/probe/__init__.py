"""Attentive and linear probes on frozen features (V-JEPA / V-JEPA 2 frozen evaluation).

- `tasks/`: one module per dataset family and `registry.py`, the one name -> loader dict (a new task goes there);
- `features.py`: clips of a sample and their frozen-encoder features, with the on-disk feature cache;
- `heads.py`: probe heads, the lr x wd grid trained in one pass, classification metrics;
- `run.py`: `run_probe`, the steps from model and task to a `ProbeResult`;
- `outputs.py`: what a run writes, all or nothing.
"""
