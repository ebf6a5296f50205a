"""Probe tasks: where each benchmark keeps its videos and labels, read into one list of (path, label) per split.

One module per dataset family (`ssv2`, `kinetics` for k400/k600/k700, `diving48`, `images` for in1k, `manifest`,
`synth` for synth-motion/synth-shapes); `registry` maps every task name to its loader.
"""

from vjepa_cli.eval.probe.tasks.common import TaskData, TaskRequest
from vjepa_cli.eval.probe.tasks.registry import TASK_LOADERS, load_task, task_loader

__all__ = ["TASK_LOADERS", "TaskData", "TaskRequest", "load_task", "task_loader"]
