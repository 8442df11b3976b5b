"""Intra prediction (bitstream 2.8; pixel DC 2.15; a mode of eight per block 2.16): the modes,
the neighbours' substitution, the mode map's coding, the wavefront reconstruction, and the
encoder's and decoder's pictures agreeing."""

import inspect
import io
from dataclasses import replace
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.test_codec import HEIGHT, WIDTH, decode, encode, encode_frames, make_weights

from nvcodec.bitstream import BitstreamReader, FrameFlags, Tools
from nvcodec.codec.encoder import header_for, intra_prediction_possible
from nvcodec.codec.schedule import CodingParams, ToolMode
from nvcodec.entropy.coder import ProbabilityTables, SymbolDecoder, SymbolEncoder
from nvcodec.entropy.tables import build_tables
from nvcodec.errors import BitstreamError, InputError
from nvcodec.frame import Frame, VideoInfo
from nvcodec.models import intra_prediction as ip
from nvcodec.models import intra_search
from nvcodec.models.intra_search import decide_modes
from nvcodec.models.latent_codec import LatentCodec
from nvcodec.models.layout import (
    FINE_PEAK,
    frame_to_tensor,
    from_planes,
    padded_size,
    tensor_to_frame,
    to_fine,
    to_planes,
)
from nvcodec.sample import synthetic_frames

ONE = FINE_PEAK // 255


def ramp(n: int, start: int, step: int) -> torch.Tensor:
    return (start + step * torch.arange(n, dtype=torch.int32)).view(1, n)


@pytest.mark.parametrize("n", [8, 4])
def test_each_mode_is_its_shape_less_its_mean(n):
    top, left = ramp(n, 100 * ONE, 3 * ONE), ramp(n, 90 * ONE, -5 * ONE)
    none, planar, vertical, horizontal = ip.predictions(top, left)[:, 0]
    assert not none.any()
    column = vertical[:, 0]
    assert torch.equal(vertical, vertical[0].expand(n, n)) and not column.diff().any()
    assert torch.equal(vertical[0] - vertical[0, 0], top[0] - top[0, 0])  # the top row's shape
    assert torch.equal(horizontal[:, 0] - horizontal[0, 0], left[0] - left[0, 0])
    for p in (planar, vertical, horizontal):  # zero mean within rounding: the DC stays coded
        assert -n * n // 2 <= int(p.sum()) < n * n // 2
    flat = ip.predictions(torch.full((1, n), 7 * ONE), torch.full((1, n), 7 * ONE))
    assert not flat.any()  # a flat neighbourhood predicts no shape, in every mode


@pytest.mark.parametrize("n", [8, 4])
def test_with_pixel_dc_each_mode_keeps_its_mean_and_mode_0_is_the_neighbours_mean(n):
    """Version 2.15's intra frames: the same shapes with their own means, and mode 0 (DC) the
    rounded mean of the n neighbours above and the n to the left."""
    top, left = ramp(n, 100 * ONE, 3 * ONE), ramp(n, 90 * ONE, -5 * ONE)
    shapes, with_means = ip.predictions(top, left), ip.predictions(top, left, pixel_dc=True)
    dc = (int(top.sum()) + int(left.sum()) + n) // (2 * n)
    assert torch.equal(with_means[0, 0], torch.full((n, n), dc))
    assert torch.equal(with_means[2, 0], top[0].expand(n, n)) and torch.equal(
        with_means[3, 0], left[0, :, None].expand(n, n)
    )
    for mode in (1, 2, 3):  # each differs from its shape by one constant, its mean
        offset = with_means[mode, 0] - shapes[mode, 0]
        assert torch.equal(offset, offset[0, 0].expand(n, n))
        assert abs(int(offset[0, 0]) * n * n - int(with_means[mode, 0].sum())) <= n * n // 2


