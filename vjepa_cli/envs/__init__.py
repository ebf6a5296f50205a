"""Environments for world models: built-in simulators, Gymnasium adapters, episode collection."""
