"""Intra blocks in P frames (bitstream 2.13, with the neighbours' levels 2.19; models.intra_blocks):
the map's coding, the decoder's reconstruction rule, the encoder's choice and the versions they
need."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from tests.test_codec import HEIGHT, WIDTH, decode, encode_frames, make_weights

from nvcodec.bitstream import BitstreamReader, FrameFlags, FrameType
from nvcodec.codec.frame_loop import motion_block
from nvcodec.codec.schedule import CodingParams, ToolMode
from nvcodec.entropy.coder import SymbolDecoder, SymbolEncoder
from nvcodec.errors import InputError
from nvcodec.frame import Frame
from nvcodec.models import intra_blocks
from nvcodec.models.compensation import Prediction
from nvcodec.models.intra_prediction import (
    NEIGHBOUR_LEVELS,
    SHAPES,
    block_view,
    macroblock_grid,
    neighbours,
    predictions,
    reconstruct,
)
from nvcodec.models.layout import FINE_PEAK, block_means, padded_size, to_planes
from nvcodec.models.motion import block_grid
from nvcodec.weights import Weights

TABLES = make_weights().model.probability_tables()


def maps(count: int) -> st.SearchStrategy[np.ndarray]:
    """Mode maps of 1-6 by 1-9 macroblocks, mostly none, the others of modes 1..count - 1."""
    modes = st.sampled_from([0, 0, 0, *range(1, count)])
    return st.integers(1, 6).flatmap(
        lambda h: st.integers(1, 9).flatmap(lambda w: arrays(np.int64, (h, w), elements=modes))
    )


def _round_trip(modes: np.ndarray, neighbour_levels: bool) -> np.ndarray:
    """The map written and read back."""
    encoder = SymbolEncoder(TABLES)
    intra_blocks.write_map(encoder, modes, neighbour_levels)
    data = encoder.finish()
    decoder = SymbolDecoder(TABLES, data)
    read = intra_blocks.read_map(decoder, modes.shape, neighbour_levels)
    decoder.finish()
    return read


@settings(deadline=None, max_examples=150)
@given(maps(4))
def test_maps_of_the_shapes_round_trip(modes: np.ndarray) -> None:
    assert np.array_equal(_round_trip(modes, False), modes)


@settings(deadline=None, max_examples=150)
@given(maps(8))
def test_maps_with_the_neighbours_levels_round_trip(modes: np.ndarray) -> None:
    assert np.array_equal(_round_trip(modes, True), modes)


def test_a_frame_without_intra_blocks_codes_one_flag() -> None:
    for neighbour_levels in (False, True):
        assert not _round_trip(np.zeros((40, 60), dtype=np.int64), neighbour_levels).any()
        assert _flags(np.zeros((40, 60), dtype=np.int64), neighbour_levels) == [
            (False, intra_blocks.ANY_PROBABILITY)
        ]


class _Flags:
    """Stands in for a SymbolEncoder: keeps the (flag, probability) pairs it is given."""

    def __init__(self) -> None:
        self.coded: list[tuple[bool, int]] = []

    def add_flags(self, flags: np.ndarray, probabilities: np.ndarray) -> None:
        self.coded += list(zip(np.asarray(flags, dtype=bool).tolist(), np.asarray(probabilities).tolist()))


def _flags(modes: np.ndarray, neighbour_levels: bool) -> list[tuple[bool, int]]:
    recorder = _Flags()
    intra_blocks.write_map(recorder, modes, neighbour_levels)
    return recorder.coded


def test_the_levelled_flags_are_coded_only_from_2_19() -> None:
    """A map of shapes codes the same flags in both syntaxes, but from 2.19 one 'levelled' flag
    (0) per macroblock with a mode before the planar flags; the same macroblocks with the
    neighbours' levels code that flag 1, then a DC flag each, and no planar flag where DC."""
    modes = np.zeros((8, 12), dtype=np.int64)
    modes[::2, ::2] = 1 + np.arange(24).reshape(4, 6) % 3  # 24 macroblocks with a shape, 1-3
    shapes, levelled = _flags(modes, False), _flags(modes, True)
    head = 1 + modes.size  # the 'any' flag and the map
    assert levelled[:head] == shapes[:head]
    assert levelled[head : head + 24] == [(False, intra_blocks.LEVELLED_PROBABILITY)] * 24
    assert levelled[head + 24 :] == shapes[head:]
    modes[0, :4] = (4, 0, 5, 0)  # the first macroblock DC, the second planar, both levelled
    moved = _flags(modes, True)
    assert moved[head : head + 2] == [(True, intra_blocks.LEVELLED_PROBABILITY)] * 2
    dc = moved[head + 24 : head + 26]
    assert dc == [(True, intra_blocks.DC_PROBABILITY), (False, intra_blocks.DC_PROBABILITY)]
    planar = [f for f in moved[head + 26 :] if f[1] == intra_blocks.PLANAR_PROBABILITY]
    assert len(planar) == 23 and planar[0] == (True, intra_blocks.PLANAR_PROBABILITY)