@pytest.mark.parametrize(
    ("tool", "others", "versions"),
    [
        ("pixel_dc", {"block_modes": ToolMode.OFF}, ((2, 15), (2, 14))),
        ("block_modes", {"sample_offsets": ToolMode.OFF}, ((2, 16), (2, 15))),
    ],
)
def test_intra_frame_tools_decode_exactly_and_off_writes_the_version_before(tool, others, versions):
    weights = make_weights(4)
    params = CodingParams(qp=30, filter=ToolMode.OFF, enhance=ToolMode.OFF, **others)
    _, coded, data = encode(weights, params, frames=3, seed=5)
    for c, d in zip(coded, decode(weights, data)):
        assert d.recon_matches and d.picture.recon == c.picture.recon
    _, coded_off, data_off = encode(weights, replace(params, **{tool: ToolMode.OFF}), frames=3, seed=5)
    headers = [BitstreamReader(io.BytesIO(d)).header for d in (data, data_off)]
    assert [(h.version, getattr(h, tool)) for h in headers] == [(versions[0], True), (versions[1], False)]
    assert coded[0].record.substreams != coded_off[0].record.substreams  # the intra frame differs
    assert all(d.recon_matches for d in decode(weights, data_off))


def test_pixel_dc_codes_a_smooth_picture_in_fewer_bits():
    """A smooth ramp: each block's mean follows from its neighbours' pixels, where the MED of
    the DC levels leaves a residual along the ramp."""
    weights = make_weights(4)
    y = (np.add.outer(np.arange(HEIGHT) * 1.7, np.arange(WIDTH) * 0.9) + 20).astype(np.uint8)
    u = (110 + np.add.outer(np.arange(-(-HEIGHT // 2)), np.arange(-(-WIDTH // 2))) // 3).astype(np.uint8)
    frame = Frame(y, u, u.copy())
    params = CodingParams(qp=30, filter=ToolMode.OFF, enhance=ToolMode.OFF, block_modes=ToolMode.OFF)
    sizes = []
    for mode in (ToolMode.AUTO, ToolMode.OFF):
        coded, _ = encode_frames(weights, replace(params, pixel_dc=mode), [frame])
        sizes.append(len(coded[0].record.substreams[0]))
    assert sizes[0] < sizes[1]


def diagonal_stripes(angle_steps: int) -> Frame:
    """Stripes along a diagonal: `angle_steps` rows down per column across."""
    r, c = np.indices((HEIGHT, WIDTH))
    y = (128 + 90 * np.sin((r - angle_steps * c) * 0.45)).astype(np.uint8)
    grey = np.full((-(-HEIGHT // 2), -(-WIDTH // 2)), 128, dtype=np.uint8)
    return Frame(y, grey, grey.copy())


@pytest.mark.parametrize("angle_steps", [-1, 2])
def test_block_modes_code_diagonal_stripes_in_fewer_bits(angle_steps):
    """Stripes that neither rows nor columns continue: the directional modes predict them, so
    2.16 codes the frame in fewer bits at no worse error than one mode of four per macroblock."""
    weights = make_weights(4)
    frame = diagonal_stripes(angle_steps)
    params = CodingParams(qp=30, filter=ToolMode.OFF, enhance=ToolMode.OFF)
    sizes, errors = [], []
    for mode in (ToolMode.AUTO, ToolMode.OFF):
        coded, _ = encode_frames(weights, replace(params, block_modes=mode), [frame])
        sizes.append(len(coded[0].record.substreams[0]))
        errors.append(float(((coded[0].picture.recon.y.astype(float) - frame.y) ** 2).mean()))
    assert sizes[0] < sizes[1] and errors[0] <= errors[1] * 1.1


def spec_directional(top: np.ndarray, left: np.ndarray, corner: int, mode: int) -> np.ndarray:
    """The directional modes of the module docstring (and bitstream_spec.md 7.8.1), position by
    position."""
    n = len(top)
    edge = [*left[::-1], corner, *top]
    f = (
        [edge[0]]
        + [(edge[t - 1] + 2 * edge[t] + edge[t + 1] + 2) >> 2 for t in range(1, 2 * n)]
        + [edge[2 * n]]
    )
    out = np.zeros((n, n), dtype=np.int64)
    for r in range(n):
        for c in range(n):
            if mode == 4:
                out[r, c] = f[n + c - r]
            elif mode == 5:
                out[r, c] = (f[n + c - (r >> 1)] + f[n + c - ((r + 1) >> 1)] + 1) >> 1
            elif mode == 6:
                out[r, c] = (f[n + (c >> 1) - r] + f[n + ((c + 1) >> 1) - r] + 1) >> 1
            else:
                a, b = min(r + (c >> 1), n - 1), min(r + ((c + 1) >> 1), n - 1)
                out[r, c] = (f[n - 1 - a] + f[n - 1 - b] + 1) >> 1
    return out


@pytest.mark.parametrize("n", [8, 4])
def test_the_directional_modes_follow_the_spec_formulas(n):
    rng = np.random.default_rng(n)
    top, left = rng.integers(0, FINE_PEAK + 1, (2, 3, n))
    corner = rng.integers(0, FINE_PEAK + 1, 3)
    got = ip.directional(top, left, corner)
    as_tensors = ip.directional(*(torch.from_numpy(a) for a in (top, left, corner)))
    assert np.array_equal(as_tensors.numpy(), got)
    for k in range(3):
        for mode in range(4, 8):
            assert np.array_equal(got[mode - 4, k], spec_directional(top[k], left[k], int(corner[k]), mode))
    assert ip.BLOCK_MODES.predict(top, left, corner).shape == (8, 3, n, n)


def test_a_missing_corner_is_the_substituted_top_rows_first():
    top, left, corner = np.array([[5, 6], [7, 8]]), np.array([[3, 4], [3, 4]]), np.array([1, 2])
    has_top, has_left = np.array([True, True]), np.array([True, False])
    assert ip.substituted(top, left, corner, has_top, has_left)[2].tolist() == [1, 7]


def test_planar_follows_the_spec_formula():
    n, s = 8, 3
    top, left = ramp(n, 10 * ONE, 7 * ONE), ramp(n, 200 * ONE, -11 * ONE)
    r, c = np.indices((n, n))
    t, lf = top[0].numpy().astype(np.int64), left[0].numpy().astype(np.int64)
    shape = ((n - 1 - c) * lf[r] + (c + 1) * t[n - 1] + (n - 1 - r) * t[c] + (r + 1) * lf[n - 1] + n) >> (
        s + 1
    )
    expected = shape - ((shape.sum() + n * n // 2) >> (2 * s))
    assert np.array_equal(ip.predictions(top, left)[1, 0].numpy(), expected)


def test_missing_neighbours_are_substituted():
    top, left = ramp(4, 50, 1).repeat(4, 1), ramp(4, 80, 2).repeat(4, 1)
    has_top = torch.tensor([True, False, True, False])
    has_left = torch.tensor([True, True, False, False])
    t, lf, _ = ip.substituted(top, left, torch.zeros(4, dtype=top.dtype), has_top, has_left)
    assert torch.equal(t[0], top[0]) and torch.equal(lf[0], left[0])
    assert torch.equal(t[1], left[1, :1].expand(4)) and torch.equal(lf[1], left[1])
    assert torch.equal(t[2], top[2]) and torch.equal(lf[2], top[2, :1].expand(4))
    assert (t[3] == ip.GREY).all() and (lf[3] == ip.GREY).all()


def test_no_prediction_reconstructs_the_residual_clamped():
    residual = torch.randint(-2000, 18000, (1, 6, 16, 24), dtype=torch.int32)
    modes = np.zeros((2, 3), dtype=np.int64)
    assert torch.equal(ip.reconstruct(residual, modes, ip.SHAPES), residual.clamp(0, FINE_PEAK))


def raster_reconstruct(residual: torch.Tensor, modes: np.ndarray, mode_set: ip.ModeSet) -> torch.Tensor:
    """The spec's order, block by block in raster order and plane by plane: the reference the
    decoder's front-by-front reconstruction must equal."""
    planes = [p[0].numpy().astype(np.int64) for p in to_planes(residual)]
    side = mode_set.side
    for plane, n in zip(planes, (8, 4, 4)):
        for bi in range(plane.shape[0] // n):
            for bj in range(plane.shape[1] // n):
                top = plane[max(bi * n - 1, 0), bj * n : bj * n + n][None]
                left = plane[bi * n : bi * n + n, max(bj * n - 1, 0)][None]
                corner = plane[max(bi * n - 1, 0), max(bj * n - 1, 0)][None]
                top, left, corner = ip.substituted(top, left, corner, np.array([bi > 0]), np.array([bj > 0]))
                pred = mode_set.predict(top, left, corner)[modes[bi // side, bj // side], 0]
                block = plane[bi * n : bi * n + n, bj * n : bj * n + n]
                block[:] = np.clip(block + pred, 0, FINE_PEAK)
    return from_planes([torch.from_numpy(p.astype(np.int32))[None] for p in planes])


MODE_SETS = [ip.SHAPES, ip.MACROBLOCK_DC, ip.BLOCK_MODES]


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 3), st.integers(1, 4), st.integers(0, 2**32 - 1), st.sampled_from(MODE_SETS))
def test_the_reconstruction_is_the_raster_orders(hm, wm, seed, mode_set):
    """Any mode map, residuals far outside 0..255 levels (clamped), every plane, every version's
    modes."""
    rng = np.random.default_rng(seed)
    residual = torch.from_numpy(rng.integers(-4000, FINE_PEAK + 4000, (1, 6, 8 * hm, 8 * wm), dtype=np.int32))
    modes = rng.integers(0, mode_set.count, (hm * 2 // mode_set.side, wm * 2 // mode_set.side))
    expected = raster_reconstruct(residual, modes, mode_set)
    assert torch.equal(ip.reconstruct(residual, modes, mode_set), expected)


def test_planes_round_trip():
    t = torch.randint(0, 100, (2, 6, 8, 12), dtype=torch.int32)
    planes = to_planes(t)
    assert [tuple(p.shape) for p in planes] == [(2, 16, 24), (2, 8, 12), (2, 8, 12)]
    assert torch.equal(planes[0][1, 2 * 3 + 1, 2 * 5], t[1, 2, 3, 5])  # phase (1, 0): channel 2
    assert torch.equal(from_planes(planes), t)


def test_a_vertical_block_continues_the_row_above_it():
    """Mode 2 in a 16x16 macroblock whose top blocks hold a ramp and whose bottom blocks a flat
    residual: the bottom blocks repeat the last reconstructed row above them, less its mean, on
    top of their own residual; the top blocks (no row above) take a flat substitute: no shape."""
    y = torch.zeros(16, 16, dtype=torch.int32)
    y[:8] = 60 * ONE + ONE * torch.arange(16, dtype=torch.int32) * 5
    y[8:] = 100 * ONE
    chroma = torch.full((8, 8), 128 * ONE, dtype=torch.int32)
    residual = from_planes([y[None], chroma[None], chroma[None]])
    out = to_planes(ip.reconstruct(residual, np.full((1, 1), 2, dtype=np.int64), ip.SHAPES))[0][0]
    assert torch.equal(out[:8], y[:8])
    for j in (0, 8):
        row = out[7, j : j + 8]
        shape = row - ((8 * row.sum() + 32) >> 6)  # the mean of the 8x8 prediction
        assert torch.equal(out[8:, j : j + 8], (100 * ONE + shape).expand(8, 8))


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 9),
    st.integers(1, 9),
    st.integers(0, 2**32 - 1),
    st.sampled_from([ip.SHAPES, ip.BLOCK_MODES]),
)
def test_the_mode_map_round_trips(hm, wm, seed, mode_set):
    rng = np.random.default_rng(seed)
    modes = rng.integers(0, mode_set.count, (hm, wm))
    if seed % 3 == 0:
        modes[:] = modes[0]  # long runs of the same mode
    tables = ProbabilityTables(*build_tables())
    encoder = SymbolEncoder(tables)
    ip.write_modes(encoder, modes, mode_set)
    stream = encoder.finish()
    decoder = SymbolDecoder(tables, stream)
    assert np.array_equal(ip.read_modes(decoder, (hm, wm), mode_set), modes)
    decoder.finish()
    bits = ip.map_bits(modes, mode_set)
    assert abs(8 * len(stream) - bits) <= 64 + 8  # the coder's 64-bit state, byte rounding


def test_the_block_map_adapts_row_by_row():
    """A map of one mode everywhere: after each row the 'same' flags' probability rises by the
    spec's integer formula, so the adaptive map codes it in fewer bits than at fixed
    probabilities; the first row is coded at the fixed ones."""
    modes = np.full((12, 20), 5)
    fixed = replace(ip.BLOCK_MODES, adaptive=False)
    assert ip.map_bits(modes, ip.BLOCK_MODES) < 0.8 * ip.map_bits(modes, fixed)
    probabilities = ip.MapProbabilities(ip.BLOCK_MODES)
    slots = probabilities.same(np.full(20, 2))
    assert (probabilities(slots, np.ones(20, dtype=bool)) == ip.BLOCK_SAME_PROBABILITIES[2]).all()
    probabilities.end_row()
    p = ip.BLOCK_SAME_PROBABILITIES[2]
    ones, total = 16 * p + 256 * 20, 16 * 256 + 256 * 20
    assert probabilities.current[2] == (256 * ones + total // 2) // total
    assert probabilities.current[0] == ip.BLOCK_SAME_PROBABILITIES[0]  # a slot not coded stays


@pytest.mark.parametrize("mode_set", [ip.SHAPES, ip.BLOCK_MODES])
@pytest.mark.parametrize("context", range(4))
def test_mode_bits_are_a_distribution(context, mode_set):
    """For every predicted mode and context, the modes' estimated costs are those of
    probabilities summing to one, the predicted mode's being the 'same' flag's."""
    predicted = np.arange(mode_set.count)
    bits = ip.mode_bits(predicted, np.full(len(predicted), context), mode_set)
    assert bits.shape == (mode_set.count, mode_set.count)
    assert np.allclose((2.0**-bits).sum(axis=0), 1.0)
    same = -np.log2(mode_set.same[context] / 256)
    assert np.allclose(bits[predicted, predicted], same)


def edges(width: int, height: int) -> list:
    """Synthetic frames with strong vertical and horizontal structure (stripes and ramps)."""
    frames = list(synthetic_frames(width, height, 2, seed=3))
    for f in frames:
        f.y[:, :] = (np.arange(width)[None, :] * 37 % 200 + 20).astype(np.uint8)
        f.y[height // 2 :, :] = (np.arange(height - height // 2)[:, None] * 29 % 180 + 40).astype(np.uint8)
    return frames


@pytest.mark.parametrize("mode_set", MODE_SETS)
def test_the_decoders_intra_frame_is_the_encoders_and_uses_the_modes(mode_set):
    """An intra frame of stripes coded with prediction: the decoder reads the same modes and
    rebuilds the encoder's picture exactly; some areas take a mode other than 0; the frame costs
    fewer bytes than unpredicted at no worse error."""
    weights = make_weights()
    model, tables = weights.model, weights.model.probability_tables()
    x = frame_to_tensor(edges(96, 64)[0])
    out = model.intra.encode(x, 30, tables, shifts_allowed=True, prediction=mode_set)
    plain = model.intra.encode(x, 30, tables, shifts_allowed=True)
    side = mode_set.side
    assert out.modes is not None and out.modes.shape == (8 // side, 12 // side) and out.modes.any()
    has_shifts = out.latent.shifts is not None
    back = model.intra.decode(out.latent.stream, x.shape, 30, tables, x, has_shifts, prediction=mode_set)
    assert np.array_equal(back.modes, out.modes) and torch.equal(back.x_hat, out.x_hat)
    error = [float(((o.x_hat - x) ** 2).mean()) for o in (out, plain)]
    assert len(out.latent.stream) < len(plain.latent.stream) and error[0] <= error[1] * 1.05


def test_streams_with_prediction_are_2_8_and_decode_to_the_encoders_pictures():
    weights = make_weights(4)
    params = CodingParams(
        qp=30, intra_period=2, filter=ToolMode.OFF, enhance=ToolMode.OFF, skip_edges=ToolMode.OFF
    )
    _, coded, data = encode(weights, params, frames=4, seed=5)
    for c, d in zip(coded, decode(weights, data)):
        assert d.recon_matches and d.picture.recon == c.picture.recon
    _, _, data_off = encode(weights, replace(params, intra_prediction=ToolMode.OFF), frames=4, seed=5)
    headers = [BitstreamReader(io.BytesIO(d)).header for d in (data, data_off)]
    assert [h.version for h in headers] == [(2, 8), (2, 7)]
    assert [bool(h.tools & Tools.INTRA_PREDICTION) for h in headers] == [True, False]


def test_a_predicted_frame_read_without_its_modes_is_not_the_encoders():
    """The header's bit is what tells a decoder the mode map is there: read with it, the intra
    record gives the encoder's picture; read as unpredicted, it is refused as damaged or gives
    another picture."""
    weights = make_weights(4)
    params = CodingParams(qp=30, filter=ToolMode.OFF, enhance=ToolMode.OFF, sample_offsets=ToolMode.OFF)
    _, coded, _ = encode(weights, params, frames=1)
    model, tables, record = weights.model, weights.model.probability_tables(), coded[0].record
    width, height = padded_size(WIDTH, HEIGHT)
    args = (record.substreams[0], (1, 6, height // 2, width // 2), record.qp, tables, torch.zeros(1))
    has_shifts = bool(record.flags & FrameFlags.TABLE_SHIFTS)

    def picture(x_hat: torch.Tensor) -> Frame:
        return tensor_to_frame(x_hat, WIDTH, HEIGHT)

    decoded = model.intra.decode(*args, has_shifts, prediction=ip.BLOCK_MODES)  # as 2.16 codes it
    assert picture(decoded.x_hat) == coded[0].picture.recon
    try:
        plain = model.intra.decode(*args, has_shifts)
    except BitstreamError:
        return
    assert picture(plain.x_hat) != coded[0].picture.recon


@pytest.mark.parametrize("mode_set", MODE_SETS)
def test_the_search_reconstructs_as_the_decoder_does(mode_set):
    """The closed loop's own reconstruction of every block is what the decoder builds from the
    decided levels and modes (exact while the transform works block by block, as released). In
    float64: the search synthesises block by block and the decoder the whole picture, and in
    float32 the two matrix products may round a sum differently on another CPU (seen on an Intel
    Xeon), which flips a 1/64 level; the encoder's reference is the decoder's own (IntraCoder.encode)."""
    weights = make_weights()
    model, tables = weights.model.double(), weights.model.probability_tables()
    x = frame_to_tensor(edges(64, 48)[0]).double()
    for qp in (12, 30, 45):
        d = decide_modes(x, model.intra.transform, model.intra.latent, qp, tables, mode_set)
        y_hat = model.intra.latent.dequantize(d.levels, qp, x)
        fine = to_fine(model.intra.transform.synthesis(y_hat))
        assert torch.equal(d.fine, ip.reconstruct(fine, d.modes, mode_set))


@pytest.mark.parametrize("mode_set", MODE_SETS)
def test_the_second_search_prices_levels_in_the_contexts_of_the_first(monkeypatch, mode_set):
    """decide_modes searches twice; the second search's context buckets are the ones the latent
    coder gives the first search's levels when it codes them (encode_decided)."""
    weights = make_weights()
    model, tables = weights.model, weights.model.probability_tables()
    latent, qp = model.intra.latent, 30
    x = frame_to_tensor(edges(64, 48)[0])
    searches = []
    original = intra_search.search_modes

    def spy(x, quantise, *args, **kwargs):
        searches.append(quantise.buckets.copy())
        decision = original(x, quantise, *args, **kwargs)
        searches.append(decision)
        return decision

    monkeypatch.setattr(intra_search, "search_modes", spy)
    decided = decide_modes(x, model.intra.transform, latent, qp, tables, mode_set)
    assert len(searches) == 2 * intra_search.SEARCH_PASSES == 4 and decided is searches[3]
    first = searches[1]
    coded = latent.encode_decided(first.scaled, first.levels, qp, tables, x, med_dc=not mode_set.pixel_dc)
    assert np.array_equal(searches[2], coded.buckets)
    assert not np.array_equal(searches[0], searches[2])  # residuals' contexts are not the frame's


@pytest.mark.parametrize("mode_set", [ip.SHAPES, ip.BLOCK_MODES])
@pytest.mark.parametrize(("width", "height"), [(16, 16), (16, 64), (80, 16)])
def test_frames_one_macroblock_tall_or_wide_round_trip(width, height, mode_set):
    weights = make_weights()
    model, tables = weights.model, weights.model.probability_tables()
    x = frame_to_tensor(edges(width, height)[0])
    out = model.intra.encode(x, 28, tables, shifts_allowed=True, prediction=mode_set)
    assert out.modes.shape == (height // (8 * mode_set.side), width // (8 * mode_set.side))
    has_shifts = out.latent.shifts is not None
    back = model.intra.decode(out.latent.stream, x.shape, 28, tables, x, has_shifts, prediction=mode_set)
    assert np.array_equal(back.modes, out.modes) and torch.equal(back.x_hat, out.x_hat)


@settings(max_examples=60, deadline=None)
@given(
    st.binary(min_size=4, max_size=64).filter(lambda b: len(b) % 4 == 0),
    st.sampled_from([ip.SHAPES, ip.BLOCK_MODES]),
)
def test_a_garbage_mode_map_reads_as_modes_or_is_refused(data, mode_set):
    tables = ProbabilityTables(*build_tables())
    try:
        modes = ip.read_modes(SymbolDecoder(tables, data), (3, 5), mode_set)
    except BitstreamError:
        return
    assert modes.shape == (3, 5) and modes.min() >= 0 and modes.max() < mode_set.count


@pytest.mark.parametrize(
    ("params", "allowed"),
    [
        (CodingParams(), True),
        (CodingParams(intra_prediction=ToolMode.OFF), False),
        (CodingParams(intra_period=1), True),
    ],
)
def test_header_allows_intra_prediction_unless_it_is_off(params, allowed):
    params = replace(params, skip_edges=ToolMode.OFF)  # (a 2.9 tool)
    header = header_for(make_weights(), params, VideoInfo(64, 48, Fraction(25), 6))
    assert bool(header.tools & Tools.INTRA_PREDICTION) == allowed == intra_prediction_possible(params)
    assert (header.version == (2, 8)) == allowed


def test_intra_prediction_cannot_be_forced_on():
    with pytest.raises(InputError, match="--intra-prediction is auto or off"):
        CodingParams(intra_prediction=ToolMode.ON)


def test_predicted_intra_frames_pass_the_table_shift_permission(monkeypatch):
    asked = []
    original = LatentCodec.encode_decided

    def spy(self, *args, **kwargs):
        bound = inspect.signature(original).bind(self, *args, **kwargs)
        bound.apply_defaults()
        asked.append(bound.arguments["shifts_allowed"])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(LatentCodec, "encode_decided", spy)
    params = CodingParams(qp=30, filter=ToolMode.OFF, enhance=ToolMode.OFF)
    encode(make_weights(4), params, frames=1)
    encode(make_weights(4), replace(params, table_shifts=ToolMode.OFF), frames=1)
    assert asked == [True, False]


def test_the_spec_example_of_a_mode_map():
    """bitstream_spec.md 5.4.4: the 2 x 3 map, group by group, flags and probabilities."""
    groups = []

    class Recorder:
        def add_flags(self, flags, probabilities):
            groups.append((np.asarray(flags, dtype=int).tolist(), np.asarray(probabilities).tolist()))

    ip.write_modes(Recorder(), np.array([[2, 2, 0], [2, 3, 1]]))
    assert groups == [
        ([0, 0, 1], [169, 169, 169]),
        ([1, 1], [97, 97]),
        ([0, 0], [228, 228]),
        ([1, 0, 0], [136, 136, 103]),
        ([1, 0], [189, 97]),
        ([1], [31]),
    ]
