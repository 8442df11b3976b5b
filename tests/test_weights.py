"""Weights files: fp16 float parts, exact integer parts, identity by SHA-256, clear refusals."""

import hashlib
import json
import struct

import pytest
import torch

from nvcodec.entropy.tables import NUM_TABLES
from nvcodec.errors import WeightsError
from nvcodec.models.config import TINY, get_config
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
            assert torch.equal(state[name], t), name  # integer tables exactly
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


def saved_and_refused(model, path, message: str) -> None:
    """Saving works (it checks nothing), loading refuses with `message`."""
    save_weights(model, path)
    with pytest.raises(WeightsError, match=message):
        load_weights(path)


@pytest.mark.parametrize(
    "name,where,value",
    [
        ("intra.latent.index_table", (0, 0, 0), NUM_TABLES),  # one past the last table
        ("inter.latent.index_table", (63, 95, 11), 32767),
        ("inter.latent.index_table", (5, 3, 2), -1),
        ("inter.motion.index_table", (10, 1), NUM_TABLES),
        ("inter.motion.index_table", (0, 0), -1),
    ],
)
def test_out_of_range_integer_parts_are_refused(tmp_path, name, where, value):
    """Every index_table entry must name one of the model's probability tables (0..NUM_TABLES-1)."""
    model = random_model(TINY, seed=2)
    with torch.no_grad():
        model.get_buffer(name)[where] = value
    message = rf"{name} has values outside 0\.\.{NUM_TABLES - 1}"
    saved_and_refused(model, tmp_path / "bad.safetensors", message)


def test_index_tables_at_the_bounds_are_accepted(tmp_path):
    model = random_model(TINY, seed=2)
    with torch.no_grad():
        model.intra.latent.index_table[0, 0, 0] = 0
        model.inter.latent.index_table[-1, -1, -1] = NUM_TABLES - 1
        model.inter.motion.index_table[3, 1, 2] = NUM_TABLES - 1
    path = tmp_path / "edge.safetensors"
    save_weights(model, path)
    loaded = load_weights(path).model
    assert int(loaded.inter.latent.index_table[-1, -1, -1]) == NUM_TABLES - 1
    assert int(loaded.inter.motion.index_table[3, 1, 2]) == NUM_TABLES - 1


def test_invalid_probability_tables_are_refused(tmp_path):
    path = tmp_path / "bad.safetensors"
    model = random_model(TINY, seed=2)
    with torch.no_grad():
        model.table_counts[3, 0] += 1  # counts no longer sum to TOTAL - n
    saved_and_refused(model, path, "probability table 3 is invalid")
    model = random_model(TINY, seed=2)
    n = 2 * int(model.table_radius[7]) + 2
    assert n < model.table_counts.shape[1]  # table 7 is shorter than the padded rows
    with torch.no_grad():
        model.table_counts[7, 0] -= 1  # same sum, but a value past the table's end instead of -1
        model.table_counts[7, n] = 1
    saved_and_refused(model, path, "probability table 7 is invalid")
    model = random_model(TINY, seed=2)
    with torch.no_grad():
        model.table_counts[0, 0] = -1  # a negative count, the sum made right again
        model.table_counts[0, 1] += int(random_model(TINY, seed=2).table_counts[0, 0]) + 1
    saved_and_refused(model, path, "probability table 0 is invalid")
    model = random_model(TINY, seed=2)
    with torch.no_grad():
        model.table_radius[NUM_TABLES - 1] = 0
    saved_and_refused(model, path, f"probability table {NUM_TABLES - 1} is invalid")


def test_released_weights_match_their_manifest():
    """weights/ ships a base model whose manifest names its exact bytes, size and configuration."""
    path = default_weights_path()
    manifest = json.loads((path.parent / "manifest.json").read_text())
    assert manifest["config"]["name"] == "base"
    current = json.loads(json.dumps(get_config("base").to_dict()))  # tuples as JSON lists
    if manifest["config"] != current:
        pytest.skip(
            "weights/manifest.json is for another 'base' configuration than this nvcodec's: the "
            "released weights are from an older model and have not been replaced by v2 weights yet"
        )
    weights = load_weights(path)
    assert manifest["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest() == weights.sha256.hex()
    assert manifest["config"]["name"] == weights.config.name == "base"
    assert manifest["config"] == json.loads(json.dumps(weights.config.to_dict()))
    assert manifest["parameters"] == sum(p.numel() for p in weights.model.parameters())


def test_weights_with_the_tables_of_earlier_versions_load(tmp_path):
    """A weights file holds its own tables: one released before 3 December 2026 has 240 of them, loads with
    them, and its index tables may only name those."""
    model = random_model(TINY, seed=2)
    model.use_tables(model.table_radius[:240].clone(), model.table_counts[:240].clone())
    path = tmp_path / "old.safetensors"
    save_weights(model, path)
    loaded = load_weights(path).model
    assert loaded.probability_tables().counts.shape == (240, model.table_counts.shape[1])
    with torch.no_grad():
        model.inter.motion.index_table[0, 0, 0] = 240
    saved_and_refused(model, path, r"inter\.motion\.index_table has values outside 0\.\.239")
