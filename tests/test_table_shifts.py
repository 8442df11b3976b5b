"""Table shifts (bitstream 2.5): the normative index rule, the shifts at the start of the latent
substream, and the encoder's choice through a whole round trip."""

from dataclasses import replace
from fractions import Fraction

import numpy as np
import pytest
import torch
from tests.test_codec import check_tool, encode, make_weights

from nvcodec.bitstream import FrameFlags, FrameRecord, FrameType, Tools
from nvcodec.codec.encoder import header_for, table_shifts_possible
from nvcodec.codec.schedule import CodingParams, ToolMode
from nvcodec.entropy import table_shifts
from nvcodec.entropy.coder import SymbolDecoder, SymbolEncoder
from nvcodec.entropy.context import CHANNELS, PLANE_OF_CHANNEL, STEP_CHANNELS
from nvcodec.entropy.table_shifts import GROUPS, SHIFT_LIMIT, SHIFT_TABLE, choose, read_shifts, shifted
from nvcodec.entropy.tables import NUM_TABLES, SCALES
from nvcodec.errors import BitstreamError, InputError
from nvcodec.frame import VideoInfo
from nvcodec.models import latent_codec
from nvcodec.models.config import TINY
from nvcodec.models.latent_codec import LatentCodec
from nvcodec.weights import random_model


def test_a_shift_moves_the_scale_within_the_family_and_stops_at_its_ends():
    k = np.array([0, 5, SCALES - 1, SCALES, 3 * SCALES + 10, NUM_TABLES - 1])
    np.testing.assert_array_equal(
        shifted(k, 2), [2, 7, SCALES - 1, SCALES + 2, 3 * SCALES + 12, NUM_TABLES - 1]
    )
    np.testing.assert_array_equal(shifted(k, -6), [0, 0, SCALES - 7, SCALES, 3 * SCALES + 4, NUM_TABLES - 7])
    assert (shifted(k, 0) == k).all()


def test_the_choice_sharpens_tables_for_zeros_and_widens_them_for_large_values():
    tables = random_model(TINY, 0).probability_tables()
    k = np.full((4, 6, 6), 20)
    planes = np.array([0, 0, 1, 2])
    values = np.zeros((4, 6, 6), dtype=np.int64)
    values[3] = 9  # plane 2 holds values far beyond what scale index 20 expects
    shifts, saved = choose(tables, k, values, planes)
    assert shifts[0] < 0 and shifts[1] < 0 and shifts[2] > 0
    assert saved > 0
    same, none = choose(tables, k, np.zeros_like(values), np.zeros(4, dtype=np.int64))
    assert same[0] < 0 and not same[1:].any() and none > 0


def _codec() -> tuple[LatentCodec, object]:
    model = random_model(TINY, 1)
    return model.intra.latent, model.probability_tables()


def test_latent_round_trips_with_shifts_and_only_reads_them_when_flagged():
    """A smooth latent: a few large DCs, the rest near zero, so the shifts pay; the decoder that
    reads them gets the encoder's symbols, one that does not is fooled or refuses."""
    codec, tables = _codec()
    rng = np.random.default_rng(4)
    y = torch.from_numpy(rng.laplace(0, 0.004, size=(1, CHANNELS, 6, 8)).astype(np.float32))
    y[:, STEP_CHANNELS[0]] += 0.3
    result = codec.encode(y, 30, tables, shifts_allowed=True)
    assert result.shifts is not None and result.shifts.shape == (GROUPS,) and result.shifts.any()
    got = codec.decode(result.stream, (6, 8), 30, tables, y, has_shifts=True)
    np.testing.assert_array_equal(got.symbols, result.symbols)
    np.testing.assert_array_equal(got.shifts, result.shifts)
    assert torch.equal(got.y_hat, result.y_hat)
    plain = codec.encode(y, 30, tables)
    assert plain.shifts is None and len(result.stream) < len(plain.stream)
    try:
        wrong = codec.decode(result.stream, (6, 8), 30, tables, y)
    except BitstreamError:
        return
    assert not np.array_equal(wrong.symbols, result.symbols)


def test_shifts_that_would_not_pay_for_themselves_are_not_coded():
    codec, tables = _codec()
    y = torch.zeros(1, CHANNELS, 1, 1)
    result = codec.encode(y, 30, tables, shifts_allowed=True)
    assert result.shifts is None


def test_each_group_of_symbols_is_read_with_its_own_shift():
    """The rule of bitstream_spec.md 6.6 written out symbol by symbol: a stream coded with tables
    shifted per (step, plane) decodes through the codec's own reader."""
    codec, tables = _codec()
    rng = np.random.default_rng(5)
    shifts = rng.integers(-SHIFT_LIMIT, SHIFT_LIMIT + 1, size=GROUPS)
    shape, qp = (3, 4), 25
    symbols = rng.integers(-2, 3, size=(CHANNELS, *shape))
    result = codec.decode(
        _stream(codec, tables, shifts, symbols, qp), shape, qp, tables, torch.zeros(1), None, True
    )
    np.testing.assert_array_equal(result.shifts, shifts)
    np.testing.assert_array_equal(result.symbols, symbols)


def _stream(codec: LatentCodec, tables, shifts: np.ndarray, symbols: np.ndarray, qp: int) -> bytes:
    """An intra latent substream written symbol by symbol from the spec's rule."""
    encoder = SymbolEncoder(tables)
    encoder.add(shifts, np.full(GROUPS, SHIFT_TABLE))
    index_table = codec.index_table[qp].numpy().astype(np.int64)

    def take(j: int, bucket: np.ndarray) -> np.ndarray:
        channels = STEP_CHANNELS[j]
        k = np.empty(bucket.shape, dtype=np.int64)
        for n, c in enumerate(channels):
            base = index_table[c, bucket[n]]
            family, index = divmod(base, SCALES)
            d = shifts[3 * j + PLANE_OF_CHANNEL[c]]
            k[n] = family * SCALES + np.clip(index + d, 0, SCALES - 1)
        encoder.add(symbols[channels], k)
        return symbols[channels]

    codec._steps(symbols.shape[1:], None, take)
    return encoder.finish()


