"""The encoder's frame loop: plan each frame, code it (trying the tools), emit a record."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from nvcodec.bitstream import FrameFlags, FrameRecord, FrameType, Header, Tools
from nvcodec.bitstream.record import record_size
from nvcodec.codec.decisions import FilterDecider, Trial, should_enhance
from nvcodec.codec.frame_loop import (
    CPU,
    FrameLoop,
    Picture,
    interpolation_flag,
    motion_flags,
    picture_signature,
    shift_flag,
)
from nvcodec.codec.rate_control import RateContext, RateController, make_controller
from nvcodec.codec.schedule import (
    QP_MAX,
    CodingParams,
    FramePlan,
    ToolMode,
    group_length,
    plan_frame,
    scheduled_qp,
)
from nvcodec.frame import Frame, VideoInfo
from nvcodec.models import sample_offsets
from nvcodec.models.blocks import ResidualRefiner
from nvcodec.models.compensation import (
    BLOCK,
    HEVC_FILTERS,
    LARGE_BLOCK,
    SIX_TAP_FILTERS,
    FilterSet,
    InterpolatedFrame,
)
from nvcodec.models.inter import InterOutput
from nvcodec.models.intra import IntraOutput
from nvcodec.models.intra_prediction import macroblock_grid
from nvcodec.models.latent_codec import LAMBDA, base_step
from nvcodec.models.layout import frame_to_tensor, shown_levels, weighted_mse
from nvcodec.models.motion import MotionField, vector_step
from nvcodec.weights import Weights


@dataclass
class EncodedFrame:
    """One frame's record and pictures, as the decoder will reproduce them."""

    plan: FramePlan
    record: FrameRecord
    picture: Picture

    @property
    def bytes(self) -> int:
        return self.record.size


# In auto mode, P frames from this qp on are also tried with large motion blocks (encoder's
# choice): below it the small ones won on every frame measured, and a second search costs time.
LARGE_BLOCKS_FROM_QP = 27
# In auto mode the six-tap filters are tried on a group of P frames only when its first frame's qp is at
# most this: above it HEVC's sharper eight taps won on two of the three clips measured (Foreman, Cactus;
# a one-frame trial there cost 1.3-1.5% BD-rate), below it six taps won on all three.
SIX_TAP_UNTIL_QP = 32
# In streams with half-pel frames (2.18), P frames from this qp on are tried again with half-pel
# vectors at the block size and filters that won (encoder's choice). On 48 Foreman frames coded all
# half-pel, against quarter-pel: BD-rate lost at base qps 22-32 (+6.2% bits at qp 22) and won at
# 37-42 (-1.0% and -1.4% bits for equal or higher PSNR); on 32 of Cockatoo won from qp 32 on.
HALF_PEL_FROM_QP = 32


def block_sizes(mode: ToolMode, qp: int) -> tuple[int, ...]:
    """The motion block sizes the encoder tries on a P frame of this qp."""
    if mode == ToolMode.AUTO:
        return (BLOCK, LARGE_BLOCK) if qp >= LARGE_BLOCKS_FROM_QP else (BLOCK,)
    return (LARGE_BLOCK,) if mode == ToolMode.ON else (BLOCK,)


def large_blocks_possible(params: CodingParams) -> bool:
    """Whether some P frame may be tried with large motion blocks, at the qps the schedule gives P
    frames (any qp under rate control). Streams without them stay readable by 2.2 decoders."""
    if params.intra_period == 1:
        return False
    if params.rate is not None:
        qps = range(QP_MAX + 1)
    else:
        qps = [scheduled_qp(params.qp, p, params.qp_offsets) for p in range(1, len(params.qp_offsets) + 1)]
    return any(LARGE_BLOCK in block_sizes(params.large_blocks, qp) for qp in qps)


def flat_blocks_possible(params: CodingParams) -> bool:
    """Whether a P frame may have flat blocks (then the stream is version 2.4)."""
    return params.intra_period != 1 and params.flat_blocks != ToolMode.OFF


def split_blocks_possible(params: CodingParams) -> bool:
    """Whether a P frame may split its motion blocks (then the stream is version 2.6)."""
    return params.intra_period != 1 and params.split_blocks != ToolMode.OFF


def six_tap_possible(params: CodingParams) -> bool:
    """Whether a P frame may use the six-tap filters (then the stream is version 2.7)."""
    return params.intra_period != 1 and params.six_tap != ToolMode.OFF


