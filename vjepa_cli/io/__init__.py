"""File formats: safetensors with string metadata, atomic writes. Tensors, dicts and paths only."""
