"""Typed configuration. Import sections from their modules (`vjepa_cli.config.model`, ...)."""

from vjepa_cli.config._load import (
    all_keys,
    apply_sets,
    config_hash,
    dump_yaml,
    from_dict,
    load_recipe,
    read_yaml,
    to_dict,
)

__all__ = ["all_keys", "apply_sets", "config_hash", "dump_yaml", "from_dict", "load_recipe", "read_yaml", "to_dict"]
