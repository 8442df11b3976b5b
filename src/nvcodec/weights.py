"""Model weights as safetensors: fp16 float parts, integer tables as they are, named config.

The SHA-256 of the file identifies the weights; a bitstream records its first 8 bytes, and a
decoder refuses a bitstream made with other weights.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load as load_tensors

from nvcodec.entropy.tables import TOTAL
from nvcodec.errors import WeightsError
from nvcodec.models.config import ModelConfig, get_config
from nvcodec.models.nvc import NvcModel
from nvcodec.outputs import AtomicOutput

FORMAT = "nvcodec-weights/1"
IDENTITY_BYTES = 8
REPO_WEIGHTS = Path(__file__).resolve().parents[2] / "weights" / "base.safetensors"
MAX_WEIGHTS_BYTES = 1 << 30


@dataclass(frozen=True)
class Weights:
    """A loaded model and the identity of the file it came from."""

    model: NvcModel
    sha256: bytes
    path: str

    @property
    def identity(self) -> bytes:
        """The prefix of the SHA-256 that bitstreams carry."""
        return self.sha256[:IDENTITY_BYTES]

    @property
    def config(self) -> ModelConfig:
        return self.model.config


def default_weights_path() -> Path:
    """$NVCODEC_WEIGHTS, else the released weights in the repository's weights/ folder."""
    return Path(os.environ.get("NVCODEC_WEIGHTS", REPO_WEIGHTS))


def release_tensors(model: NvcModel) -> dict[str, torch.Tensor]:
    """The state as released: floating-point tensors in fp16, integer tensors unchanged."""
    return {
        name: (t.detach().to(torch.float16) if t.is_floating_point() else t.detach()).cpu().contiguous()
        for name, t in model.state_dict().items()
    }


_DTYPE_NAMES = {
    torch.float16: "F16",
    torch.float32: "F32",
    torch.int8: "I8",
    torch.int16: "I16",
    torch.int32: "I32",
    torch.int64: "I64",
}


def serialize(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    """The safetensors layout with names sorted, so the same weights always give the same bytes."""
    header: dict[str, object] = {"__metadata__": dict(sorted(metadata.items()))}
    chunks, offset = [], 0
    for name in sorted(tensors):
        t = tensors[name]
        data = t.contiguous().view(torch.uint8).numpy().tobytes()
        header[name] = {
            "dtype": _DTYPE_NAMES[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        chunks.append(data)
        offset += len(data)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + b"".join(chunks)


def weights_bytes(model: NvcModel, extra: dict[str, str] | None = None) -> bytes:
    cfg = model.config
    metadata = {
        "format": FORMAT,
        "config": cfg.name,
        "config_json": json.dumps(cfg.to_dict(), sort_keys=True),
    }
    metadata.update(extra or {})
    return serialize(release_tensors(model), metadata)


def save_weights(model: NvcModel, path: str | os.PathLike[str], extra: dict[str, str] | None = None) -> str:
    """Write the release file (atomically, overwriting); returns its SHA-256 in hex."""
    data = weights_bytes(model, extra)
    with AtomicOutput(path, force=True) as out:
        out.file.write(data)
    return hashlib.sha256(data).hexdigest()


def read_metadata(data: bytes) -> dict[str, str]:
    """The __metadata__ of a safetensors file, validated just enough to trust its length fields."""
    if len(data) < 8:
        raise WeightsError("weights file too short")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise WeightsError("weights file truncated or not safetensors")
    try:
        header = json.loads(data[8 : 8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise WeightsError("weights file is not safetensors") from None
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise WeightsError("not an nvcodec weights file (format tag missing)")
    return meta


def _config_of(meta: dict[str, str]) -> ModelConfig:
    cfg = get_config(meta.get("config", ""))
    if meta.get("config_json") != json.dumps(cfg.to_dict(), sort_keys=True):
        raise WeightsError(
            f"weights were made for a different {cfg.name!r} configuration than this nvcodec's"
        )
    return cfg


def check_integer_parts(model: NvcModel) -> None:
    """Refuse weights whose parsing parts break bitstream_spec.md 5.1.1 and 6.1."""
    radius, counts = model.table_radius, model.table_counts
    for k in range(len(radius)):
        n = 2 * int(radius[k]) + 2
        row = counts[k]
        valid = n <= len(row) and bool((row[:n] >= 0).all()) and bool((row[n:] == -1).all())
        if radius[k] < 1 or not valid or int(row[:n].sum()) != TOTAL - n:
            raise WeightsError(f"probability table {k} is invalid")
    bounds = {"index_table": (0, len(radius) - 1)}
    for name, t in model.state_dict().items():
        lo_hi = bounds.get(name.rsplit(".", 1)[-1])
        if lo_hi and t.numel() and not (lo_hi[0] <= int(t.min()) and int(t.max()) <= lo_hi[1]):
            raise WeightsError(f"{name} has values outside {lo_hi[0]}..{lo_hi[1]}")


def load_weights(path: str | os.PathLike[str]) -> Weights:
    """Read, check and load a weights file into a new model (float32, evaluation mode)."""
    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"{p}: no such weights file")
    if p.stat().st_size > MAX_WEIGHTS_BYTES:
        raise WeightsError(f"{p}: larger than {MAX_WEIGHTS_BYTES} bytes; not a weights file")
    return weights_from_bytes(p.read_bytes(), str(p))


def weights_from_bytes(data: bytes, label: str) -> Weights:
    """Check and load the bytes of a weights file (named `label` in errors) into a new model."""
    p = label
    try:
        model = NvcModel(_config_of(read_metadata(data)))
    except WeightsError as err:
        raise WeightsError(f"{p}: {err}") from None
    try:
        tensors = load_tensors(data)
    except Exception as exc:  # safetensors raises its own error types
        raise WeightsError(f"{p}: cannot read tensors: {exc}") from None
    expected = model.state_dict()
    if set(tensors) != set(expected):
        missing, unexpected = set(expected) - set(tensors), set(tensors) - set(expected)
        raise WeightsError(
            f"{p}: tensors do not match the model ({len(missing)} missing, {len(unexpected)} unknown)"
        )
    if _table_rows(tensors) not in (-1, len(model.table_radius)):
        model.use_tables(torch.zeros_like(tensors["table_radius"]), torch.zeros_like(tensors["table_counts"]))
        expected = model.state_dict()
    for name, t in tensors.items():
        want = expected[name]
        if t.dtype != want.dtype and not (t.is_floating_point() and want.is_floating_point()):
            raise WeightsError(f"{p}: tensor {name} is {t.dtype}, expected {want.dtype}")
        if t.shape != want.shape:
            raise WeightsError(
                f"{p}: tensor {name} has shape {tuple(t.shape)}, expected {tuple(expected[name].shape)}"
            )
    model.load_state_dict({n: t.to(expected[n].dtype) for n, t in tensors.items()})
    check_integer_parts(model)
    return Weights(model.eval(), hashlib.sha256(data).digest(), label)


def _table_rows(tensors: dict[str, torch.Tensor]) -> int:
    """How many probability tables a weights file holds, if its two table tensors agree (-1 if not)."""
    radius, counts = tensors["table_radius"], tensors["table_counts"]
    agree = radius.ndim == 1 and counts.ndim == 2 and len(radius) == len(counts) and len(radius) > 0
    return len(radius) if agree else -1


def random_model(cfg: ModelConfig, seed: int = 0) -> NvcModel:
    """A random-initialised model (untrained blocks stay identity), reproducible from the seed."""
    torch.manual_seed(seed)
    return NvcModel(cfg).eval()
