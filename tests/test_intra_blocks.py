"""Intra blocks in P frames (bitstream 2.13, models.intra_blocks): the map's coding, the
decoder's reconstruction rule, the encoder's choice and the version they need."""

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
from nvcodec.models.intra_prediction import block_view, macroblock_grid, neighbours, predictions
from nvcodec.models.layout import FINE_PEAK, block_means, padded_size, to_planes
from nvcodec.models.motion import block_grid
from nvcodec.weights import Weights

TABLES = make_weights().model.probability_tables()

maps = st.integers(1, 6).flatmap(
    lambda h: st.integers(1, 9).flatmap(
        lambda w: arrays(np.int64, (h, w), elements=st.sampled_from([0, 0, 0, 1, 2, 3]))
    )
)


@settings(deadline=None, max_examples=150)
@given(maps)
def test_maps_round_trip(modes: np.ndarray) -> None:
    encoder = SymbolEncoder(TABLES)
    intra_blocks.write_map(encoder, modes)
    decoder = SymbolDecoder(TABLES, encoder.finish())
    assert np.array_equal(intra_blocks.read_map(decoder, modes.shape), modes)
    decoder.finish()


def test_a_frame_without_intra_blocks_codes_one_flag() -> None:
    encoder = SymbolEncoder(TABLES)
    intra_blocks.write_map(encoder, np.zeros((40, 60), dtype=np.int64))
    decoder = SymbolDecoder(TABLES, encoder.finish())
    assert not intra_blocks.read_map(decoder, (40, 60)).any()
    decoder.finish()


def test_mode_bits_price_the_flags_the_map_codes() -> None:
    modes = np.array([[0, 1, 0], [2, 0, 3]])
    bits = intra_blocks.mode_bits(modes, np.array([1, 1]), np.array([0, 1]))
    above = 1 + 0  # (1, 0): above-left outside, above 0, above-right 1; (1, 1): 0, 1, 0
    p = np.asarray(intra_blocks.MODE_PROBABILITIES)[[above, 1]] / 256
    assert np.allclose(bits[0], -np.log2(1 - p))
    assert np.allclose(bits[1], -np.log2(p) - np.log2(intra_blocks.PLANAR_PROBABILITY / 256))
    assert np.allclose(bits[2], bits[3]) and (bits[2] > bits[0]).all()


def _picture(seed: int, h: int = 48, w: int = 64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, FINE_PEAK + 1, (1, 6, h // 2, w // 2), generator=g, dtype=torch.int32)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_decoder_adds_each_shape_from_the_final_neighbours(seed: int) -> None:
    """Every block of a macroblock with a mode is clip(its prediction's mean + its residual +
    the mode's shape from the row above and the column left of it in the output itself); every
    other block is clip(prediction + residual)."""
    model = make_weights().model.inter
    prediction = Prediction.exact(_picture(seed), torch.float32)
    y_hat = torch.randn(1, 96, 6, 8, generator=torch.Generator().manual_seed(seed + 10)) * 0.05
    modes = np.random.default_rng(seed).integers(0, 4, size=(3, 4))
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
                shape = predictions(top, left)[mode, 0]
                assert np.array_equal(
                    got[i, j, 0], np.clip(mean[i, j, 0] + res[i, j, 0] + shape, 0, FINE_PEAK)
                )


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
            )
            out.append(field.modes)
    return reader.header.version, out


def test_stripes_take_intra_blocks_and_decode_exactly() -> None:
    weights = make_weights()
    source = _stripes(3)
    coded, data = encode_frames(weights, CodingParams(qp=30), source)
    version, modes = _modes(weights, data)
    assert version == (2, 18) and all((m == 2).mean() > 0.5 for m in modes)  # mostly vertical
    for c, d in zip(coded, decode(weights, data)):
        assert d.recon_matches and d.picture.recon == c.picture.recon
    off, off_data = encode_frames(weights, CodingParams(qp=30, intra_blocks=ToolMode.OFF), source)
    assert _modes(weights, off_data) == ((2, 12), [None, None])
    assert sum(c.bytes for c in coded[1:]) < sum(c.bytes for c in off[1:])


def test_intra_blocks_on_is_refused() -> None:
    with pytest.raises(InputError, match="--intra-blocks is auto or off"):
        CodingParams(intra_blocks=ToolMode.ON)
