"""Attentive and linear probes on frozen features: tasks, feature caching, heads and training."""
