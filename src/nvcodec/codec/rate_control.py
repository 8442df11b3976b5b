"""Rate control: each frame's qp chosen so that the stream lands on a target bitrate (DESIGN.md).

Two controllers choose the base qp of the hierarchical schedule frame by frame; the frame's qp is
the base plus its scheduled offset, and the decoder reads it from the record as usual.

- `baseline`: DCVC-FM's buffer rule (appendix C, Algorithm 1): the buffer counts coded minus
  average bits; on even frames the base qp moves by 12, 6, 2 or 1 by how far the buffer is off.
- `model`: a model of log-bits against qp per kind of frame (intra, and each offset of the
  schedule), learned from the frames already coded. Before each frame it picks the lowest base
  qp whose predicted bits for the next window of frames (their kinds known from the schedule)
  fit the window's budget less what has been overspent so far, keeps the last base qp while
  that is close enough (STEADY), moves at most MAX_STEP, and, with --maxrate/--bufsize, keeps
  the frame inside the buffer. An intra frame far over its share is coded once more, higher.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Protocol

from nvcodec.codec.schedule import (
    INTRA_QP_OFFSET,
    QP_MAX,
    RateTarget,
    group_length,
    intra_base,
    position_of,
    scheduled_qp,
)
from nvcodec.errors import InputError

log = logging.getLogger(__name__)

START_QP = 32  # DCVC-FM's starting q, the middle of the range
# The first intra frame is the reference of everything after it: it takes INTRA_START of the
# target over the next INTRA_HORIZON seconds (fixed-qp coding gives it 4-19% of 96 frames:
# Cockatoo 4.5%, Foreman 10%, vtest 17%, car_traffic 19%).
INTRA_START = 0.15
INTRA_HORIZON = 10.0
INTRA_MISS = 1.5  # the first intra frame is coded again when this many times off its share
INTRA_SHARE = 0.4  # a later intra frame costing more of its window's budget is coded again
MAX_STEP = 2  # the model controller's largest base-qp change between frames
PINNED_FRAMES = 16  # frames in a row out of reach before the warning
STEADY = 0.12  # the base qp stays while its predicted bits are this close to the budget
WINDOW_SECONDS = 2.0  # overspending is paid back over this much video (or what is left of it)
# The prior, until frames are coded: bits per pixel at qp 32 and the log-rate slope per qp, from
# the released v2 weights (Foreman, Cockatoo, 9-32 frames at base qps 27-42: I 0.16-0.80 bpp,
# P 0.037-0.073 bpp at their own qps; slopes 0.08-0.13 per qp).
PRIOR_BPP = {"I": 0.3, "P": 0.065}
PRIOR_SLOPE = 0.11
# Between the offsets of the hierarchy bits change faster than the qp alone says: a P frame at
# offset 0 (a reference for the next eight) costs exp(0.2) more per offset step than its qp
# predicts (Foreman at 150 kbit/s: 2288 bytes at offset 2, qp 28 against 284 at offset 6, qp 36).
# Measured under offsets twice today's (0 6 4 6 2 6 4 6); the model learns each offset's rate
# from the frames coded, and benchmarks.ratecontrol measures the whole controller.
HIERARCHY = 0.2
PRIOR_OFFSET = 2  # the P prior is for a frame at about the schedule's mean offset
# Once the intra frame is coded, the P prior follows it: a P frame at the schedule's mean offset
# costs this share of the intra frame (0.05-0.3 measured: car_traffic 0.05, Foreman 0.09, Cockatoo 0.23;
# then with the intra frame at the base qp, 4 qp from the mean P frame; now 5).
P_OVER_I = 0.12
SLOPE_RANGE = (0.02, 0.4)
PRIOR_WEIGHT = 40.0  # the prior slope counts as much as this sum of squared qp changes
FORGET = 0.95  # how much of the slope evidence survives each new pair
CONTENT_CHANGE = 0.7  # a log-rate surprise above this (2x) says nothing about the slope
TRACKING_GAIN = 0.3  # the share of a coded frame's surprise taken into its kind's anchor


class RateController(Protocol):
    """Asked for each frame's qp before coding it, told its size after."""

    def frame_qp(self, index: int, position: int) -> int: ...

    def coded(self, index: int, position: int, qp: int, bits: int) -> None: ...

    def retry_qp(self, index: int, position: int, qp: int, bits: int) -> int | None:
        """A higher qp to code an intra frame again when it came out far too large, else None."""
        ...


