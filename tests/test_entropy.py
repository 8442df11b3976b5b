"""Probability tables and the symbol coder: deterministic tables, exact round trips, escapes."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nvcodec.entropy.coder import ProbabilityTables, SymbolDecoder, SymbolEncoder
from nvcodec.entropy.tables import NUM_SCALES, TOTAL, build_tables, quantize_pmf, scale_of
from nvcodec.errors import BitstreamError
from nvcodec.models.config import TINY
from nvcodec.weights import random_model


@pytest.fixture(scope="module")
def tables() -> ProbabilityTables:
    return ProbabilityTables(*build_tables())


def test_tables_are_valid_and_deterministic():
    radius, counts = build_tables()
    again = build_tables()
    assert np.array_equal(radius, again[0]) and np.array_equal(counts, again[1])
    for k in range(NUM_SCALES):
        row = counts[k][counts[k] >= 0]
        assert len(row) == 2 * radius[k] + 2  # values -R..R and the escape
        assert row.sum() == TOTAL - len(row)  # so that symbol i has probability (c_i + 1) / 2**24
        assert (row >= 0).all()
    assert (np.diff(radius) >= 0).all()
    assert scale_of(0) == pytest.approx(0.11) and scale_of(NUM_SCALES - 1) == pytest.approx(128.0)


def test_model_stores_the_tables_it_codes_with():
    model = random_model(TINY)
    radius, counts = build_tables()
    assert np.array_equal(model.table_radius.numpy(), radius)
    assert np.array_equal(model.table_counts.numpy(), counts)


def test_quantize_pmf_keeps_total_and_order():
    counts = quantize_pmf(np.array([0.5, 0.25, 0.25, 1e-12]))
    assert counts.sum() == TOTAL - 4
    assert counts[0] > counts[1] == counts[2] >= counts[3]


def roundtrip(tables: ProbabilityTables, groups: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
    enc = SymbolEncoder(tables)
    for values, indices in groups:
        enc.add(values, indices)
    data = enc.finish()
    dec = SymbolDecoder(tables, data)
    out = [dec.read(indices) for _, indices in groups]
    dec.finish()
    return out


def test_roundtrip_with_escapes_of_every_size(tables):
    rng = np.random.default_rng(0)
    indices = rng.integers(0, NUM_SCALES, size=(4, 9, 11))
    values = np.round(rng.normal(size=indices.shape) * scale_of(indices)).astype(np.int64)
    values.flat[:8] = [10**6, -(10**8), 2**30, -(2**30), 70000, -1, 65537, 129]  # escapes
    small = rng.integers(-3, 4, size=20)
    out = roundtrip(tables, [(values, indices), (small, np.zeros(20, dtype=np.int64))])
    assert np.array_equal(out[0], values) and np.array_equal(out[1], small)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(-(2**31) + 2**16, 2**31 - 2**16), st.integers(0, NUM_SCALES - 1)),
        min_size=0,
        max_size=40,
    )
)
def test_roundtrip_any_values(tables, pairs):
    values = np.array([v for v, _ in pairs], dtype=np.int64)
    indices = np.array([k for _, k in pairs], dtype=np.int64)
    assert np.array_equal(roundtrip(tables, [(values, indices)])[0], values)


def test_trailing_or_missing_words_are_refused(tables):
    enc = SymbolEncoder(tables)
    enc.add(np.array([3, -2, 7, 40]), np.array([10, 10, 20, 2]))
    data = enc.finish()
    with pytest.raises(BitstreamError):  # an extra word at the end
        dec = SymbolDecoder(tables, data + b"\x01\x00\x00\x00")
        dec.read(np.array([10, 10, 20, 2]))
        dec.finish()
    with pytest.raises(BitstreamError):  # not a whole number of words
        SymbolDecoder(tables, data[:-1])


def test_coding_cost_matches_the_model(tables):
    """A table fits its own distribution: about the entropy of the discretised Gaussian."""
    rng = np.random.default_rng(3)
    k = 30
    values = np.round(rng.normal(size=20000) * scale_of(k)).astype(np.int64)
    enc = SymbolEncoder(tables)
    enc.add(values, np.full(values.shape, k))
    bits = 8 * len(enc.finish()) / values.size
    row = tables.counts[k][tables.counts[k] >= 0] + 1
    p = row / row.sum()
    entropy = -(p * np.log2(p)).sum()
    assert abs(bits - entropy) < 0.05
