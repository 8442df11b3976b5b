"""Coding a list of frames in memory: real bitstream sizes and the PSNR of the decoded pictures."""

from __future__ import annotations

import io
from collections.abc import Sequence
from fractions import Fraction

import torch

from nvcodec.codec.frame_loop import CPU
from nvcodec.codec.schedule import CodingParams
from nvcodec.codec.segments import SegmentedEncoder
from nvcodec.frame import Frame, VideoInfo
from nvcodec.pipeline import coded_frames, write_coded
from nvcodec.stats import Summary
from nvcodec.weights import Weights


def code_sequence(
    weights: Weights, frames: Sequence[Frame], params: CodingParams, fps: Fraction = Fraction(25)
) -> Summary:
    """Encode the frames (in segments of params.intra_period frames); sizes count the header,
    every record and the segment index, PSNR is of what nvdec outputs."""
    first = frames[0]
    info = VideoInfo(first.width, first.height, fps, len(frames))
    encoder = SegmentedEncoder(weights, params, info, CPU, torch.float32)
    return write_coded(coded_frames(encoder, frames, keep_shown=False), encoder.header, params, io.BytesIO())
