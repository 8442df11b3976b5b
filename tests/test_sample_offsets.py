"""Sample offsets (bitstream 2.17): the classes, the offsets' signs and clamping, the encoder's
choice, the parameters in front of the latent substream, and the decoder's pictures agreeing."""

import io
from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.test_codec import decode, encode_frames, make_weights
from tests.test_intra_prediction import diagonal_stripes

from nvcodec.bitstream import BitstreamReader
from nvcodec.codec.schedule import CodingParams, ToolMode
from nvcodec.entropy.coder import ProbabilityTables, SymbolDecoder, SymbolEncoder
from nvcodec.entropy.tables import build_tables
from nvcodec.errors import BitstreamError
from nvcodec.metrics import mse
from nvcodec.models import sample_offsets as so
from nvcodec.models.layout import from_planes, weighted_mse

TABLES = ProbabilityTables(*build_tables())


def test_classes_along_each_direction():
    plane = torch.tensor([[5, 9, 5], [9, 1, 9], [5, 9, 5]], dtype=torch.int32)
    # the centre is below all its neighbours
    assert [int(so.classes(plane, d)[1, 1]) for d in range(4)] == [-2, -2, -2, -2]
    plane[1, 1] = 5  # below its horizontal and vertical neighbours, level with the diagonal ones
    assert [int(so.classes(plane, d)[1, 1]) for d in range(4)] == [-2, -2, 0, 0]
    plane = torch.tensor([[5, 9, 5], [5, 9, 9], [5, 9, 5]], dtype=torch.int32)
    assert [int(so.classes(plane, d)[1, 1]) for d in range(4)] == [1, 0, 2, 2]
    assert int(so.classes(-plane, 0)[1, 1]) == -1
    border = torch.ones(3, 3, dtype=torch.bool)
    border[1, 1] = False
    assert not so.classes(plane, 2)[border].any()  # a neighbour is missing there


def test_offsets_only_smooth_and_clamp():
    plane = torch.randint(0, 1021, (16, 16), generator=torch.Generator().manual_seed(1), dtype=torch.int32)
    params = so.PlaneOffsets(1, (3, 2, 2, 29))
    out = so.offset_plane(plane, params, 1020)
    cls = so.classes(plane, 1)
    assert (out[cls < 0] >= plane[cls < 0]).all() and (out[cls > 0] <= plane[cls > 0]).all()
    assert (out[cls < 0] > plane[cls < 0]).any() and (out[cls > 0] < plane[cls > 0]).any()
    assert torch.equal(out[cls == 0], plane[cls == 0])
    assert int(out.min()) >= 0 and int(out.max()) <= 1020
    assert torch.equal(so.offset_plane(plane, None, 1020), plane)


