"""Coding parameters and the frame plan: which frames are intra, refreshed, and at which qp."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from nvcodec.bitstream import FrameType
from nvcodec.errors import InputError

QP_MAX = 63
# Hierarchical qp inside a group of 8 P frames: every 8th frame is the best, then every 4th, ...
DEFAULT_QP_OFFSETS = (0, 6, 4, 6, 2, 6, 4, 6)


class ToolMode(StrEnum):
    """How the encoder decides a per-frame coding tool."""

    AUTO = "auto"
    ON = "on"
    OFF = "off"


@dataclass(frozen=True)
class CodingParams:
    """What the user chose for a whole sequence."""

    qp: int = 32
    intra_period: int = -1  # -1: one intra frame; N > 0: an intra frame every N frames
    refresh_period: int = 32  # 0: never; ConFRE's filter decisions restart at each refresh
    qp_offsets: tuple[int, ...] = DEFAULT_QP_OFFSETS
    filter: ToolMode = ToolMode.AUTO
    enhance: ToolMode = ToolMode.AUTO

    def __post_init__(self) -> None:
        if not 0 <= self.qp <= QP_MAX:
            raise InputError(f"--qp must be in 0..{QP_MAX}, got {self.qp}")
        if self.intra_period == 0 or self.intra_period < -1 or self.intra_period > 1_000_000:
            raise InputError(f"--intra-period must be -1 or 1..1000000, got {self.intra_period}")
        if not 0 <= self.refresh_period <= 65535:
            raise InputError(f"--refresh-period must be in 0..65535, got {self.refresh_period}")


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


def scheduled_qp(base_qp: int, position: int, offsets: tuple[int, ...]) -> int:
    """The hierarchical qp: intra frames at the base, P frame i at base + offsets[i % n]."""
    if position == 0:
        return base_qp
    return min(QP_MAX, max(0, base_qp + offsets[position % len(offsets)]))


def is_refresh(position: int, refresh_period: int) -> bool:
    """Refresh on P frames whose distance to the intra frame is a multiple of the period."""
    return position > 0 and refresh_period > 0 and position % refresh_period == 0


def plan_frame(index: int, params: CodingParams) -> FramePlan:
    position = position_of(index, params.intra_period)
    return FramePlan(
        index=index,
        frame_type=frame_type_of(index, params.intra_period),
        qp=scheduled_qp(params.qp, position, params.qp_offsets),
        refresh=is_refresh(position, params.refresh_period),
        position=position,
    )
