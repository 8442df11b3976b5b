"""Prediction offsets (bitstream 2.10): a P frame's motion substream starts with a whole-level offset
per plane, added to its prediction; the coding, the arithmetic, the version it needs, the
encoder's choice on a brightening clip and the round trip through the decoder."""

import io
from dataclasses import replace
from fractions import Fraction

import numpy as np
import pytest
import torch
from tests.test_codec import HEIGHT, WIDTH, decode, encode_frames, make_weights

from nvcodec.bitstream import BitstreamReader
from nvcodec.codec.encoder import header_for, prediction_offsets_possible
from nvcodec.codec.schedule import CodingParams, ToolMode
from nvcodec.entropy.coder import ProbabilityTables, SymbolEncoder
from nvcodec.entropy.tables import build_tables
from nvcodec.errors import BitstreamError, InputError
from nvcodec.frame import Frame, VideoInfo
from nvcodec.models.inter import offset_prediction
from nvcodec.models.layout import FINE_PEAK
from nvcodec.models.motion import OFFSET_TABLE, UNITS, MotionCoder, MotionField, median_prediction
from nvcodec.sample import synthetic_frames

TABLES = ProbabilityTables(*build_tables())
GRID = (3, 4)


def _field(offsets: tuple[int, int, int] | None) -> MotionField:
    """A field with a flat block and a split one, so that the offsets share the substream with
    both maps and the deltas."""
    vectors = np.arange(24, dtype=np.int64).reshape(*GRID, 2) - 12
    flat = np.zeros(GRID, dtype=bool)
    flat[0, 1] = True
    vectors[0, 1] = median_prediction(vectors)[0, 1]  # a flat block's vector is its predictor
    split = np.zeros(GRID, dtype=bool)
    split[2, 3] = True
    deltas = np.zeros((*GRID, UNITS, 2), dtype=np.int64)
    deltas[2, 3] = [[1, -2], [0, 3], [-4, 0], [2, 2]]
    return MotionField(vectors, 16, flat, split, deltas, offsets)


def _read(stream: bytes, has_offsets: bool) -> MotionField:
    return MotionCoder().decode(
        stream,
        GRID,
        32,
        TABLES,
        block=16,
        has_flat=True,
        has_split=True,
        has_offsets=has_offsets,
        has_half_pel=False,
        macroblocks=None,
        has_neighbour_levels=False,
    )


def _same_motion(a: MotionField, b: MotionField) -> bool:
    return all(np.array_equal(getattr(a, k), getattr(b, k)) for k in ("vectors", "flat", "split", "deltas"))


@pytest.mark.parametrize("offsets", [(0, 0, 0), (-3, 1, 255), (255, -255, 0)])
def test_offsets_come_back_with_the_vectors(offsets):
    field = _field(offsets)
    read = _read(MotionCoder().encode(field, 32, TABLES), has_offsets=True)
    assert read.offsets == offsets and _same_motion(read, field)


def test_a_stream_without_offsets_reads_none():
    field = _field(None)
    read = _read(MotionCoder().encode(field, 32, TABLES), has_offsets=False)
    assert read.offsets is None and _same_motion(read, field)


def test_an_offset_beyond_255_levels_is_a_damaged_stream():
    encoder = SymbolEncoder(TABLES)
    encoder.add(np.array([0, 256, 0]), np.full(3, OFFSET_TABLE))
    with pytest.raises(BitstreamError, match="prediction offset 256 outside -255..255"):
        _read(encoder.finish(), has_offsets=True)


def test_an_offset_adds_whole_levels_to_its_plane_and_clips():
    fine = torch.tensor([1000, 0, FINE_PEAK - 10, 500, 640, 64], dtype=torch.int32).view(1, 6, 1, 1)
    shifted = offset_prediction(fine, (2, 0, -1)).flatten().tolist()
    assert shifted == [1128, 128, FINE_PEAK, 628, 640, 0]  # Y +2 levels (clipped at the peak), U as is, V -1


@pytest.mark.parametrize(
    ("params", "version"),
    [
        # 2.11 adds adaptive tables, 2.12 compact records, 2.13 intra blocks, 2.14 deep references,
        # 2.15 intra frames' DC predicted from pixels, 2.16 a mode per 8x8 block, 2.17 sample offsets,
        # 2.18 half-pel frames, 2.19 neighbour levels
        (CodingParams(), (2, 19)),
        (CodingParams(adaptive_tables=ToolMode.OFF), (2, 10)),
        (CodingParams(prediction_offsets=ToolMode.OFF), (2, 9)),
        (CodingParams(skip_edges=ToolMode.OFF), (2, 8)),  # 2.10 would skip edges: no offsets either
        (CodingParams(intra_period=1), (2, 8)),  # no P frames
    ],
)
def test_header_has_offsets_where_a_stream_has_p_frames(params, version):
    header = header_for(make_weights(), params, VideoInfo(64, 48, Fraction(25), 6))
    assert header.prediction_offsets == (version >= (2, 10)) == prediction_offsets_possible(params)
    assert header.version == version


def test_on_is_refused():
    with pytest.raises(InputError, match="--prediction-offsets is auto or off"):
        CodingParams(prediction_offsets=ToolMode.ON)


def _brightening(frames: int) -> list[Frame]:
    """The synthetic clip, its luma 6 levels brighter and its U 3 levels lower every frame."""
    out = []
    for i, f in enumerate(synthetic_frames(WIDTH, HEIGHT, frames, seed=5)):
        y = np.clip(f.y.astype(int) + 6 * i, 0, 255).astype(np.uint8)
        u = np.clip(f.u.astype(int) - 3 * i, 0, 255).astype(np.uint8)
        out.append(Frame(y, u, f.v))
    return out


@pytest.mark.parametrize("in_loop_filter", [ToolMode.OFF, ToolMode.ON])
def test_a_brightening_clip_decodes_to_the_encoders_pictures_with_its_offsets(monkeypatch, in_loop_filter):
    """The encoder follows the change with its offsets (the luma's up, U's down), and the decoder,
    reading them, rebuilds the encoder's pictures, with the in-loop filter on the offset
    prediction too; coded without them the P frames differ."""
    weights = make_weights(4, refiners=True)
    # the intra frames of 2.9 and (without pixel DC) 2.14 code alike
    params = CodingParams(qp=37, filter=in_loop_filter, enhance=ToolMode.OFF, pixel_dc=ToolMode.OFF)
    source = _brightening(4)
    read: list[tuple[int, int, int] | None] = []
    decode_motion = MotionCoder.decode

    def spy(self, *args, **kwargs) -> MotionField:
        field = decode_motion(self, *args, **kwargs)
        read.append(field.offsets)
        return field

    monkeypatch.setattr(MotionCoder, "decode", spy)
    pictures = []
    for mode in (ToolMode.AUTO, ToolMode.OFF):
        read.clear()
        coded, data = encode_frames(weights, replace(params, prediction_offsets=mode), source)
        assert BitstreamReader(io.BytesIO(data)).header.prediction_offsets == (mode == ToolMode.AUTO)
        for c, d in zip(coded, decode(weights, data)):
            assert d.recon_matches and d.picture.recon == c.picture.recon
        pictures.append([c.picture.recon for c in coded])
        if mode == ToolMode.AUTO:
            assert len(read) == 3 and all(y >= 3 and u <= -1 for y, u, _ in read)
        else:
            assert read == [None] * 3
    assert pictures[0][0] == pictures[1][0]  # the intra frame has no offsets
    assert any(a != b for a, b in zip(pictures[0][1:], pictures[1][1:]))