def _frame(luma: torch.Tensor, bits: int) -> torch.Tensor:
    """A (1, 6, h, w) tensor of a luma plane's levels, grey chroma."""
    top = 255 << (bits - 8)
    h, w = luma.shape
    grey = torch.full((1, h // 2, w // 2), top // 2, dtype=torch.float32)
    return from_planes([luma[None].float(), grey, grey]) / top


@pytest.mark.parametrize("bits", [8, 10])
def test_the_encoder_takes_offsets_that_lower_the_error_or_none(bits):
    ramp = (torch.arange(32.0)[:, None] + torch.arange(32.0)) * (3 << (bits - 8))
    ringing = (torch.rand(32, 32, generator=torch.Generator().manual_seed(2)) < 0.5) * 6.0 - 3
    x, x_hat = _frame(ramp, bits), _frame((ramp + ringing * (1 << (bits - 8))).round(), bits)
    planes = so.choose(x, x_hat, bits, 1e-7, None)
    assert planes[0] is not None and planes[1:] == [None, None]  # the grey planes have no error
    after = so.apply(x_hat, planes, bits, None)
    assert float(weighted_mse(after, x)) < float(weighted_mse(x_hat, x))
    assert so.choose(x, x, bits, 1e-7, None) == [None, None, None]  # nothing to correct
    assert so.choose(x, x_hat, bits, 10.0, None) == [None, None, None]  # the bits cost too much


def test_a_p_frame_moves_the_samples_of_its_coded_blocks_alone():
    """8x8 luma and 4x4 chroma blocks of the (hp, wp) coded map; the classes see every neighbour."""
    generator = torch.Generator().manual_seed(3)
    x_hat = torch.randint(0, 1021, (1, 6, 16, 16), generator=generator).float() / 1020
    coded = torch.tensor([[True, False, False, True]] * 4)  # 32x32 luma samples, 16x16 chroma
    planes = [so.PlaneOffsets(0, (5, 5, 5, 5))] * 3
    moved = so.apply(x_hat, planes, 10, coded) != x_hat
    everywhere = so.apply(x_hat, planes, 10, None) != x_hat
    inside = from_planes([m[None] for m in so.plane_masks(coded, torch.device("cpu"))])
    assert not moved[~inside].any() and torch.equal(moved[inside], everywhere[inside])
    assert moved[inside].float().mean() > 0.3  # classes other than 0, off the border


params_st = st.one_of(
    st.none(),
    st.builds(so.PlaneOffsets, st.integers(0, 3), st.tuples(*[st.integers(0, so.MAX_MAGNITUDE)] * 4)),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(params_st, min_size=3, max_size=3), st.lists(st.integers(-40, 40), max_size=30))
def test_parameters_lead_the_latent_substream_and_leave_it_as_it_was(planes, symbols):
    encoder = SymbolEncoder(TABLES)
    encoder.add(np.array(symbols), np.full(len(symbols), 20))
    latent = encoder.finish()
    stream = so.write(planes, latent, TABLES)
    overhead = 8 * (len(stream) - len(latent))
    assert overhead <= so.parameter_bits(planes) + 64  # the flags at one bit each, and words
    read, rest = so.read(stream, TABLES)
    assert read == planes and rest == latent
    decoder = SymbolDecoder(TABLES, rest)
    assert decoder.read(np.full(len(symbols), 20)).tolist() == symbols
    decoder.finish()


def test_magnitudes_take_exp_golomb_codes():
    lengths = [
        so.PlaneOffsets(0, (m, 0, 0, 0)).bits - so.PlaneOffsets(0, (0, 0, 0, 0)).bits for m in range(30)
    ]
    assert lengths == [0] * 2 + [2] * 4 + [4] * 8 + [5] * 16  # 2, 4, 6 bits, and 7 without a zero


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=24).map(lambda b: b[: len(b) // 4 * 4]))
def test_any_substream_reads_as_parameters_in_range_or_is_refused(data):
    try:
        planes, _ = so.read(data, TABLES)
    except BitstreamError:
        return
    for p in planes:
        assert p is None or (0 <= p.direction < 4 and all(0 <= m <= so.MAX_MAGNITUDE for m in p.magnitudes))


def test_sample_offsets_decode_exactly_and_off_writes_2_16():
    """Diagonal stripes at a coarse step ring along their edges: the encoder offsets the luma."""
    weights = make_weights(4)
    params = CodingParams(qp=32, filter=ToolMode.OFF, enhance=ToolMode.OFF)
    source = [diagonal_stripes(1)] * 3
    coded, data = encode_frames(weights, params, source)
    for c, d in zip(coded, decode(weights, data)):
        assert d.recon_matches and d.picture.recon == c.picture.recon
    reader = BitstreamReader(io.BytesIO(data))
    assert reader.header.version == (2, 19) and reader.header.sample_offsets
    tables = weights.model.probability_tables()
    first = so.read(next(iter(reader)).substreams[-1], tables)[0]
    assert first[0] is not None and first[0].direction == 2  # along the stripes
    coded_off, data_off = encode_frames(weights, replace(params, sample_offsets=ToolMode.OFF), source)
    header = BitstreamReader(io.BytesIO(data_off)).header
    assert header.version == (2, 16) and not header.sample_offsets
    assert all(d.recon_matches for d in decode(weights, data_off))
    errors = [mse(c.picture.recon.y, source[0].y) for c in (coded[0], coded_off[0])]
    assert errors[0] < errors[1]
