"""Coding a list of frames in memory: real bitstream sizes and the PSNR of the decoded pictures."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

from nvcodec.codec.encoder import Encoder
from nvcodec.codec.schedule import CodingParams
from nvcodec.frame import Frame, VideoInfo
from nvcodec.metrics import frame_psnr
from nvcodec.stats import FrameReport, Summary
from nvcodec.weights import Weights


def code_sequence(
    weights: Weights, frames: Sequence[Frame], params: CodingParams, fps: Fraction = Fraction(25)
) -> Summary:
    """Encode the frames; sizes count the header and every record, PSNR is of what nvdec outputs."""
    first = frames[0]
    encoder = Encoder(weights, params, VideoInfo(first.width, first.height, fps, len(frames)))
    summary = Summary(first.width, first.height, fps, header_bytes=len(encoder.header.pack()))
    for frame in frames:
        coded = encoder.encode(frame)
        summary.frames.append(
            FrameReport.of(coded.plan.index, coded.record, frame_psnr(frame, coded.picture.output))
        )
    return summary
