"""Adaptive tables (bitstream 2.11): a P frame's latent codes each context with the table that
would have coded the P frames of its qp since the intra frame in the fewest bits; the integer
arithmetic, the choice, the reset at intra frames, the version it needs and the round trip."""

import math
from dataclasses import replace
from fractions import Fraction

import numpy as np
import pytest
from tests.test_codec import HEIGHT, WIDTH, decode, encode_frames, make_weights

from nvcodec.bitstream import FrameType
from nvcodec.codec.encoder import Encoder, adaptive_tables_possible, header_for
from nvcodec.codec.schedule import CodingParams, ToolMode
from nvcodec.entropy.adaptation import (
    BIN_EDGES,
    BINS,
    COUNT_LIMIT,
    TableAdaptation,
    bin_lengths,
    bin_masses,
    bin_of,
    halve_to_limit,
    log2_fixed,
)
from nvcodec.entropy.coder import ProbabilityTables
from nvcodec.entropy.context import BUCKETS, CHANNELS
from nvcodec.entropy.tables import SCALES, build_tables
from nvcodec.errors import InputError
from nvcodec.frame import VideoInfo
from nvcodec.sample import synthetic_frames

TABLES = ProbabilityTables(*build_tables())


def test_fixed_point_log2_is_within_one_unit_and_exact_at_powers_of_two():
    x = np.concatenate([np.arange(1, 5000), (1 << np.arange(31)) - 1, 1 << np.arange(31), [12345678]])
    x = x[x > 0]
    got = log2_fixed(x)
    want = np.array([math.log2(v) for v in x]) * 65536
    assert np.all(got <= want + 1e-6) and np.all(got > want - 1)
    assert np.array_equal(log2_fixed(1 << np.arange(31)), np.arange(31) << 16)
    assert np.all(np.diff(log2_fixed(np.arange(1, 5000))) >= 0)


def test_bin_lengths_are_the_coders_bits_at_each_bins_edge():
    lengths = bin_lengths(TABLES) / 65536
    bits = TABLES.magnitude_bits(np.arange(len(TABLES))[:, None], BIN_EDGES[None])
    assert np.abs(lengths - bits).max() < 2 / 65536


def test_bin_masses_hold_every_symbol_once():
    masses = bin_masses(TABLES)
    assert np.all(masses.sum(axis=1) == 1 << 24) and np.all(masses >= 0)
    k = 1 * SCALES + 20  # one table: its zero bin is its zero symbol's frequency
    assert masses[k, 0] == TABLES.counts[k, TABLES.radius[k]] + 1


def test_magnitudes_fall_in_the_bin_of_their_edge():
    assert bin_of(np.array([0, 15, 16, 23, 24, 511, 512, 10**6])).tolist() == [0, 15, 16, 16, 17, 25, 26, 26]
    assert BINS == 27


def test_counts_are_halved_down_to_the_limit_and_kept_below_it():
    counts = np.array([[COUNT_LIMIT, 0], [3 * COUNT_LIMIT, 5], [7, 9]], dtype=np.int64)
    halved = halve_to_limit(counts)
    assert halved[0].tolist() == [COUNT_LIMIT, 0]  # at the limit: as it is
    assert halved[1].tolist() == [3 * COUNT_LIMIT >> 2, 1] and halved[1].sum() <= COUNT_LIMIT
    assert halved[2].tolist() == [7, 9]


def _fitted(k: int) -> np.ndarray:
    return np.full((CHANNELS, BUCKETS), k, dtype=np.int64)


def test_a_context_takes_the_table_of_its_counts_the_others_keep_the_fitted_one():
    adaptation = TableAdaptation(TABLES)
    narrow = 1 * SCALES + 5  # a table for mostly zeros
    fitted = np.full((CHANNELS, BUCKETS), narrow, dtype=np.int64)
    assert np.array_equal(adaptation.table(30, fitted), fitted)  # nothing counted yet
    rng = np.random.default_rng(0)
    symbols = np.zeros((CHANNELS, 8, 8), dtype=np.int64)
    symbols[3] = np.round(rng.laplace(0, 6, (8, 8))).astype(np.int64)  # wide, in channel 3
    adaptation.add(30, symbols, np.full(symbols.shape, 2))
    table = adaptation.table(30, fitted)
    chosen = int(table[3, 2])
    assert chosen % SCALES > narrow % SCALES  # a wider scale
    bits = TABLES.magnitude_bits(np.array([[chosen], [narrow]]), symbols[3].ravel()[None]).sum(axis=1)
    assert bits[0] < bits[1]
    unseen = np.arange(BUCKETS) != 2
    assert np.array_equal(table[:, unseen], fitted[:, unseen])  # no symbols there: as fitted
    assert np.array_equal(adaptation.table(31, fitted), fitted)  # another qp: its own counts
    adaptation.reset()
    assert np.array_equal(adaptation.table(30, fitted), fitted)


