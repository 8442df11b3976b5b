"""Coding parameters and the frame plan: which frames are intra, refreshed, and at which qp."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from nvcodec.bitstream import FrameType
from nvcodec.errors import InputError

QP_MAX = 63
DEFAULT_QP = 32
# Hierarchical qp inside a group of 8 P frames: every 8th frame is the best, then every 4th, ...
# Halved from (0, 6, 4, 6, 2, 6, 4, 6) together with INTRA_QP_OFFSET: -4.3% BD-rate on 96 Foreman
# frames, -0.8% on 16 of Cockatoo (a third, (0, 2, 1, 2, 1, 2, 1, 2), gave -2.8% on Foreman).
GROUP_OFFSETS = (0, 3, 2, 3, 1, 3, 2, 3)
# Above the groups, one more level: the finest frame of every second group 3 qp finer (every 16th
# P frame), its quality carrying down the 15 frames that follow. Stop 52 made it every fourth
# group's 4 finer and the others' between them 2 finer, which keeps the same mean over 32 frames
# but makes every second run of 16 frames worse than the one before it (on 96 Foreman frames at
# qp 42, 0.3-0.6 dB): with one level every such run has the same schedule. The 96 Foreman frames,
# qps 22-42: BD-rate -0.01% against those two levels, the last 16 frames' drift below the first
# 16 0.27/0.47/0.72/0.72/0.91 dB instead of 0.37/0.57/0.87/0.82/1.07; Cactus -0.38%, Cockatoo
# +0.09% (`make bench`'s RD part, stop 54).
GROUP_LEVELS = (-3, 0)
DEFAULT_QP_OFFSETS = tuple(o for level in GROUP_LEVELS for o in (level, *GROUP_OFFSETS[1:]))
# Intra frames are coded this much finer than the base qp: x264's I/P quantiser ratio of 1.4 is
# 6 log2(1.4) = 2.9 qp. Every P frame starts from the intra frame, so its quality pays twice.
INTRA_QP_OFFSET = -3


class ToolMode(StrEnum):
    """How the encoder decides a per-frame coding tool."""

    AUTO = "auto"
    ON = "on"
    OFF = "off"


@dataclass(frozen=True)
class RateTarget:
    """What the user asked for: bits per second, the controller, an optional VBV cap."""

    bitrate: float
    controller: str = "model"
    maxrate: float | None = None
    bufsize: float | None = None

    def __post_init__(self) -> None:
        if self.controller not in ("model", "baseline"):
            raise InputError(f"--rc must be model or baseline, got {self.controller!r}")
        if (self.maxrate is None) != (self.bufsize is None):
            raise InputError("--maxrate and --bufsize go together")
        if self.maxrate is not None and self.controller != "model":
            raise InputError("--maxrate/--bufsize need --rc model")
        if self.maxrate is not None and self.maxrate < self.bitrate:
            raise InputError("--maxrate must be at least --bitrate")


def parse_bits(text: str, what: str = "bitrate") -> float:
    """Bits (per second, for a rate) from '800k', '1.5M', '2500000' (k = 10^3, M = 10^6, G = 10^9)."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kKmMgG]?)(?:bps|bit/s|b/s|bits?)?\s*", text)
    if not match:
        raise InputError(f"{text!r} is not a {what} (e.g. 800k, 1.5M or 2500000)")
    value = float(match.group(1)) * {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[match.group(2).lower()]
    if not 1e3 <= value <= 1e10:
        raise InputError(f"{text!r}: a {what} must be between 1k and 10G")
    return value


@dataclass(frozen=True)
class CodingParams:
    """What the user chose for a whole sequence."""

    qp: int = DEFAULT_QP
    intra_period: int = -1  # -1: one intra frame; N > 0: an intra frame every N frames
    refresh_period: int = 32  # 0: never; ConFRE's filter decisions restart at each refresh
    qp_offsets: tuple[int, ...] = DEFAULT_QP_OFFSETS
    filter: ToolMode = ToolMode.AUTO
    enhance: ToolMode = ToolMode.AUTO
    large_blocks: ToolMode = ToolMode.AUTO  # 32x32 motion blocks on P frames
    flat_blocks: ToolMode = ToolMode.AUTO  # P-frame blocks predicted by their mean (auto or off)
    table_shifts: ToolMode = ToolMode.AUTO  # per-frame shifts of the latent's tables (auto or off)
    split_blocks: ToolMode = ToolMode.AUTO  # P-frame blocks split into four vectors (auto or off)
    six_tap: ToolMode = ToolMode.AUTO  # P frames interpolated with the six-tap filters (auto, on or off)
    intra_prediction: ToolMode = ToolMode.AUTO  # intra blocks predicted from their neighbours (auto or off)
    skip_edges: ToolMode = ToolMode.AUTO  # P-frame deblocking leaves copied edges alone (auto or off)
    prediction_offsets: ToolMode = ToolMode.AUTO  # P frames' prediction offset per plane (auto or off)
    adaptive_tables: ToolMode = ToolMode.AUTO  # P frames' latent tables adapt (auto or off)
    compact_records: ToolMode = ToolMode.AUTO  # records with varint lengths (auto: always; or off)
    intra_blocks: ToolMode = ToolMode.AUTO  # P-frame macroblocks may be intra predicted (auto or off)
    deep_references: ToolMode = ToolMode.AUTO  # references kept in 10-bit levels (auto or off)
    pixel_dc: ToolMode = ToolMode.AUTO  # intra frames' block DCs predicted from pixels (auto or off)
    block_modes: ToolMode = ToolMode.AUTO  # intra frames' modes per 8x8 block, eight of them (auto or off)
    sample_offsets: ToolMode = ToolMode.AUTO  # offsets by sample class after deblocking (auto or off)
    half_pel: ToolMode = ToolMode.AUTO  # P frames' vectors in half pixels where cheaper (auto or off)
    neighbour_levels: ToolMode = ToolMode.AUTO  # intra blocks may take their neighbours' levels (auto or off)
    rate: RateTarget | None = None  # a target bitrate: each frame's base qp from rate control

    def __post_init__(self) -> None:
        if not 0 <= self.qp <= QP_MAX:
            raise InputError(f"--qp must be in 0..{QP_MAX}, got {self.qp}")
        if self.intra_period == 0 or self.intra_period < -1 or self.intra_period > 1_000_000:
            raise InputError(f"--intra-period must be -1 or 1..1000000, got {self.intra_period}")
        if not 0 <= self.refresh_period <= 65535:
            raise InputError(f"--refresh-period must be in 0..65535, got {self.refresh_period}")
        if self.flat_blocks == ToolMode.ON:
            raise InputError("--flat-blocks is auto or off (the encoder decides block by block)")
        if self.table_shifts == ToolMode.ON:
            raise InputError("--table-shifts is auto or off (the encoder decides frame by frame)")
        if self.split_blocks == ToolMode.ON:
            raise InputError("--split-blocks is auto or off (the encoder decides block by block)")
        if self.intra_prediction == ToolMode.ON:
            raise InputError("--intra-prediction is auto or off (the encoder decides block by block)")
        if self.skip_edges == ToolMode.ON:
            raise InputError("--skip-edges is auto or off (auto: on every stream with P frames)")
        if self.prediction_offsets == ToolMode.ON:
            raise InputError("--prediction-offsets is auto or off (the encoder decides frame by frame)")
        if self.adaptive_tables == ToolMode.ON:
            raise InputError("--adaptive-tables is auto or off (auto: on every stream with P frames)")
        if self.compact_records == ToolMode.ON:
            raise InputError("--compact-records is auto or off (auto: on every stream)")
        if self.intra_blocks == ToolMode.ON:
            raise InputError("--intra-blocks is auto or off (auto: the encoder decides per macroblock)")
        if self.deep_references == ToolMode.ON:
            raise InputError("--deep-references is auto or off (auto: on every stream with P frames)")
        if self.pixel_dc == ToolMode.ON:
            raise InputError("--pixel-dc is auto or off (auto: on every stream with intra prediction)")
        if self.block_modes == ToolMode.ON:
            raise InputError("--block-modes is auto or off (auto: on every stream with pixel DC)")
        if self.sample_offsets == ToolMode.ON:
            raise InputError("--sample-offsets is auto or off (the encoder decides frame by frame)")
        if self.half_pel == ToolMode.ON:
            raise InputError("--half-pel is auto or off (the encoder decides frame by frame)")
        if self.neighbour_levels == ToolMode.ON:
            raise InputError("--neighbour-levels is auto or off (the encoder decides block by block)")


@dataclass(frozen=True)
class FramePlan:
    """How frame `index` is coded, known to encoder and decoder alike."""

    index: int
    frame_type: FrameType
    qp: int
    refresh: bool  # a refresh point (bitstream_spec.md 4: no model state to rebuild in v2 base)
    position: int  # frames since the last intra frame (0 for an intra frame)


def frame_type_of(index: int, intra_period: int) -> FrameType:
    if index == 0 or (intra_period > 0 and index % intra_period == 0):
        return FrameType.INTRA
    return FrameType.INTER


def position_of(index: int, intra_period: int) -> int:
    return index if intra_period <= 0 else index % intra_period


def scheduled_qp(base_qp: int, position: int, offsets: tuple[int, ...], following: int | None = None) -> int:
    """The hierarchical qp: intra frames at base + INTRA_QP_OFFSET, P frame i at base +
    p_frame_offset (offsets[i % n] unless the stream ends within the frames it serves)."""
    offset = INTRA_QP_OFFSET if position == 0 else p_frame_offset(position, offsets, following)
    return min(QP_MAX, max(0, base_qp + offset))


def group_length(offsets: tuple[int, ...]) -> int:
    """P frames per group of a schedule: the default's 8 (GROUP_OFFSETS), or the whole schedule
    when it is shorter. The encoder tries the six-tap filters once a group (not normative)."""
    return min(len(offsets), len(GROUP_OFFSETS))


def served(position: int, offsets: tuple[int, ...]) -> int:
    """How many P frames follow P frame `position` before the next one whose offset is at most its
    own: the frames its finer qp is for (15, 7, 3, 1 and 0 with the default offsets)."""
    n, own = len(offsets), offsets[position % len(offsets)]
    return next(d for d in range(1, n + 1) if offsets[(position + d) % n] <= own) - 1


def p_frame_offset(position: int, offsets: tuple[int, ...], following: int | None) -> int:
    """The qp offset of P frame `position` when `following` P frames come after it before the next
    intra frame or the end (None: not known): the schedule's, unless fewer follow than it serves;
    then the smallest offset of the schedule that serves no more frames than follow, so the last
    frame takes the largest (not normative: each record carries its qp). People's 9 frames, whose
    last is the group's finest: BD-rate -2.2% against the schedule alone, qps 22-42 (`make
    bench`'s RD part); 96 frames keep the schedule."""
    own = offsets[position % len(offsets)]
    if following is None:
        return own
    return max(own, min(o for p, o in enumerate(offsets) if served(p, offsets) <= following))


def intra_base(intra_qp: int) -> int:
    """A base qp whose schedule codes the intra frame at `intra_qp`: the highest at the bottom of
    the range (bases 0..3 all give intra qp 0); above intra qp 60, base 63 (intra qp 60)."""
    return min(QP_MAX, intra_qp - INTRA_QP_OFFSET)


def is_refresh(position: int, refresh_period: int) -> bool:
    """Refresh on P frames whose distance to the intra frame is a multiple of the period."""
    return position > 0 and refresh_period > 0 and position % refresh_period == 0


def following_frames(index: int, intra_period: int, frame_count: int | None) -> int | None:
    """How many frames follow frame `index` before the next intra frame or the end of the stream
    (None: neither is known)."""
    counts = [] if frame_count is None else [frame_count - 1 - index]
    if intra_period > 0:
        counts.append(intra_period - 1 - position_of(index, intra_period))
    return min(counts, default=None)


def plan_frame(index: int, params: CodingParams, frame_count: int | None = None) -> FramePlan:
    """Frame `index`'s plan in a stream of `frame_count` frames (None: not known)."""
    position = position_of(index, params.intra_period)
    following = following_frames(index, params.intra_period, frame_count)
    return FramePlan(
        index=index,
        frame_type=frame_type_of(index, params.intra_period),
        qp=scheduled_qp(params.qp, position, params.qp_offsets, following),
        refresh=is_refresh(position, params.refresh_period),
        position=position,
    )