@pytest.mark.parametrize("bad", [SHIFT_LIMIT + 1, -SHIFT_LIMIT - 1, 40])  # 40: an escaped value
def test_a_shift_beyond_the_limit_is_a_bitstream_error(bad):
    _, tables = _codec()
    encoder = SymbolEncoder(tables)
    encoder.add(np.array([3] * (GROUPS - 1) + [bad]), np.full(GROUPS, SHIFT_TABLE))
    with pytest.raises(BitstreamError, match=f"table shift {bad} outside -12..12"):
        read_shifts(SymbolDecoder(tables, encoder.finish()))
    within = SymbolEncoder(tables)
    within.add(np.array([-SHIFT_LIMIT, SHIFT_LIMIT] + [0] * (GROUPS - 2)), np.full(GROUPS, SHIFT_TABLE))
    assert read_shifts(SymbolDecoder(tables, within.finish()))[:2].tolist() == [-SHIFT_LIMIT, SHIFT_LIMIT]


def test_shifts_are_dropped_unless_their_saving_exceeds_their_own_cost(monkeypatch):
    """At exactly the cost of 15 shifts of 0 the frame codes none; a bit more and it codes them."""
    codec, tables = _codec()
    y = torch.from_numpy(
        np.random.default_rng(6).laplace(0, 0.01, size=(1, CHANNELS, 4, 4)).astype(np.float32)
    )
    threshold = GROUPS * table_shifts.own_bits(tables, 0)
    for per_step, coded in ((threshold / 5, False), (threshold / 5 + 0.01, True)):
        monkeypatch.setattr(
            latent_codec, "choose", lambda *a, per_step=per_step: (np.array([1, 0, 0]), per_step)
        )
        result = codec.encode(y, 30, tables, shifts_allowed=True)
        assert (result.shifts is not None) == coded


def test_intra_frames_may_carry_the_flag():
    record = FrameRecord(
        FrameType.INTRA, 30, FrameFlags.TABLE_SHIFTS | FrameFlags.ENHANCE, (b"\0\0\0\1",), 0, 0
    )
    assert record.flags & FrameFlags.TABLE_SHIFTS
    with pytest.raises(BitstreamError, match="on an intra frame"):
        FrameRecord(FrameType.INTRA, 30, FrameFlags.FLAT_BLOCKS, (b"\0\0\0\1",), 0, 0)


def test_encoder_flags_shifted_frames_and_the_decoder_follows():
    """The synthetic clip coded with shifts allowed: some P frame uses them, and the decoder's
    pictures are the encoder's; with them off the stream is 2.4 and has none."""
    weights = make_weights(4)
    off_tools = dict(
        filter=ToolMode.OFF,
        enhance=ToolMode.OFF,
        split_blocks=ToolMode.OFF,
        six_tap=ToolMode.OFF,
        intra_prediction=ToolMode.OFF,
        skip_edges=ToolMode.OFF,
    )
    params = CodingParams(qp=30, **off_tools)
    _, coded, data = encode(weights, params, frames=4, seed=5)
    shifted_frames = [c.record.frame_type for c in coded if c.record.flags & FrameFlags.TABLE_SHIFTS]
    assert FrameType.INTER in shifted_frames  # (intra latents: the round trips above)
    off = replace(params, table_shifts=ToolMode.OFF)
    check_tool(weights, coded, data, off, FrameFlags.TABLE_SHIFTS, Tools.TABLE_SHIFTS, ((2, 5), (2, 4)))


def test_table_shifts_cannot_be_forced_on():
    with pytest.raises(InputError, match="--table-shifts is auto or off"):
        CodingParams(table_shifts=ToolMode.ON)


@pytest.mark.parametrize(
    ("params", "allowed"), [(CodingParams(), True), (CodingParams(table_shifts=ToolMode.OFF), False)]
)
def test_header_allows_table_shifts_unless_they_are_off(params, allowed):
    header = header_for(make_weights(), params, VideoInfo(64, 48, Fraction(25), 6))
    assert bool(header.tools & Tools.TABLE_SHIFTS) == allowed == table_shifts_possible(params)


def test_the_frame_coders_pass_the_permission_to_their_latents(monkeypatch):
    """Intra and inter latents are asked to try shifts exactly when the stream allows them (the
    P frame's latent with its previous symbols, the intra one without)."""
    asked = []
    original = LatentCodec.encode

    def spy(self, y, qp, tables, previous=None, shifts_allowed=False, table=None, lam=None):
        asked.append((self.intra, previous is None, shifts_allowed))
        return original(self, y, qp, tables, previous, shifts_allowed, table, lam)

    monkeypatch.setattr(LatentCodec, "encode", spy)
    weights = make_weights(4)
    # unpredicted intra frames: those with intra prediction code their levels with encode_decided
    params = CodingParams(
        qp=30,
        filter=ToolMode.OFF,
        enhance=ToolMode.OFF,
        intra_prediction=ToolMode.OFF,
        skip_edges=ToolMode.OFF,
    )
    encode(weights, params, frames=2)
    assert (True, True, True) in asked and (False, False, True) in asked
    assert all(allowed for *_, allowed in asked)
    asked.clear()
    encode(weights, replace(params, table_shifts=ToolMode.OFF), frames=2)
    assert asked and not any(allowed for *_, allowed in asked)