@dataclass(frozen=True)
class RateContext:
    """What the controllers know of the sequence."""

    fps: Fraction
    frame_count: int | None
    qp_offsets: tuple[int, ...]
    intra_period: int
    pixels: int
    header_bits: int = 0  # the stream's header, counted into the rate


class BufferController:
    """DCVC-FM's Algorithm 1 on our qp (their q is quality: lowering it raises our qp); as in the
    paper, its buffer counts the frames only (the summary's rate also counts the stream header)."""

    def __init__(self, target: RateTarget, context: RateContext) -> None:
        self.context = context
        self.average = target.bitrate / float(context.fps)  # afs
        self.base = START_QP
        self.buffer = 0.0  # cbs
        self.target_buffer = 0.0  # tbs

    def frame_qp(self, index: int, position: int) -> int:
        return scheduled_qp(self.base, position, self.context.qp_offsets)

    def retry_qp(self, index: int, position: int, qp: int, bits: int) -> int | None:
        return None  # the buffer rule only reacts after the fact

    def coded(self, index: int, position: int, qp: int, bits: int) -> None:
        self.buffer += bits - self.average
        if index % 2 == 1:
            return
        diff = self.buffer - self.target_buffer
        self.target_buffer = 0.95 * self.buffer
        cbs, cfs = self.buffer, float(bits)
        if diff > 0:
            step = next((s for limit, s in ((10, 12), (5, 6), (2, 2)) if cbs > limit * cfs), None)
            if step is None:
                step = 1 if diff > 0.5 * cfs and cbs > -cfs else 0
            self.base += step
        elif diff < 0:
            step = next((s for limit, s in ((10, 12), (5, 6), (2, 2)) if cbs < -limit * cfs), None)
            if step is None:
                step = 1 if diff < -0.5 * cfs and cbs < cfs else 0
            self.base -= step
        self.base = min(QP_MAX, max(0, self.base))


