"""Where a model lives: a local folder, or a hub id resolved through the Hugging Face cache.

Every place that takes a model (``tgsr.model``, ``tgsr.ref_model``, ``--model``) calls
``resolve_model_path`` once and works with the folder it returns, so a hub id behaves exactly
like the folder it names: the reference policy check, the processing files copied next to a
trained model and TRL's reference loading all see a real path.

With ``HF_HUB_OFFLINE=1`` only the cache is read; otherwise a missing snapshot is downloaded
(model files only: configs, tokenizer, templates and safetensors weights). When neither a folder
nor a cached snapshot exists the error names both the id and the cache folder that was searched.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import TgsrError

# What a model folder needs; anything else in a hub repo (demo media, .bin duplicates of the
# safetensors, the Omni speaker dictionary) is never read by tgsr.
MODEL_FILE_PATTERNS = ["*.json", "*.safetensors", "*.jinja", "*.txt", "*.model", "*.tiktoken"]


def looks_like_hub_id(path_or_id: str) -> bool:
    """``org/name`` that is not a path the user meant as a folder (``./x``, ``/x``, ``~/x``, or a
    first component that is an existing local folder such as ``runs/grpo-typo``)."""
    parts = Path(path_or_id).parts
    return (len(parts) == 2 and not path_or_id.startswith(("/", ".", "~"))
            and not Path(parts[0]).expanduser().is_dir())


def resolve_model_path(path_or_id: str | Path, *, what: str = "model") -> str:
    """The local folder of ``path_or_id``: the folder itself, or the cached (downloaded) hub snapshot."""
    path_or_id = str(path_or_id)
    p = Path(path_or_id).expanduser()
    if p.is_dir():
        return str(p)
    if p.exists():
        raise TgsrError(f"{path_or_id}: not a {what} folder (expected a folder with config.json)")
    if not looks_like_hub_id(path_or_id):
        raise TgsrError(f"{path_or_id}: {what} folder not found (build a tiny one with `tgsr model tiny`, "
                        "or name a downloaded checkpoint folder or a hub id such as Qwen/Qwen2-Audio-7B-Instruct)")
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    offline = bool(constants.HF_HUB_OFFLINE)
    try:
        return snapshot_download(path_or_id, allow_patterns=MODEL_FILE_PATTERNS, local_files_only=offline)
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError) as e:
        how = ("HF_HUB_OFFLINE=1, so only the cache was searched" if offline
               else f"the download failed ({type(e).__name__}: {e})")
        raise TgsrError(
            f"{path_or_id}: no local folder of that name and no snapshot in the Hugging Face cache "
            f"{constants.HF_HUB_CACHE} ({how}). Download it with `hf download {path_or_id}` (or set HF_HUB_CACHE / "
            "HF_HOME to the cache that holds it), or pass the checkpoint folder.") from None


__all__ = ["MODEL_FILE_PATTERNS", "looks_like_hub_id", "resolve_model_path"]
