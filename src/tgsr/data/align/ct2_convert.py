"""Convert a CTranslate2 (faster-whisper) Whisper ``model.bin`` into an openai-whisper model.

The only Whisper weights available offline here ship in CTranslate2 format (format
version 6), but whisper-timestamped (the aligner the paper used) runs on openai-whisper
models. A CT2 ``model.bin`` is a header followed by named tensors:

    u32 version | u16 len + spec name | u32 revision | u32 n_variables
    n_variables x [u16 len + name | u8 rank | rank x u32 dims | u8 dtype | u32 nbytes | data]
    u32 n_aliases x [u16 len + alias | u16 len + target]

Tensor names map one to one onto openai-whisper's state dict, except that CT2 fuses the
self-attention q/k/v and the cross-attention k/v projections (openai-whisper's key has
no bias: CT2 stores zeros there) and calls LayerNorm weight/bias ``gamma``/``beta``.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from ...errors import TgsrError

# ctranslate2 DataType enum order
_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: None}  # 5 = bfloat16


class Ct2FormatError(TgsrError):
    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path}: not a convertible CTranslate2 Whisper model: {reason}")


def read_ct2_model(path: str | Path) -> tuple[str, dict[str, np.ndarray]]:
    """Read every variable of a CT2 ``model.bin``; returns (spec name, name -> array)."""
    path = Path(path)
    data = memoryview(path.read_bytes())
    pos = 0

    def take(fmt: str):
        nonlocal pos
        size = struct.calcsize(fmt)
        if pos + size > len(data):
            raise Ct2FormatError(path, "file ends in the middle of the header")
        out = struct.unpack_from(fmt, data, pos)
        pos += size
        return out

    def take_str() -> str:
        nonlocal pos
        (n,) = take("<H")
        s = bytes(data[pos:pos + n]).rstrip(b"\0").decode("utf-8")
        pos += n
        return s

    (version,) = take("<I")
    if version < 5 or version > 6:
        raise Ct2FormatError(path, f"binary format version {version} (supported: 5, 6)")
    spec = take_str()
    if not spec.startswith("Whisper"):
        raise Ct2FormatError(path, f"spec {spec!r} is not a Whisper model")
    take("<I")  # spec revision
    (n_vars,) = take("<I")
    tensors: dict[str, np.ndarray] = {}
    for _ in range(n_vars):
        name = take_str()
        (rank,) = take("<B")
        dims = take(f"<{rank}I") if rank else ()
        (dtype_code,) = take("<B")
        (nbytes,) = take("<I")
        raw = data[pos:pos + nbytes]
        pos += nbytes
        if dtype_code == 5:  # bfloat16: widen through uint32
            arr = (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
        elif dtype_code in _DTYPES:
            arr = np.frombuffer(raw, dtype=_DTYPES[dtype_code])
        else:
            raise Ct2FormatError(path, f"variable {name!r} has unknown dtype code {dtype_code}")
        tensors[name] = arr.reshape(dims) if rank else arr.reshape(())
    if pos + 4 <= len(data):
        (n_alias,) = take("<I")
        for _ in range(n_alias):
            alias, target = take_str(), take_str()
            tensors[alias] = tensors[target]
    return spec, tensors


def _count_layers(tensors: dict, prefix: str) -> int:
    n = 0
    while f"{prefix}/layer_{n}/ffn/linear_0/weight" in tensors:
        n += 1
    return n


def ct2_to_state_dict(tensors: dict[str, np.ndarray]):
    """Map CT2 variables onto openai-whisper's state dict; returns (ModelDimensions, state dict)."""
    import torch
    from whisper.model import ModelDimensions

    def t(name: str) -> "torch.Tensor":
        if name not in tensors:
            raise KeyError(f"CT2 model has no variable {name!r}")
        return torch.from_numpy(np.ascontiguousarray(tensors[name]).astype(np.float32))

    n_audio_layer = _count_layers(tensors, "encoder")
    n_text_layer = _count_layers(tensors, "decoder")
    conv1 = tensors["encoder/conv1/weight"]
    emb = tensors["decoder/embeddings/weight"]
    dims = ModelDimensions(
        n_mels=int(conv1.shape[1]), n_audio_ctx=int(tensors["encoder/position_encodings/encodings"].shape[0]),
        n_audio_state=int(conv1.shape[0]), n_audio_head=int(tensors["encoder/num_heads"]),
        n_audio_layer=n_audio_layer, n_vocab=int(emb.shape[0]),
        n_text_ctx=int(tensors["decoder/position_encodings/encodings"].shape[0]),
        n_text_state=int(emb.shape[1]), n_text_head=int(tensors["decoder/num_heads"]), n_text_layer=n_text_layer,
    )
    sd: dict = {}

    def layer_norm(dst: str, src: str) -> None:
        sd[f"{dst}.weight"] = t(f"{src}/gamma")
        sd[f"{dst}.bias"] = t(f"{src}/beta")

    def linear(dst: str, src: str) -> None:
        sd[f"{dst}.weight"] = t(f"{src}/weight")
        sd[f"{dst}.bias"] = t(f"{src}/bias")

    def self_attention(dst: str, src: str) -> None:
        w, b = t(f"{src}/linear_0/weight"), t(f"{src}/linear_0/bias")
        for part, wi, bi in zip(("query", "key", "value"), w.chunk(3, 0), b.chunk(3, 0)):
            sd[f"{dst}.{part}.weight"] = wi.clone()
            if part != "key":
                sd[f"{dst}.{part}.bias"] = bi.clone()
        linear(f"{dst}.out", f"{src}/linear_1")
        layer_norm(f"{dst}_ln", f"{src}/layer_norm")

    def ffn(dst: str, src: str) -> None:
        linear(f"{dst}.mlp.0", f"{src}/linear_0")
        linear(f"{dst}.mlp.2", f"{src}/linear_1")
        layer_norm(f"{dst}.mlp_ln", f"{src}/layer_norm")

    linear("encoder.conv1", "encoder/conv1")
    linear("encoder.conv2", "encoder/conv2")
    sd["encoder.positional_embedding"] = t("encoder/position_encodings/encodings")
    layer_norm("encoder.ln_post", "encoder/layer_norm")
    for i in range(n_audio_layer):
        self_attention(f"encoder.blocks.{i}.attn", f"encoder/layer_{i}/self_attention")
        ffn(f"encoder.blocks.{i}", f"encoder/layer_{i}/ffn")

    sd["decoder.token_embedding.weight"] = t("decoder/embeddings/weight")
    sd["decoder.positional_embedding"] = t("decoder/position_encodings/encodings")
    layer_norm("decoder.ln", "decoder/layer_norm")
    for i in range(n_text_layer):
        src = f"decoder/layer_{i}"
        self_attention(f"decoder.blocks.{i}.attn", f"{src}/self_attention")
        # cross attention: query alone in linear_0, fused key/value in linear_1
        dst = f"decoder.blocks.{i}.cross_attn"
        linear(f"{dst}.query", f"{src}/attention/linear_0")
        kw, vw = t(f"{src}/attention/linear_1/weight").chunk(2, 0)
        _, vb = t(f"{src}/attention/linear_1/bias").chunk(2, 0)
        sd[f"{dst}.key.weight"], sd[f"{dst}.value.weight"], sd[f"{dst}.value.bias"] = kw.clone(), vw.clone(), vb.clone()
        linear(f"{dst}.out", f"{src}/attention/linear_2")
        layer_norm(f"{dst}_ln", f"{src}/attention/layer_norm")
        ffn(f"decoder.blocks.{i}", f"{src}/ffn")
    return dims, sd


