"""Measuring what a model learned: probes on frozen features (`eval.probe`) and planning evaluation of
world models in environments (`eval.wm`)."""
