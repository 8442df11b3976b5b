"""Coding a list of frames in memory: real bitstream sizes and the PSNR of the decoded pictures."""

from __future__ import annotations

import io
from collections.abc import Sequence
from fractions import Fraction

import torch

from nvcodec.bitstream import BitstreamWriter
from nvcodec.codec.frame_loop import CPU
from nvcodec.codec.schedule import CodingParams
from nvcodec.codec.segments import SegmentedEncoder
from nvcodec.frame import Frame, VideoInfo
from nvcodec.metrics import frame_psnr
from nvcodec.stats import FrameReport, Summary
from nvcodec.weights import Weights


def code_sequence(
    weights: Weights, frames: Sequence[Frame], params: CodingParams, fps: Fraction = Fraction(25)
) -> Summary:
    """Encode the frames (in segments of params.intra_period frames); sizes count the header,
    every record and the segment index, PSNR is of what nvdec outputs."""
    first = frames[0]
    info = VideoInfo(first.width, first.height, fps, len(frames))
    encoder = SegmentedEncoder(weights, params, info, CPU, torch.float32)
    writer = BitstreamWriter(io.BytesIO(), encoder.header)
    summary = Summary(first.width, first.height, fps, header_bytes=len(encoder.header.pack()))
    for frame in frames:
        coded = encoder.encode(frame)
        writer.write(coded.record)
        summary.frames.append(
            FrameReport.of(coded.plan.index, coded.record, frame_psnr(frame, coded.picture.output))
        )
    summary.index_bytes = writer.finish(len(frames))
    return summary