def intra_prediction_possible(params: CodingParams) -> bool:
    """Whether intra frames are predicted (then the stream is version 2.8 or later)."""
    return params.intra_prediction != ToolMode.OFF


def skip_edges_possible(params: CodingParams) -> bool:
    """Whether P frames deblock only the edges of residual and motion (then the stream is version 2.9)."""
    return params.intra_period != 1 and params.skip_edges != ToolMode.OFF


def prediction_offsets_possible(params: CodingParams) -> bool:
    """Whether P frames code prediction offsets (then the stream is version 2.10, which also skips
    edges: off with either)."""
    return skip_edges_possible(params) and params.prediction_offsets != ToolMode.OFF


def adaptive_tables_possible(params: CodingParams) -> bool:
    """Whether P frames' tables adapt (then the stream is version 2.11, which also has 2.10's
    prediction offsets and 2.9's skipped edges: off with any of them)."""
    return prediction_offsets_possible(params) and params.adaptive_tables != ToolMode.OFF


def compact_records_possible(params: CodingParams) -> bool:
    """Whether records are compact (then the stream is version 2.12, which has every P-frame tool
    of 2.11: a stream without them keeps the fixed-length records its version had)."""
    return adaptive_tables_possible(params) and params.compact_records != ToolMode.OFF


def intra_blocks_possible(params: CodingParams) -> bool:
    """Whether P frames may have intra blocks (then the stream is version 2.13, which implies
    compact records and 2.11's P-frame tools)."""
    return compact_records_possible(params) and params.intra_blocks != ToolMode.OFF


def deep_references_possible(params: CodingParams) -> bool:
    """Whether reconstructions are kept in 10-bit levels (then the stream is version 2.14, which
    has every tool of 2.13; an all-intra stream, which has no references, stays older)."""
    return intra_blocks_possible(params) and params.deep_references != ToolMode.OFF


def pixel_dc_possible(params: CodingParams) -> bool:
    """Whether predicted intra frames predict each block's DC from its neighbours (then the stream
    is version 2.15, which has every tool of 2.14: off with any of them, and in all-intra streams,
    which stay older)."""
    return (
        intra_prediction_possible(params)
        and deep_references_possible(params)
        and params.pixel_dc != ToolMode.OFF
    )


def block_modes_possible(params: CodingParams) -> bool:
    """Whether predicted intra frames give each 8x8 block one of eight modes (then the stream is
    version 2.16, which has every tool of 2.15: off with any of them)."""
    return pixel_dc_possible(params) and params.block_modes != ToolMode.OFF


def sample_offsets_possible(params: CodingParams) -> bool:
    """Whether frames may offset their samples after deblocking (then the stream is version 2.17,
    which has every tool of 2.16: off with any of them)."""
    return block_modes_possible(params) and params.sample_offsets != ToolMode.OFF


def half_pel_possible(params: CodingParams) -> bool:
    """Whether P frames may code their vectors in half pixels (then the stream is version 2.18,
    which has every tool of 2.17: off with any of them)."""
    return sample_offsets_possible(params) and params.half_pel != ToolMode.OFF


def neighbour_levels_possible(params: CodingParams) -> bool:
    """Whether P frames' intra blocks may take their levels from their neighbours (then the stream
    is version 2.19, which has every tool of 2.18: off with any of them)."""
    return half_pel_possible(params) and params.neighbour_levels != ToolMode.OFF


def table_shifts_possible(params: CodingParams) -> bool:
    """Whether a frame may shift its latent's tables (then the stream is version 2.5)."""
    return params.table_shifts != ToolMode.OFF