@pytest.mark.parametrize(
    ("params", "version"),
    [
        (
            CodingParams(),
            (2, 19),
        ),  # 2.12: compact records, 2.13 intra blocks, 2.14 deep references, 2.15 pixel DC, 2.16 block
        # modes, 2.17 sample offsets, 2.18 half-pel frames, 2.19 neighbour levels
        (CodingParams(neighbour_levels=ToolMode.OFF), (2, 18)),
        (CodingParams(half_pel=ToolMode.OFF), (2, 17)),
        (CodingParams(sample_offsets=ToolMode.OFF), (2, 16)),
        (CodingParams(block_modes=ToolMode.OFF), (2, 15)),
        (CodingParams(pixel_dc=ToolMode.OFF), (2, 14)),
        (CodingParams(deep_references=ToolMode.OFF), (2, 13)),
        (CodingParams(intra_blocks=ToolMode.OFF), (2, 12)),
        (CodingParams(compact_records=ToolMode.OFF), (2, 11)),
        (CodingParams(adaptive_tables=ToolMode.OFF), (2, 10)),
        (CodingParams(prediction_offsets=ToolMode.OFF), (2, 9)),  # 2.11 would have offsets
        (CodingParams(intra_period=1), (2, 8)),  # no P frames
    ],
)
def test_header_adapts_where_a_stream_has_p_frames(params, version):
    header = header_for(make_weights(), params, VideoInfo(64, 48, Fraction(25), 6))
    assert header.adaptive_tables == (version >= (2, 11)) == adaptive_tables_possible(params)
    assert header.version == version


def test_on_is_refused():
    with pytest.raises(InputError, match="--adaptive-tables is auto or off"):
        CodingParams(adaptive_tables=ToolMode.ON)


def test_adapted_streams_decode_to_the_encoders_pictures_and_differ_from_fitted_ones():
    """Two P frames of each qp after the first: the later ones code with adapted tables (the tiny
    weights' tables are not fitted, so adaptation moves them), and the decoder follows."""
    weights = make_weights(3)
    params = CodingParams(qp=30, qp_offsets=(0, 2), filter=ToolMode.OFF, enhance=ToolMode.OFF)
    params = replace(params, intra_blocks=ToolMode.OFF)  # 2.13's map would change every P frame
    source = list(synthetic_frames(WIDTH, HEIGHT, 6, seed=2))
    streams = {}
    for mode in (ToolMode.AUTO, ToolMode.OFF):
        coded, data = encode_frames(weights, replace(params, adaptive_tables=mode), source)
        for c, d in zip(coded, decode(weights, data)):
            assert d.recon_matches and d.picture.recon == c.picture.recon
        streams[mode] = [c.record.substreams for c in coded]
    adapted, fitted = streams[ToolMode.AUTO], streams[ToolMode.OFF]
    assert adapted[:3] == fitted[:3]  # the intra frame and the first P frame of each qp
    assert adapted[3:] != fitted[3:]


def test_an_intra_frame_clears_the_counts():
    weights = make_weights(3)
    params = CodingParams(qp=30, intra_period=3, filter=ToolMode.OFF, enhance=ToolMode.OFF)
    encoder = Encoder(weights, params, VideoInfo(WIDTH, HEIGHT, Fraction(25), 4))
    records = [encoder.encode(f).record for f in synthetic_frames(WIDTH, HEIGHT, 3, seed=2)]
    assert [r.frame_type for r in records] == [FrameType.INTRA, FrameType.INTER, FrameType.INTER]
    assert sorted(encoder.adaptation.counts) == sorted({records[1].qp, records[2].qp})
    assert (
        encoder.encode(next(iter(synthetic_frames(WIDTH, HEIGHT, 1, seed=3)))).record.frame_type
        == FrameType.INTRA
    )
    assert encoder.adaptation.counts == {}


def test_the_specs_example():
    """bitstream_spec.md 6.8: a context of stored table 58 after one P frame of 1000 symbols."""
    symbols = np.zeros((CHANNELS, 10, 100), dtype=np.int64)
    symbols[0].flat[:] = np.repeat([0, 1, 2, 3, 4], [600, 250, 100, 40, 10]) * np.tile([1, -1], 500)
    adaptation = TableAdaptation(TABLES)
    adaptation.add(30, symbols, np.zeros_like(symbols))
    counts = adaptation.counts[30][0, 0]
    assert counts[:5].tolist() == [600, 250, 100, 40, 10] and adaptation.last[30][0, 0] == 1000
    assert adaptation.lengths[58, :5].tolist() == [1927, 434994, 962090, 1468992, 1692800]
    assert bin_masses(TABLES)[58, :5].tolist() == [16438882, 337032, 1278, 6, 18]
    assert adaptation.cross[58, [2, 58, 111]].tolist() == [30412, 10702, 25967]
    every = (counts[None] * adaptation.lengths.astype(np.int64)).sum(axis=1) + 3000 * adaptation.cross[58]
    assert every[[2, 58, 111]].tolist() == [725265400, 313907380, 220389660]
    table = adaptation.table(30, np.full((CHANNELS, BUCKETS), 58, dtype=np.int64))
    assert table[0, 0] == np.argmin(every) == 497 and every[497] == 205074140