def load_ct2_as_openai_whisper(model_dir: str | Path, device: str = "cpu"):
    """An openai-whisper ``Whisper`` model built from a faster-whisper model folder.

    Alignment heads (the cross-attention heads whose attention follows the audio, used by
    whisper-timestamped for word timings) come from the folder's ``config.json``.
    """
    from whisper.model import Whisper

    model_dir = Path(model_dir)
    bin_path = model_dir / "model.bin"
    if not bin_path.is_file():
        raise Ct2FormatError(model_dir, "no model.bin in this folder")
    _, tensors = read_ct2_model(bin_path)
    try:
        dims, sd = ct2_to_state_dict(tensors)
    except KeyError as e:
        raise Ct2FormatError(bin_path, str(e.args[0])) from None
    model = Whisper(dims)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    # encoder.positional_embedding is a buffer in openai-whisper; everything else must match
    missing = [k for k in missing if k != "encoder.positional_embedding"]
    if missing or unexpected:
        raise Ct2FormatError(bin_path, f"state dict mismatch: missing {missing[:5]}, unexpected {unexpected[:5]}")
    heads = _alignment_heads(model_dir / "config.json", dims.n_text_layer, dims.n_text_head)
    if heads is not None:
        model.register_buffer("alignment_heads", heads.to_sparse(), persistent=False)
    return model.to(device).eval()


def save_openai_checkpoint(model_dir: str | Path, out: str | Path) -> Path:
    """Write an openai-whisper ``.pt`` checkpoint (dims, weights, alignment heads).

    ``whisper.load_model(out)`` opens it; the alignment heads are stored the way
    openai-whisper stores them (a base85 gzip of the boolean layer x head mask).
    """
    import base64
    import gzip
    from dataclasses import asdict

    import torch

    model = load_ct2_as_openai_whisper(model_dir)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    ckpt = {"dims": asdict(model.dims), "model_state_dict": model.state_dict()}
    heads = model.alignment_heads.to_dense().numpy().astype(bool)
    ckpt["alignment_heads"] = base64.b85encode(gzip.compress(heads.tobytes()))
    torch.save(ckpt, out)
    return out


def _alignment_heads(config_path: Path, n_layer: int, n_head: int):
    import torch

    if not config_path.is_file():
        return None
    pairs = json.loads(config_path.read_text()).get("alignment_heads") or []
    if not pairs:
        return None
    mask = torch.zeros(n_layer, n_head, dtype=torch.bool)
    for layer, head in pairs:
        mask[int(layer), int(head)] = True
    return mask


__all__ = ["read_ct2_model", "ct2_to_state_dict", "load_ct2_as_openai_whisper", "save_openai_checkpoint",
           "Ct2FormatError"]


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 3:
        sys.exit("usage: python -m tgsr.data.align.ct2_convert FASTER_WHISPER_DIR_OR_NAME OUT.pt")
    from ...errors import TgsrError
    from .base import resolve_ct2_model

    try:
        print(save_openai_checkpoint(resolve_ct2_model(sys.argv[1]), sys.argv[2]))
    except TgsrError as e:  # a wrong name or folder: a message, not a traceback
        sys.exit(f"ct2_convert: error: {e}")
