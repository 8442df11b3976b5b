"""Closed segments: where a video is cut into independently coded pieces, and coding them.

A segment starts with an intra frame and carries nothing over from the segment before it, in
the bitstream (the decoder's state is rebuilt by the intra frame) and in the encoder (rate
control, the filter decisions and the qp schedule start afresh). So a segment codes to the same
bytes whichever process codes it, which is what lets `--jobs` and `--cluster` split the work and
`nvdec --start` begin anywhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from fractions import Fraction

import torch

from nvcodec.bitstream import Header
from nvcodec.codec.encoder import (
    EncodedFrame,
    Encoder,
    adaptive_tables_possible,
    block_modes_possible,
    compact_records_possible,
    deep_references_possible,
    half_pel_possible,
    header_for,
    intra_blocks_possible,
    neighbour_levels_possible,
    pixel_dc_possible,
    prediction_offsets_possible,
    sample_offsets_possible,
    skip_edges_possible,
)
from nvcodec.codec.schedule import CodingParams, ToolMode
from nvcodec.errors import InputError
from nvcodec.frame import Frame, VideoInfo
from nvcodec.weights import Weights

# With no choice made: an input known to last at most this long stays one segment (today's
# streams, and every benchmark clip); a longer one, or one of unknown length, gets segments of
# AUTO_SEGMENT_SECONDS, the keyframe interval of x264's default (250 frames at 25 fps).
AUTO_SINGLE_MAX_SECONDS = 20
AUTO_SEGMENT_SECONDS = 10
MAX_SEGMENT_FRAMES = 1_000_000


@dataclass(frozen=True)
class SegmentLength:
    """What the user asked for: seconds, frames, or neither (the automatic choice)."""

    seconds: Fraction | None = None
    frames: int | None = None

    def __post_init__(self) -> None:
        if self.seconds is not None and self.frames is not None:
            raise InputError("--segment and --segment-frames exclude each other")
        if self.seconds is not None and self.seconds <= 0:
            raise InputError("--segment must be a positive number of seconds")
        if self.frames is not None and not 1 <= self.frames <= MAX_SEGMENT_FRAMES:
            raise InputError(f"--segment-frames must be in 1..{MAX_SEGMENT_FRAMES}")

    def frames_at(self, fps: Fraction, total: int | None) -> int:
        """Frames per segment for a video of this rate and length (None: unknown); -1 for a
        single segment (the header's intra_period)."""
        if self.frames is not None:
            frames = self.frames
        elif self.seconds is not None:
            frames = max(1, round(self.seconds * fps))
        elif total is not None and total <= AUTO_SINGLE_MAX_SECONDS * fps:
            return -1
        else:
            frames = max(1, round(AUTO_SEGMENT_SECONDS * fps))
        frames = min(frames, MAX_SEGMENT_FRAMES)
        return -1 if total is not None and frames >= total else frames


def _segment_encoder(
    weights: Weights,
    params: CodingParams,
    info: VideoInfo,
    first: int,
    device: torch.device,
    dtype: torch.dtype,
    length_hint: int | None = None,
) -> Encoder:
    """A fresh encoder for the segment starting at frame `first` of a video whose segments are
    params.intra_period frames long: it codes that segment alone, as a video of its own."""
    period, total = params.intra_period, info.frame_count
    count = None if total is None else total - first
    if period > 0:
        count = period if count is None else min(period, count)
    local = replace(info, frame_count=count)
    # the video's header, not the segment's, says whether P frames skip edges, code prediction
    # offsets and adapt their tables, whether records are compact, whether P frames may have
    # intra blocks, whether references are kept in 10-bit levels, whether intra frames predict
    # their DCs from pixels and give each block a mode, whether frames code sample offsets,
    # whether P frames flag half-pel vectors and whether their intra blocks may take their
    # neighbours' levels (no record bit does)
    decided = dict(
        skip_edges=params.skip_edges if skip_edges_possible(params) else ToolMode.OFF,
        prediction_offsets=params.prediction_offsets if prediction_offsets_possible(params) else ToolMode.OFF,
        adaptive_tables=params.adaptive_tables if adaptive_tables_possible(params) else ToolMode.OFF,
        compact_records=params.compact_records if compact_records_possible(params) else ToolMode.OFF,
        intra_blocks=params.intra_blocks if intra_blocks_possible(params) else ToolMode.OFF,
        deep_references=params.deep_references if deep_references_possible(params) else ToolMode.OFF,
        pixel_dc=params.pixel_dc if pixel_dc_possible(params) else ToolMode.OFF,
        block_modes=params.block_modes if block_modes_possible(params) else ToolMode.OFF,
        sample_offsets=params.sample_offsets if sample_offsets_possible(params) else ToolMode.OFF,
        half_pel=params.half_pel if half_pel_possible(params) else ToolMode.OFF,
        neighbour_levels=params.neighbour_levels if neighbour_levels_possible(params) else ToolMode.OFF,
    )
    return Encoder(
        weights,
        replace(params, intra_period=-1, **decided),
        local,
        device,
        dtype,
        length_hint,
        header_counted=first == 0,
    )


def segmented_header(weights: Weights, params: CodingParams, info: VideoInfo) -> Header:
    """The header of a video cut into segments of params.intra_period frames: with a segment index
    (version 2.2) unless it is known to be one segment."""
    total, period = info.frame_count, params.intra_period
    return header_for(weights, params, info, indexed=period > 0 and (total is None or total > period))


class SegmentedEncoder:
    """Feed frames in display order from frame `first` (a segment start: a worker coding one
    segment starts there); a new segment encoder takes over at each segment start."""

    def __init__(
        self,
        weights: Weights,
        params: CodingParams,
        info: VideoInfo,
        device: torch.device,
        dtype: torch.dtype,
        length_hint: int | None = None,
        first: int = 0,
    ) -> None:
        self.weights, self.params, self.info = weights, params, info
        self.device, self.dtype, self.length_hint = device, dtype, length_hint
        self.header = segmented_header(weights, params, info)
        self.index = first
        self._segment: Encoder | None = None

    def encode(self, frame: Frame, following: int | None = None) -> EncodedFrame:
        """Code the next frame (`following`: as Encoder.encode's)."""
        period = self.params.intra_period
        if self._segment is None or (period > 0 and self.index % period == 0):
            self._segment = _segment_encoder(
                self.weights, self.params, self.info, self.index, self.device, self.dtype, self.length_hint
            )
        coded = self._segment.encode(frame, following)
        coded = replace(coded, plan=replace(coded.plan, index=self.index))
        self.index += 1
        return coded


def split_segments(frames: Iterable[Frame], length: int) -> Iterator[tuple[int, list[Frame]]]:
    """(first frame number, frames) for each segment of `length` frames (-1: all in one)."""
    batch: list[Frame] = []
    first = 0
    for frame in frames:
        batch.append(frame)
        if len(batch) == length:
            yield first, batch
            first, batch = first + length, []
    if batch:
        yield first, batch