@pytest.mark.parametrize("neighbour_levels", [False, True])
def test_mode_bits_price_the_flags_the_map_codes(neighbour_levels: bool) -> None:
    modes = np.array([[0, 1, 0], [2, 0, 7 if neighbour_levels else 3]])
    at = (np.array([1, 1]), np.array([0, 1]))
    bits = intra_blocks.mode_bits(modes, *at, neighbour_levels)
    assert len(bits) == (8 if neighbour_levels else 4)
    above = 1 + 0  # (1, 0): above-left outside, above 0, above-right 1; (1, 1): 0, 1, 0
    p = np.asarray(intra_blocks.MODE_PROBABILITIES)[[above, 1]] / 256
    levelled = -np.log2(intra_blocks.LEVELLED_PROBABILITY / 256) if neighbour_levels else 0
    shaped = -np.log2(p) - (np.log2(1 - intra_blocks.LEVELLED_PROBABILITY / 256) if neighbour_levels else 0)
    assert np.allclose(bits[0], -np.log2(1 - p))
    assert np.allclose(bits[1], shaped - np.log2(intra_blocks.PLANAR_PROBABILITY / 256))
    assert np.allclose(bits[2], bits[3]) and (bits[2] > bits[0]).all()
    if neighbour_levels:  # DC has no planar flag; planar, vertical, horizontal the shapes' flags
        dc = -np.log2(intra_blocks.DC_PROBABILITY / 256)
        assert np.allclose(bits[4], -np.log2(p) + levelled + dc)
        not_dc = -np.log2(1 - intra_blocks.DC_PROBABILITY / 256)
        assert np.allclose(bits[5:] - (-np.log2(p) + levelled + not_dc), bits[1:4] - shaped)