def header_for(weights: Weights, params: CodingParams, info: VideoInfo, indexed: bool = False) -> Header:
    tools = (
        (Tools.FILTER if params.filter != ToolMode.OFF else 0)
        | (Tools.ENHANCE if params.enhance != ToolMode.OFF else 0)
        | (Tools.LARGE_BLOCKS if large_blocks_possible(params) else 0)
        | (Tools.FLAT_BLOCKS if flat_blocks_possible(params) else 0)
        | (Tools.TABLE_SHIFTS if table_shifts_possible(params) else 0)
        | (Tools.SPLIT_BLOCKS if split_blocks_possible(params) else 0)
        | (Tools.SIX_TAP if six_tap_possible(params) else 0)
        | (Tools.INTRA_PREDICTION if intra_prediction_possible(params) else 0)
    )
    return Header(
        width=info.width,
        height=info.height,
        fps_num=info.fps.numerator,
        fps_den=info.fps.denominator,
        frame_count=info.frame_count,
        model_name=weights.config.name,
        weights_hash=weights.identity,
        intra_period=params.intra_period,
        refresh_period=params.refresh_period,
        tools=int(tools),
        qp_offsets=params.qp_offsets,
        sar=None if info.sar is None else (info.sar.numerator, info.sar.denominator),
        indexed=indexed,
        skip_edges=skip_edges_possible(params),
        prediction_offsets=prediction_offsets_possible(params),
        adaptive_tables=adaptive_tables_possible(params),
        compact_records=compact_records_possible(params),
        intra_blocks=intra_blocks_possible(params),
        deep_references=deep_references_possible(params),
        pixel_dc=pixel_dc_possible(params),
        block_modes=block_modes_possible(params),
        sample_offsets=sample_offsets_possible(params),
        half_pel=half_pel_possible(params),
        neighbour_levels=neighbour_levels_possible(params),
    )


def _tried(mode: ToolMode, block: ResidualRefiner) -> ToolMode:
    """The mode to code with: `auto` never tries an identity (untrained) block, which cannot lower
    the distortion, so the decision would be 'off' anyway."""
    return ToolMode.OFF if mode == ToolMode.AUTO and block.is_identity else mode


