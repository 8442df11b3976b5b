"""The intra chroma offset (bitstream 2.9): the header field, the encoder's choice for streams of
intra frames only, segments coding as their header says, and the decoder using the field."""

import io
from dataclasses import replace
from fractions import Fraction

import pytest
import torch
from tests.test_codec import HEIGHT, WIDTH, decode, encode, make_weights

from nvcodec.bitstream import BitstreamReader, BitstreamWriter, Header
from nvcodec.codec.encoder import intra_chroma_offset
from nvcodec.codec.schedule import STILL_CHROMA_OFFSET, CodingParams
from nvcodec.errors import BitstreamError, InputError
from nvcodec.evaluation import code_sequence
from nvcodec.frame import VideoInfo
from nvcodec.sample import synthetic_frames

FIELDS = dict(width=64, height=48, fps_num=25, fps_den=1, frame_count=1, model_name="tiny",
              weights_hash=bytes(8), intra_period=-1, refresh_period=32, tools=0, qp_offsets=(0, 3))  # fmt: skip


@pytest.mark.parametrize("sar", [None, (4, 3)])
@pytest.mark.parametrize("offset", [-7, 9, 63])
def test_the_offset_round_trips_and_needs_2_9(offset, sar):
    header = Header(**FIELDS, sar=sar, intra_chroma_offset=offset)
    assert header.version == (2, 9)
    back = Header.unpack(header.pack())
    assert back.intra_chroma_offset == offset and back.sar == sar
    with pytest.raises(BitstreamError, match="intra chroma offset needs version 2.9"):
        Header(**FIELDS, intra_chroma_offset=offset, version=(2, 8))


def test_without_an_offset_the_header_stays_as_old_decoders_read_it():
    """Offset 0: the lowest version that expresses the rest (2.0 here), no byte added; a 2.9
    header written with offset 0 carries the byte, and reads back as 0."""
    old = Header(**FIELDS)
    assert old.version == (2, 0) and Header.unpack(old.pack()).intra_chroma_offset == 0
    new = Header(**FIELDS, version=(2, 9))
    assert len(new.pack()) == len(old.pack()) + 1 and Header.unpack(new.pack()) == new


def test_offsets_outside_the_qp_range_are_refused():
    with pytest.raises(BitstreamError, match="intra chroma offset 64 outside -63..63"):
        Header(**FIELDS, intra_chroma_offset=64)
    with pytest.raises(InputError, match="--intra-chroma-offset"):
        CodingParams(intra_chroma_offset=-64)


@pytest.mark.parametrize(
    ("params", "frames", "expected"),
    [
        (CodingParams(), 1, STILL_CHROMA_OFFSET),  # a still image
        (CodingParams(intra_period=1), 10, STILL_CHROMA_OFFSET),  # intra frames only
        (CodingParams(intra_period=1), None, STILL_CHROMA_OFFSET),
        (CodingParams(), 10, 0),  # P frames predict their chroma from the intra frame's
        (CodingParams(), None, 0),  # unknown length: maybe a video
        (CodingParams(intra_chroma_offset=3), 1, 3),  # asked for
        (CodingParams(intra_chroma_offset=0), 1, 0),
    ],
)
def test_the_encoder_coarsens_chroma_only_where_no_frame_predicts_from_it(params, frames, expected):
    assert intra_chroma_offset(params, VideoInfo(WIDTH, HEIGHT, Fraction(25), frames)) == expected


def test_a_still_decodes_to_the_encoders_picture_and_only_with_its_offset():
    """A one-frame stream: chroma coarser (fewer bytes than with offset 0), the decoder's
    picture exactly the encoder's; the same record under a header claiming offset 0 decodes to
    a different picture, so the field is what the decoder follows."""
    weights = make_weights(2)
    _, coded, data = encode(weights, CodingParams(qp=24), frames=1, seed=3)
    _, coded_plain, _ = encode(weights, CodingParams(qp=24, intra_chroma_offset=0), frames=1, seed=3)
    header = BitstreamReader(io.BytesIO(data)).header
    assert header.intra_chroma_offset == STILL_CHROMA_OFFSET and header.version == (2, 9)
    assert coded[0].bytes < coded_plain[0].bytes
    decoded = decode(weights, data)[0]
    assert decoded.recon_matches and decoded.picture.recon == coded[0].picture.recon
    buf = io.BytesIO()
    writer = BitstreamWriter(buf, replace(header, intra_chroma_offset=0))
    writer.write(coded[0].record)
    wrong = decode(weights, buf.getvalue())[0]
    assert not wrong.recon_matches


def test_a_one_frame_last_segment_codes_as_the_streams_header_says():
    """Segments of 2 frames of a 3-frame video: the last segment is one intra frame, which on
    its own would take the still offset; it codes with the stream's (0), so it decodes exactly."""
    weights = make_weights(1)
    frames = list(synthetic_frames(WIDTH, HEIGHT, 3, seed=4))
    summary = code_sequence(weights, frames, CodingParams(qp=30, intra_period=2))
    assert [f.type for f in summary.frames] == ["I", "P", "I"]
    plain = code_sequence(weights, frames, CodingParams(qp=30, intra_period=2, intra_chroma_offset=0))
    assert summary.total_bytes == plain.total_bytes  # the same stream: nothing coded with 9


def test_the_offset_scales_only_the_chroma_steps():
    weights = make_weights(0)
    codec = weights.model.intra.latent
    like = torch.zeros(1)
    base, coarse = codec.steps(30, like).flatten(), codec.with_chroma_offset(6).steps(30, like).flatten()
    luma = slice(0, 64)
    assert torch.equal(base[luma], coarse[luma])
    assert torch.allclose(coarse[64:], 2 * base[64:])
    assert codec.with_chroma_offset(0) is codec and codec.chroma_offset == 0