class LogRateModel:
    """ln bits against qp for each kind of frame: a line of a shared slope through an anchor that
    follows the frames coded (the anchor sits at the last qp coded, so a change of slope only
    moves predictions away from there); the slope follows the qp changes within a kind, weighted
    against the prior."""

    def __init__(self, pixels: int) -> None:
        self.anchor = {kind: (32, math.log(pixels * bpp)) for kind, bpp in PRIOR_BPP.items()}
        self.seen: dict[str, int] = {}
        self.last: dict[str, tuple[int, float]] = {}
        self.slope_num = PRIOR_WEIGHT * PRIOR_SLOPE
        self.slope_den = PRIOR_WEIGHT

    @property
    def slope(self) -> float:
        return min(SLOPE_RANGE[1], max(SLOPE_RANGE[0], self.slope_num / self.slope_den))

    def log_bits(self, kind: str, qp: int) -> float:
        """A P offset not coded yet follows the nearest offset coded (else the prior), with the
        steeper rate change between the offsets of the hierarchy."""
        if kind in self.seen or kind == "I":
            q, value = self.anchor[kind]
            return value - self.slope * (qp - q)
        offset = int(kind[1:])
        coded = [int(k[1:]) for k in self.seen if k != "I"]
        if not coded:
            q, value = self.anchor["P"]
            return value - self.slope * (qp - q) + HIERARCHY * (PRIOR_OFFSET - offset)
        near = min(coded, key=lambda o: (abs(o - offset), o))
        return self.log_bits(f"P{near}", qp) + HIERARCHY * (near - offset)

    def bits(self, kind: str, qp: int) -> float:
        return math.exp(self.log_bits(kind, qp))

    def update(self, kind: str, qp: int, bits: int) -> None:
        observed = math.log(max(bits, 8))
        if kind in self.last and self.last[kind][0] != qp:
            dq, dl = qp - self.last[kind][0], observed - self.last[kind][1]
            if abs(dl + self.slope * dq) > CONTENT_CHANGE:  # the content changed, not just the qp
                dq = dl = 0
            prior = (1 - FORGET) * PRIOR_WEIGHT
            self.slope_num = FORGET * self.slope_num + prior * PRIOR_SLOPE - dq * dl
            self.slope_den = FORGET * self.slope_den + prior + dq * dq
        self.last[kind] = (qp, observed)
        if kind == "I" and not any(k != "I" for k in self.seen):  # P frames follow the intra frame
            self.anchor["P"] = (qp - INTRA_QP_OFFSET + PRIOR_OFFSET, observed + math.log(P_OVER_I))
        n = self.seen.get(kind, 0)  # the first frame of a kind replaces the prior, later ones move it
        predicted = self.log_bits(kind, qp)
        gain = max(TRACKING_GAIN, 1.0 / (n + 1))
        self.anchor[kind] = (qp, predicted + gain * (observed - predicted))
        self.seen[kind] = n + 1
        if kind != "I" and n > 0:  # the content changes for every P offset at once (a scene cut)
            for other in self.seen:
                if other not in ("I", kind):
                    q, value = self.anchor[other]
                    self.anchor[other] = (q, value + TRACKING_GAIN * (observed - predicted))