class Encoder(FrameLoop):
    """Feed frames in display order; each call returns the frame's record and reconstruction."""

    def __init__(
        self,
        weights: Weights,
        params: CodingParams,
        info: VideoInfo,
        device: torch.device = CPU,
        dtype: torch.dtype = torch.float32,
        length_hint: int | None = None,
        header_counted: bool = True,
    ) -> None:
        """`length_hint`: at most this many frames will come (--frames on an input of unknown
        length), for rate control to plan with when info.frame_count is None. `header_counted`:
        the header's bits count against the target (false for a segment after the first)."""
        super().__init__(weights, device, dtype, header_for(weights, params, info))
        self.params = params
        self.table_shifts = table_shifts_possible(params)
        self.filter_mode = _tried(params.filter, self.model.context_filter)
        self.enhance_mode = _tried(params.enhance, self.model.enhancer)
        self.filter_decider = FilterDecider(info.frame_count)
        self.frame_count = info.frame_count if info.frame_count is not None else length_hint
        self.interpolation = HEVC_FILTERS  # the interpolation filters of the current group of P frames
        self.rate: RateController | None = None
        if params.rate is not None:
            pixels = info.width * info.height
            header_bits = 8 * len(self.header.pack()) if header_counted else 0
            context = RateContext(
                info.fps, self.frame_count, params.qp_offsets, params.intra_period, pixels, header_bits
            )
            self.rate = make_controller(params.rate, context)

    def _distortion(self, x_hat: torch.Tensor, x: torch.Tensor) -> float:
        """Weighted MSE of a picture inside the true (unpadded) frame area."""
        h, w = -(-self.height // 2), -(-self.width // 2)
        return float(weighted_mse(x_hat[..., :h, :w].float(), x[..., :h, :w].float()))

    @torch.no_grad()
    def encode(self, frame: Frame, following: int | None = None) -> EncodedFrame:
        """Code the next frame; `following`: how many frames are known to come after it (None:
        not known, or at least the schedule's length), for the qps near the end."""
        if (frame.width, frame.height) != (self.width, self.height):
            raise ValueError(
                f"frame {self.index} is {frame.width}x{frame.height}, not {self.width}x{self.height}"
            )
        plan = self._plan(following)
        x = frame_to_tensor(frame).to(self.device, self.dtype)
        if plan.frame_type == FrameType.INTRA:
            out, plan = self._encode_intra(x, plan)
            flags, streams, x_hat = shift_flag(out.latent.shifts), (out.latent.stream,), out.x_hat
            self.filter_decider.reset()
        else:
            out, flags = self._encode_inter(x, plan)
            streams, x_hat = out.streams, out.x_hat  # on the grid of self.bits: deblock() rounds
        x_hat, streams = self._sample_offsets(x, x_hat, streams, plan.qp, out.coded)
        shown = self._enhancement(x_hat, x)
        if shown is not None:
            flags |= FrameFlags.ENHANCE
        picture = self.picture_of(x_hat, shown)
        record = FrameRecord(
            plan.frame_type,
            plan.qp,
            flags,
            streams,
            picture.recon_crc,
            picture.output_crc & 0xFFFF,
            picture_signature(picture.recon),
            self.header.compact_records,
        )
        self.advance(x_hat, out.latent, record)
        coded = EncodedFrame(plan, record, picture)
        if self.rate is not None:
            self.rate.coded(plan.index, plan.position, plan.qp, 8 * coded.bytes)
        return coded

    def _sample_offsets(
        self,
        x: torch.Tensor,
        x_hat: torch.Tensor,
        streams: tuple[bytes, ...],
        qp: int,
        coded: torch.Tensor | None,
    ) -> tuple[torch.Tensor, tuple[bytes, ...]]:
        """The reconstruction with the sample offsets the encoder chose for it (in the `coded`
        blocks of a P frame), and the substreams with them in front of the latent one (2.17); both
        unchanged in older streams."""
        if not self.header.sample_offsets:
            return x_hat, streams
        planes = sample_offsets.choose(x, x_hat, self.bits, LAMBDA * base_step(qp) ** 2, coded)
        latent = sample_offsets.write(planes, streams[-1], self.tables)
        return sample_offsets.apply(x_hat, planes, self.bits, coded), (*streams[:-1], latent)

    def _plan(self, following: int | None) -> FramePlan:
        """The next frame's plan in a stream of the frames known to come (encode), its qp from
        rate control when there is a target bitrate."""
        known = None if following is None else self.index + 1 + following
        counts = [c for c in (self.frame_count, known) if c is not None]
        plan = plan_frame(self.index, self.params, min(counts, default=None))
        if self.rate is None:
            return plan
        return replace(plan, qp=self.rate.frame_qp(plan.index, plan.position))

    def _encode_intra(self, x: torch.Tensor, plan: FramePlan) -> tuple[IntraOutput, FramePlan]:
        """Code an intra frame; rate control may send it back once at a higher qp."""
        out = self._intra(x, plan.qp)
        if self.rate is not None:
            size = record_size((out.latent.stream,), self.header.compact_records)  # EncodedFrame.bytes
            qp = self.rate.retry_qp(plan.index, plan.position, plan.qp, 8 * size)
            if qp is not None:
                plan = replace(plan, qp=qp)
                out = self._intra(x, plan.qp)
        return out, plan

    def _intra(self, x: torch.Tensor, qp: int) -> IntraOutput:
        return self.model.intra.encode(x, qp, self.tables, self.table_shifts, self.intra_modes, self.bits)

    def _trial(self, out: InterOutput, x: torch.Tensor) -> Trial:
        return Trial(sum(map(len, out.streams)), self._distortion(out.x_hat, x))

    def _motion(
        self, x: torch.Tensor, plan: FramePlan, table: np.ndarray | None
    ) -> tuple[InterOutput, Trial, InterpolatedFrame]:
        """The frame coded without the in-loop filter (its latent with `table`), with the motion
        block size and the interpolation filters of least D + lambda R, and the reference read
        through them; from HALF_PEL_FROM_QP on, the winner tried again with half-pel vectors
        where the stream may have them. The trials are coded without intra blocks (an empty map
        where the stream has them); the winner's intra blocks are searched from its coding and
        kept where they lower D + lambda R: their search is what a trial would cost most."""
        ref, inter = self.reference, self.model.inter
        flow = inter.flow(x, ref.picture)
        no_modes = self._no_modes(x)
        quarter = False if self.header.half_pel else None  # the flag, when the stream codes it
        neighbour_levels = self.header.neighbour_levels

        def coded(
            picture: InterpolatedFrame, block: int, half_pel: bool | None = quarter
        ) -> tuple[InterOutput, Trial, InterpolatedFrame]:
            finest = vector_step(half_pel)
            vectors = inter.search(x, picture, plan.qp, self.tables, flow, block, finest)
            flat = None
            if flat_blocks_possible(self.params):
                vectors, flat = inter.flat_blocks(x, picture, plan.qp, self.tables, vectors, block, finest)
            field = MotionField(
                vectors, block, flat, modes=no_modes, half_pel=half_pel, neighbour_levels=neighbour_levels
            )
            if split_blocks_possible(self.params):
                field = inter.split_blocks(x, picture, plan.qp, self.tables, flow, field)
            if self.header.prediction_offsets:
                field = inter.prediction_offsets(x, picture, plan.qp, field)
            args = (plan.qp, self.tables, ref.symbols, field)
            out = inter.encode(x, picture, *args, **self._latent_options(table))
            return out, self._trial(out, x), picture

        pixels = self.width * self.height
        tries = [
            (ref.picture.through(filters), block)
            for filters in self._interpolations(plan)
            for block in block_sizes(self.params.large_blocks, plan.qp)
        ]

        def cost(c: tuple[InterOutput, Trial, InterpolatedFrame]) -> float:
            return c[1].rd_cost(plan.qp, pixels)

        out, trial, picture = min((coded(*t) for t in tries), key=cost)
        if self.header.half_pel and plan.qp >= HALF_PEL_FROM_QP:
            out, trial, picture = min((out, trial, picture), coded(picture, out.field.block, True), key=cost)
        self.interpolation = picture.filters
        return *self._with_intra_blocks(x, plan.qp, out, trial), picture

    def _with_intra_blocks(
        self, x: torch.Tensor, qp: int, out: InterOutput, trial: Trial
    ) -> tuple[InterOutput, Trial]:
        """The frame with intra blocks searched from its coding where the stream may have them,
        kept when they lower D + lambda R."""
        if not self.header.intra_blocks:
            return out, trial
        blocks = self.model.inter.with_intra_blocks(x, out)
        blocks_trial = self._trial(blocks, x)
        pixels = self.width * self.height
        return (
            (blocks, blocks_trial)
            if blocks_trial.rd_cost(qp, pixels) < trial.rd_cost(qp, pixels)
            else (out, trial)
        )

    def _interpolations(self, plan: FramePlan) -> tuple[FilterSet, ...]:
        """The interpolation filters tried on this P frame: in auto mode both on the first P frame
        of each group of the qp schedule (schedule.group_length; if its qp is at most
        SIX_TAP_UNTIL_QP, else the eight taps alone), then the winner until the next group (not
        normative)."""
        mode = self.params.six_tap
        if mode != ToolMode.AUTO:
            return (SIX_TAP_FILTERS if mode == ToolMode.ON else HEVC_FILTERS,)
        if (plan.position - 1) % group_length(self.params.qp_offsets) != 0:
            return (self.interpolation,)
        return (HEVC_FILTERS, SIX_TAP_FILTERS) if plan.qp <= SIX_TAP_UNTIL_QP else (HEVC_FILTERS,)

    def _encode_inter(self, x: torch.Tensor, plan: FramePlan) -> tuple[InterOutput, FrameFlags]:
        ref = self.reference
        if plan.refresh:
            self.filter_decider.reset()
        table = self.latent_table(plan.qp)
        off, off_trial, picture = self._motion(x, plan, table)

        def filtered() -> InterOutput:
            refine = self.model.context_filter
            args = (plan.qp, self.tables, ref.symbols, replace(off.field, modes=self._no_modes(x)), refine)
            out = self.model.inter.encode(x, picture, *args, **self._latent_options(table))
            return self._with_intra_blocks(x, plan.qp, out, self._trial(out, x))[0]

        mode = self.filter_mode
        use = mode == ToolMode.ON
        out = filtered() if use else off
        if mode == ToolMode.AUTO:
            on = filtered()
            use = self.filter_decider.decide(plan.index, off_trial, self._trial(on, x))
            out = on if use else off
        flags = (
            (FrameFlags.FILTER if use else FrameFlags(0))
            | (FrameFlags.REFRESH if plan.refresh else FrameFlags(0))
            | motion_flags(out.field)
            | interpolation_flag(picture.filters)
            | shift_flag(out.latent.shifts)
        )
        return out, flags

    def _no_modes(self, x: torch.Tensor) -> np.ndarray | None:
        """The empty intra blocks' map of frame x where the stream has the map, else None."""
        return np.zeros(macroblock_grid(tuple(x.shape)), dtype=np.int64) if self.header.intra_blocks else None

    def _latent_options(self, table: np.ndarray | None) -> dict:
        """How a P frame's latent is coded and its reconstruction finished: shifts allowed or not,
        its tables, its edges, its levels."""
        return {
            "shifts_allowed": self.table_shifts,
            "table": table,
            "skip_edges": self.header.skip_edges,
            "bits": self.bits,
        }

    def _enhancement(self, x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor | None:
        """The enhanced picture when the frame is flagged for enhancement, else None."""
        mode = self.enhance_mode
        if mode == ToolMode.OFF:
            return None
        shown = self.enhanced(x_hat)
        plain = shown_levels(x_hat, self.bits).float() / 255  # what is shown unenhanced
        if mode == ToolMode.ON or should_enhance(self._distortion(plain, x), self._distortion(shown, x)):
            return shown
        return None
