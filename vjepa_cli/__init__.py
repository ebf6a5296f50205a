"""vjepa: V-JEPA video self-supervised learning, as a library and a command-line tool."""

__version__ = "0.1.0"


def load_model(path, device=None, dtype=None, revision=None):
    """Load a V-JEPA model file (ours, anything `vjepa convert` reads, or a Hugging Face repo id);
    see `vjepa_cli.models.load`."""
    from vjepa_cli.models.load import load_model as _load_model

    return _load_model(path, device=device, dtype=dtype, revision=revision)


def load_probe(path, device=None):
    """Load a probe written by `vjepa probe` (head, class names, clip protocol); see
    `vjepa_cli.eval.probe.classify`."""
    import importlib  # by name: the root package is a facade and imports no layer (see the import contracts)

    return importlib.import_module("vjepa_cli.eval.probe.classify").load_probe(path, device=device)


def extract_features(model, videos, **options):
    """Features of every window of a video (or a list of videos), as `vjepa extract` computes them; see
    `vjepa_cli.infer.api.extract_features`."""
    import importlib

    return importlib.import_module("vjepa_cli.infer.api").extract_features(model, videos, **options)


def embed_images(model, images, **options):
    """Embeddings of still images (paths or uint8 arrays), `[B, D]`; see `vjepa_cli.infer.api.embed_images`."""
    import importlib

    return importlib.import_module("vjepa_cli.infer.api").embed_images(model, images, **options)


__all__ = ["__version__", "embed_images", "extract_features", "load_model", "load_probe"]
