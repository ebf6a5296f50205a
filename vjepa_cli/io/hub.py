"""Hugging Face Hub model ids: `facebook/vjepa2-vitl-fpc64-256` (optionally `@revision`, or `hf://` in front).

A model argument is a local path when one exists; otherwise a string shaped like a repo id is fetched with
`huggingface_hub.snapshot_download`, so its cache, its offline mode (`HF_HUB_OFFLINE=1`), its token
(`HF_TOKEN`, `hf auth login`) and its endpoint settings apply unchanged. Only weight and config files are
fetched.
"""

from __future__ import annotations

import re
from pathlib import Path

from vjepa_cli.errors import VjepaError

# owner/name, each part as the Hub allows (letters, digits, '-', '_', '.'), then an optional @revision
_REPO_ID = re.compile(r"^(?:hf://)?([A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95})(?:@([\w./-]+))?$")
WEIGHT_PATTERNS = ["*.json", "*.safetensors", "*.pt", "*.pth", "*.pth.tar", "*.bin"]


def parse_repo_id(spec: str | Path) -> tuple[str, str | None] | None:
    """`(repo_id, revision)` when `spec` is shaped like a Hub id and is not an existing local path, else None."""
    text = str(spec)
    if Path(text).exists():
        return None
    m = _REPO_ID.match(text)
    if m is None or m.group(1).endswith((".safetensors", ".pt", ".pth", ".tar", ".bin", ".yaml")):
        return None
    return m.group(1), m.group(2)


def resolve_model_path(spec: str | Path, revision: str | None = None) -> Path:
    """A local path for `spec`: itself when it exists or is not a Hub id, else the Hub snapshot's folder.

    `revision` (a branch, tag or commit) overrides an `@revision` written in `spec`."""
    parsed = parse_repo_id(spec)
    if parsed is None:
        if revision is not None and not Path(str(spec)).exists():
            raise VjepaError(f"--revision needs a Hugging Face repo id, and '{spec}' is not one",
                             hint="write it as owner/name, e.g. facebook/vjepa2-vitl-fpc64-256")
        return Path(spec)
    repo_id, rev = parsed
    folder = _snapshot(repo_id, revision or rev)
    return _pick_file(folder, repo_id)


def snapshot_commit(path: Path) -> str:
    """The commit of a path inside a Hub snapshot (`.../snapshots/<commit>/[file]`)."""
    return (path if path.is_dir() else path.parent).name


def _snapshot(repo_id: str, revision: str | None) -> Path:
    try:
        import huggingface_hub as hh
        from huggingface_hub import errors as hub_errors
    except ImportError as e:  # pragma: no cover - a core dependency
        raise VjepaError(f"'{repo_id}' looks like a Hugging Face repo id, but huggingface_hub is not installed",
                         hint="pip install huggingface_hub") from e
    where = f"{repo_id}" + (f" at revision '{revision}'" if revision else "")
    try:
        return Path(hh.snapshot_download(repo_id, revision=revision, allow_patterns=WEIGHT_PATTERNS))
    except hub_errors.LocalEntryNotFoundError as e:
        raise VjepaError(f"{where} is not a local path and not in the Hugging Face cache, and the Hub cannot be "
                         "reached (offline, HF_HUB_OFFLINE=1, or no network)",
                         hint="download it once with network access, or give a local file") from e
    except hub_errors.GatedRepoError as e:
        raise VjepaError(f"{where} is gated on the Hugging Face Hub", hint="accept its terms on the Hub and log in "
                         "with `hf auth login` (or set HF_TOKEN)") from e
    except hub_errors.RepositoryNotFoundError as e:
        raise VjepaError(f"{where}: no such file here and no such (public) repo on the Hugging Face Hub",
                         hint="check the spelling; for a private repo log in with `hf auth login`") from e
    except hub_errors.RevisionNotFoundError as e:
        raise VjepaError(f"{where}: the revision does not exist", hint="give a branch, tag or commit") from e
    except (OSError, hub_errors.HfHubHTTPError) as e:
        raise VjepaError(f"{where}: download from the Hugging Face Hub failed: {e}".splitlines()[0]) from e


def _pick_file(folder: Path, repo_id: str) -> Path:
    """The snapshot folder itself for a `transformers` layout, else its one checkpoint file."""
    if (folder / "config.json").is_file() and any(folder.glob("model*.safetensors")):
        return folder
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name != "config.json")
    weights = [p for p in files if p.name.endswith((".safetensors", ".pt", ".pth", ".pth.tar", ".bin"))]
    if len(weights) == 1:
        return weights[0]
    if not weights:
        raise VjepaError(f"{repo_id} has no weight files (.safetensors, .pt, .pth, .pth.tar)")
    names = ", ".join(p.name for p in weights[:6])
    raise VjepaError(f"{repo_id} holds several weight files ({names})",
                     hint="download the one you want with `hf download` and give its path")