def _picture(seed: int, h: int = 48, w: int = 64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, FINE_PEAK + 1, (1, 6, h // 2, w // 2), generator=g, dtype=torch.int32)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_the_decoder_adds_each_shape_from_the_final_neighbours(seed: int) -> None:
    """Every block of a macroblock with a mode 1-3 is clip(its prediction's mean + its residual +
    the mode's shape from the row above and the column left of it in the output itself); of a
    mode 4-7 clip(its residual + pixel DC's mode 0-3 from those neighbours, mean kept); every
    other block is clip(prediction + residual)."""
    model = make_weights().model.inter
    prediction = Prediction.exact(_picture(seed), torch.float32)
    y_hat = torch.randn(1, 96, 6, 8, generator=torch.Generator().manual_seed(seed + 10)) * 0.05
    modes = np.random.default_rng(seed).integers(0, 8, size=(3, 4))
    out = model._unfiltered(y_hat, prediction, modes)
    plain = model._unfiltered(y_hat, prediction, None)
    residual = plain - prediction.fine
    means = block_means(prediction.fine, 8)
    for plane, n in zip(range(3), (8, 4, 4)):
        got, res, mean, base = (
            block_view(to_planes(t.long())[plane].numpy(), n) for t in (out, residual, means, plain)
        )
        for i in range(got.shape[0]):
            for j in range(got.shape[1]):
                mode = modes[i // 2, j // 2]
                if mode == 0:
                    assert np.array_equal(got[i, j], np.clip(base[i, j], 0, FINE_PEAK))
                    continue
                top, left, _ = neighbours(got, np.array([i]), np.array([j]))
                if mode < 4:
                    want = mean[i, j, 0] + res[i, j, 0] + predictions(top, left)[mode, 0]
                else:
                    want = res[i, j, 0] + predictions(top, left, pixel_dc=True)[mode - 4, 0]
                assert np.array_equal(got[i, j, 0], np.clip(want, 0, FINE_PEAK))


@pytest.mark.parametrize("seed", [5, 6])
def test_modes_0_to_3_reconstruct_as_before_2_19(seed: int) -> None:
    """A 2.13-2.18 map (modes 0-3) is rebuilt by 2.19's mode set exactly as by the shapes alone:
    older streams decode as they did."""
    prediction = Prediction.exact(_picture(seed), torch.float32)
    residual = _picture(seed + 1) - FINE_PEAK // 2
    modes = np.random.default_rng(seed).integers(0, 4, size=(3, 4))
    levels = intra_blocks.levels_of(prediction.fine, modes) + residual
    shapes = reconstruct(levels, modes, SHAPES)
    assert torch.equal(reconstruct(levels, modes, NEIGHBOUR_LEVELS), shapes)
    assert not torch.equal(shapes, torch.clamp(prediction.fine + residual, 0, FINE_PEAK))  # the modes predict


def test_a_map_without_modes_reconstructs_as_the_motion_alone() -> None:
    model = make_weights().model.inter
    prediction = Prediction.exact(_picture(3), torch.float32)
    y_hat = torch.randn(1, 96, 6, 8, generator=torch.Generator().manual_seed(4))
    none = np.zeros((3, 4), dtype=np.int64)
    assert torch.equal(model._unfiltered(y_hat, prediction, none), model._unfiltered(y_hat, prediction, None))


def _stripes(frames: int) -> list[Frame]:
    """A grey frame, then vertical stripes that motion cannot find in it but the row above of
    every block predicts."""
    rng = np.random.default_rng(7)
    grey = np.full((HEIGHT, WIDTH), 128, np.uint8)
    chroma = np.full(((HEIGHT + 1) // 2, (WIDTH + 1) // 2), 128, np.uint8)
    out = [Frame(grey, chroma, chroma)]
    for _ in range(frames - 1):
        row = rng.integers(40, 216, WIDTH).astype(np.uint8)
        out.append(Frame(np.repeat(row[None], HEIGHT, 0), chroma, chroma))
    return out


def _modes(weights: Weights, data: bytes) -> tuple[tuple[int, int], list[np.ndarray | None]]:
    """The stream's version and each P frame's modes, read from its motion substream."""
    reader = BitstreamReader(io.BytesIO(data))
    width, height = padded_size(WIDTH, HEIGHT)
    shape = (1, 6, height // 2, width // 2)
    out = []
    for record in reader:
        if record.frame_type == FrameType.INTER:
            block = motion_block(record.flags)
            field = weights.model.inter.motion.decode(
                record.substreams[0],
                block_grid(shape, block),
                record.qp,
                TABLES,
                block=block,
                has_flat=bool(record.flags & FrameFlags.FLAT_BLOCKS),
                has_split=bool(record.flags & FrameFlags.SPLIT_BLOCKS),
                has_offsets=True,
                has_half_pel=reader.header.half_pel,
                macroblocks=macroblock_grid(shape) if reader.header.intra_blocks else None,
                has_neighbour_levels=reader.header.neighbour_levels,
            )
            out.append(field.modes)
    return reader.header.version, out


def _p_frame_bytes(coded: list) -> int:
    return sum(c.bytes for c in coded[1:])


def test_stripes_take_intra_blocks_and_decode_exactly() -> None:
    """The stripes' levels are the row above's, not the grey reference's: from 2.19 mostly
    vertical with the neighbours' levels (mode 6); with --neighbour-levels off, 2.18, the vertical
    shape on the motion's level (mode 2), for more bytes; without intra blocks, more still."""
    weights = make_weights()
    source = _stripes(3)
    coded, data = encode_frames(weights, CodingParams(qp=30), source)
    version, modes = _modes(weights, data)
    assert version == (2, 19) and all((m == 6).mean() > 0.5 for m in modes)
    for c, d in zip(coded, decode(weights, data)):
        assert d.recon_matches and d.picture.recon == c.picture.recon
    shapes, shapes_data = encode_frames(weights, CodingParams(qp=30, neighbour_levels=ToolMode.OFF), source)
    version, modes = _modes(weights, shapes_data)
    assert version == (2, 18) and all((m == 2).mean() > 0.5 for m in modes)
    for c, d in zip(shapes, decode(weights, shapes_data)):
        assert d.recon_matches and d.picture.recon == c.picture.recon
    off, off_data = encode_frames(weights, CodingParams(qp=30, intra_blocks=ToolMode.OFF), source)
    assert _modes(weights, off_data) == ((2, 12), [None, None])
    assert _p_frame_bytes(coded) < _p_frame_bytes(shapes) < _p_frame_bytes(off)


@pytest.mark.parametrize(
    ("tool", "flag"), [("intra_blocks", "--intra-blocks"), ("neighbour_levels", "--neighbour-levels")]
)
def test_intra_blocks_on_is_refused(tool: str, flag: str) -> None:
    with pytest.raises(InputError, match=f"{flag} is auto or off"):
        CodingParams(**{tool: ToolMode.ON})
