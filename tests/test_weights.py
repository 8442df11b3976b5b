"""Weights files: fp16 float parts, exact integer parts, identity by SHA-256, clear refusals."""

import hashlib
import json
import struct

import pytest
import torch

from nvcodec.errors import WeightsError
from nvcodec.models.config import TINY
from nvcodec.weights import default_weights_path, load_weights, random_model, save_weights


def test_save_and_load_round_trip(tmp_path):
    model = random_model(TINY, seed=1)
    path = tmp_path / "w.safetensors"
    digest = save_weights(model, path, {"note": "test"})
    loaded = load_weights(path)
    assert loaded.sha256.hex() == digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert loaded.identity == loaded.sha256[:8]
    state, original = loaded.model.state_dict(), model.state_dict()
    for name, t in original.items():
        if t.is_floating_point():
            assert torch.equal(state[name], t.half().float()), name  # released in fp16
        else:
            assert torch.equal(state[name], t), name  # integer tables and networks exactly
    assert save_weights(loaded.model, tmp_path / "again.safetensors", {"note": "test"}) == digest


def test_random_models_are_reproducible():
    a, b = random_model(TINY, seed=3).state_dict(), random_model(TINY, seed=3).state_dict()
    assert all(torch.equal(a[n], b[n]) for n in a)


def write_safetensors_header(path, header: dict, body: bytes = b"") -> None:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + body)


@pytest.mark.parametrize(
    "content,message",
    [
        (b"", "too short"),
        (b"\xff" * 64, "truncated or not safetensors"),
        (struct.pack("<Q", 4) + b"abcd", "not safetensors"),
    ],
)
def test_malformed_files_are_refused(tmp_path, content, message):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(WeightsError, match=message):
        load_weights(path)


def test_foreign_or_mismatched_files_are_refused(tmp_path):
    path = tmp_path / "x.safetensors"
    with pytest.raises(WeightsError, match="no such weights file"):
        load_weights(path)
    write_safetensors_header(path, {"__metadata__": {"format": "something-else"}})
    with pytest.raises(WeightsError, match="not an nvcodec weights file"):
        load_weights(path)
    meta = {"format": "nvcodec-weights/1", "config": "tiny", "config_json": "{}"}
    write_safetensors_header(path, {"__metadata__": meta})
    with pytest.raises(WeightsError, match="different 'tiny' configuration"):
        load_weights(path)
    meta["config"] = "huge"
    write_safetensors_header(path, {"__metadata__": meta})
    with pytest.raises(WeightsError, match="unknown model configuration"):
        load_weights(path)


def test_out_of_range_integer_parts_are_refused(tmp_path):
    model = random_model(TINY, seed=2)
    with torch.no_grad():
        model.intra.latent.z_prior.index_int[0] = 64
    path = tmp_path / "bad.safetensors"
    save_weights(model, path)
    with pytest.raises(WeightsError, match="index_int has values outside 0..63"):
        load_weights(path)
    model = random_model(TINY, seed=2)
    with torch.no_grad():
        model.table_counts[3, 0] += 1
    save_weights(model, path)
    with pytest.raises(WeightsError, match="probability table 3 is invalid"):
        load_weights(path)


def test_released_weights_match_their_manifest():
    """weights/ ships a base model whose manifest names its exact bytes and size."""
    path = default_weights_path()
    manifest = json.loads((path.parent / "manifest.json").read_text())
    weights = load_weights(path)
    assert manifest["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest() == weights.sha256.hex()
    assert manifest["config"]["name"] == weights.config.name == "base"
    assert manifest["parameters"] == sum(p.numel() for p in weights.model.parameters())
