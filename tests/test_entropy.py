"""Probability tables and the symbol coder: deterministic tables, exact round trips, escapes."""

import hashlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nvcodec.entropy.coder import ProbabilityTables, SymbolDecoder, SymbolEncoder
from nvcodec.entropy.tables import (
    FAMILY_THETAS,
    FAMILY_ZEROS,
    NUM_TABLES,
    SCALES,
    TOTAL,
    build_tables,
    quantize_pmf,
    table_parameters,
)
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
    for k in range(NUM_TABLES):
        row = counts[k][counts[k] >= 0]
        assert len(row) == 2 * radius[k] + 2  # values -R..R and the escape
        assert row.sum() == TOTAL - len(row)  # so that symbol i has probability (c_i + 1) / 2**24
        assert (row >= 0).all()
    for family in range(NUM_TABLES // SCALES):  # radius grows with the scale within a family
        assert (np.diff(radius[family * SCALES : (family + 1) * SCALES]) >= 0).all()
    assert table_parameters(0) == (0.5, pytest.approx(0.02))
    assert table_parameters(NUM_TABLES - 1)[1] == pytest.approx(600.0)


def test_dead_zone_family_matches_its_quantiser():
    """Table (theta, b) holds P(0) = 1 - exp(-(1 - theta) / b) of a dead-zone quantised Laplacian."""
    radius, counts = build_tables()
    for k in (5, SCALES + 20, 2 * SCALES + 30):
        theta, b = table_parameters(k)
        r = radius[k]
        p_zero = (counts[k][r] + 1) / TOTAL
        assert p_zero == pytest.approx(1 - np.exp(-(1 - theta) / b), abs=1e-5)
        rng = np.random.default_rng(k)
        y = rng.laplace(scale=b, size=200000)
        s = np.sign(y) * np.floor(np.abs(y) + theta)
        assert np.mean(s == 0) == pytest.approx(p_zero, abs=0.01)


def test_zero_families_hold_their_probability_of_zero_at_every_scale():
    """The families after the theta ones fix P(0) and leave the tail's width to the scale."""
    radius, counts = build_tables()
    for f, zero in enumerate(FAMILY_ZEROS):
        family = len(FAMILY_THETAS) + f
        p_zero = [(counts[k][radius[k]] + 1) / TOTAL for k in range(family * SCALES, (family + 1) * SCALES)]
        assert p_zero == pytest.approx([zero] * SCALES, abs=1e-4)
    narrow, wide = len(FAMILY_THETAS) * SCALES + 20, len(FAMILY_THETAS) * SCALES + 40  # one P(0)
    assert radius[wide] > radius[narrow]


def test_the_first_240_tables_are_those_of_earlier_weights():
    """Tables were only added after the 240 of bitstream_spec.md 5.1.1 (its published hashes), so
    the index tables of weights made before keep their meaning."""
    radius, counts = build_tables()
    digest = hashlib.sha256(radius[:240].astype("<i4").tobytes()).hexdigest()
    assert digest == "fbb16cd6522f2f6536914c3edca32c988e1dc0de649f9e0754ddf935a5248478"
    digest = hashlib.sha256(counts[:240].astype("<i4").tobytes()).hexdigest()
    assert digest == "2204a827fd748fe0c96ad0548d24800aebd368b83f9e912e4cd0310a16735e4e"


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
    indices = rng.integers(0, NUM_TABLES, size=(4, 9, 11))
    scales = np.array([table_parameters(int(k))[1] for k in indices.ravel()]).reshape(indices.shape)
    values = np.round(rng.laplace(size=indices.shape) * scales).astype(np.int64)
    values.flat[:8] = [10**6, -(10**8), 2**30, -(2**30), 70000, -1, 65537, 129]  # escapes
    small = rng.integers(-3, 4, size=20)
    out = roundtrip(tables, [(values, indices), (small, np.zeros(20, dtype=np.int64))])
    assert np.array_equal(out[0], values) and np.array_equal(out[1], small)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(-(2**31) + 2**16, 2**31 - 2**16), st.integers(0, NUM_TABLES - 1)),
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
    """Symbols drawn from a table cost its entropy, and `bits` gives their exact code lengths."""
    rng = np.random.default_rng(3)
    k = SCALES + 30
    r = int(tables.radius[k])
    row = tables.counts[k][: 2 * r + 1] + 1.0
    values = rng.choice(np.arange(-r, r + 1), size=20000, p=row / row.sum())
    assert tables.bits(k, values).sum() / values.size == pytest.approx(
        -np.log2((row / 2**24)[values + r]).mean(), rel=1e-9
    )
    enc = SymbolEncoder(tables)
    enc.add(values, np.full(values.shape, k))
    bits = 8 * len(enc.finish()) / values.size
    row = tables.counts[k][tables.counts[k] >= 0] + 1
    p = row / row.sum()
    entropy = -(p * np.log2(p)).sum()
    assert abs(bits - entropy) < 0.05