class ModelController:
    """Chooses the base qp whose predicted bits fit the budget of the next window of frames."""

    def __init__(self, target: RateTarget, context: RateContext) -> None:
        self.target, self.context = target, context
        self.per_frame = target.bitrate / float(context.fps)
        self.window = max(2 * group_length(context.qp_offsets), round(WINDOW_SECONDS * float(context.fps)))
        self.model = LogRateModel(context.pixels)
        self.spent = float(context.header_bits)
        self.frames = 0
        self.base: int | None = None
        self.fullness = 0.0  # VBV: bits in the buffer, drained at maxrate
        if target.bufsize is not None and target.maxrate is not None:
            if target.bufsize < target.maxrate / float(context.fps):
                raise InputError(
                    f"--bufsize {target.bufsize:.0f} bits holds less than one frame at --maxrate "
                    f"({target.maxrate / float(context.fps):.0f} bits at {float(context.fps):g} fps)"
                )
        self.pinned = 0  # frames in a row at qp 0 or 63 that the target is out of reach

    def kind(self, position: int) -> str:
        if position == 0:
            return "I"
        offsets = self.context.qp_offsets
        return f"P{offsets[position % len(offsets)]}"

    def _window_positions(self, index: int) -> list[int]:
        count = self.window
        if self.context.frame_count is not None:
            count = max(1, min(count, self.context.frame_count - index))
        return [position_of(index + k, self.context.intra_period) for k in range(count)]

    def _predicted(self, base: int, positions: list[int]) -> float:
        offsets = self.context.qp_offsets
        return sum(self.model.bits(self.kind(p), scheduled_qp(base, p, offsets)) for p in positions)

    def _budget(self, positions: list[int]) -> float:
        """Bits for the window: its share of the target less what has been overspent so far."""
        return len(positions) * self.per_frame - (self.spent - self.frames * self.per_frame)

    def _fitting_base(self, positions: list[int]) -> int:
        budget = self._budget(positions)
        return next((q for q in range(QP_MAX + 1) if self._predicted(q, positions) <= budget), QP_MAX)

    def frame_qp(self, index: int, position: int) -> int:
        positions = self._window_positions(index)
        if self.frames == 0:  # nothing coded yet: the first frame takes its share at the prior's qp
            base = intra_base(self._intra_fit(self._intra_aim(index, positions)))
        else:
            base = self._fitting_base(positions)
            self._warn_if_out_of_reach(base, positions)
        if self.base is not None:
            if abs(self._predicted(self.base, positions) / max(self._budget(positions), 1.0) - 1) < STEADY:
                base = self.base  # close enough: a steady qp rather than one that flickers
            base = min(self.base + MAX_STEP, max(self.base - MAX_STEP, base))
        self.base = base
        qp = scheduled_qp(base, position, self.context.qp_offsets)
        return self._within_buffer(qp, position)

    def _intra_aim(self, index: int, positions: list[int]) -> float:
        """The bits an intra frame should take: the first one INTRA_START of the target over the
        frames it will serve (up to INTRA_HORIZON seconds), a later one at most INTRA_SHARE of its
        window's budget (never less than the window's target)."""
        if self.frames == 0:
            served = round(INTRA_HORIZON * float(self.context.fps))
            if self.context.frame_count is not None:
                served = max(1, min(served, self.context.frame_count - index))
            return INTRA_START * served * self.per_frame
        return INTRA_SHARE * max(self._budget(positions), len(positions) * self.per_frame)

    def _intra_fit(self, aim: float) -> int:
        return next((q for q in range(QP_MAX + 1) if self.model.bits("I", q) <= aim), QP_MAX)

    def retry_qp(self, index: int, position: int, qp: int, bits: int) -> int | None:
        """An intra frame that missed its aim is coded once more at the qp the model, corrected by
        it, now predicts: the first frame (only the prior to go by) when it is more than
        INTRA_MISS times off either way, a later one when it is above its share."""
        if position != 0:
            return None
        aim = self._intra_aim(index, self._window_positions(index))
        low, high = (aim / INTRA_MISS, aim * INTRA_MISS) if self.frames == 0 else (0.0, aim)
        if low <= bits <= high:
            return None
        self.model.update("I", qp, bits)
        base = intra_base(self._intra_fit(aim))
        retry = self._within_buffer(scheduled_qp(base, position, self.context.qp_offsets), position)
        if retry == qp:
            return None
        self.base = base
        return retry

    def _warn_if_out_of_reach(self, base: int, positions: list[int]) -> None:
        """Say once when qp 0 or 63 has kept missing the target for PINNED_FRAMES frames."""
        reach = self._predicted(base, positions) / len(positions)
        pinned = (base == 0 and reach < 0.5 * self.per_frame) or (
            base == QP_MAX and reach > 2 * self.per_frame
        )
        self.pinned = self.pinned + 1 if pinned else 0
        if self.pinned == PINNED_FRAMES:
            log.warning(
                "warning: the target %.0f kbit/s is %s what qp %d gives here (about %.0f kbit/s); coding at qp %d",
                self.target.bitrate / 1000,
                "above" if base == 0 else "below",
                base,
                reach * float(self.context.fps) / 1000,
                base,
            )

    def _within_buffer(self, qp: int, position: int) -> int:
        """With a VBV cap: the lowest qp from `qp` up whose predicted bits fit in the buffer."""
        if self.target.bufsize is None:
            return qp
        room = self.target.bufsize - self.fullness
        while qp < QP_MAX and self.model.bits(self.kind(position), qp) > 0.9 * room:
            qp += 1
        return qp

    def coded(self, index: int, position: int, qp: int, bits: int) -> None:
        self.model.update(self.kind(position), qp, bits)
        self.spent += bits
        self.frames += 1
        if self.target.maxrate is not None:
            drained = self.target.maxrate / float(self.context.fps)
            self.fullness = max(0.0, self.fullness + bits - drained)


def make_controller(target: RateTarget, context: RateContext) -> RateController:
    if target.controller == "baseline":
        return BufferController(target, context)
    return ModelController(target, context)
