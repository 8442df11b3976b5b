"""The inter (P) frame coder: block motion compensation, then conditional residual coding.

x~ = MC(x_hat_{t-1}, vectors) + offsets    (from 2.10 a whole-level offset per plane; optionally
                                            refined by ConFRE's in-loop filter)
y  = A(x - x~) + C_a(E(x~))                 C_a, C_s start at zero: plain residual coding
x_hat = deblock(x~ + S(y_hat + C_s(E(x~))))  the sum in integer 1/64 levels (models.deblock),
                                            from 2.9 on the edges that residual or motion made,
                                            from 2.14 rounded to 10-bit levels, not 8
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nvcodec.entropy.coder import ProbabilityTables
from nvcodec.entropy.context import CHANNELS
from nvcodec.models import intra_blocks, intra_prediction
from nvcodec.models.compensation import InterpolatedFrame, Prediction
from nvcodec.models.config import ModelConfig
from nvcodec.models.deblock import Edges, deblock
from nvcodec.models.flat_blocks import coding_cost, flatten, to_predictors, vector_costs
from nvcodec.models.intra_prediction import MACROBLOCK, NEIGHBOUR_LEVELS, macroblock_grid
from nvcodec.models.intra_search import BlockQuantiser, IntraDecision, search_modes
from nvcodec.models.latent_codec import ALL_CHANNELS, LatentCodec, LatentResult, base_step, latent_positions
from nvcodec.models.layout import (
    FINE_BITS,
    FINE_PEAK,
    block_means,
    block_sums,
    spread_blocks,
    to_fine,
    to_planes,
)
from nvcodec.models.motion import (
    DELTA_BUCKET,
    MotionCoder,
    MotionField,
    block_grid,
    spread_units,
    units_by_block,
)
from nvcodec.models.motion_search import RateOf, search, search_units
from nvcodec.models.motion_seed import MotionEstimator, seed
from nvcodec.models.transform import PATCH, BlockTransform

INTER_DEAD_ZONE = 0.2
# P frames zero fewer levels than intra frames (latent_codec.LAMBDA = 0.272): each P frame is the
# next one's reference, so what it keeps pays again in the frames after it (x264's macroblock tree
# lowers the quantiser of referenced blocks for the same reason). Measured against 0.272 with the
# released weights: BD-rate -0.4% on 96 Foreman frames (qps 22-42), -3.8% on 24 of Cockatoo (22-37),
# -2.3% on 24 of Cactus (27-32); the drift (first 16 frames minus the last 16) of Foreman falls by
# 0.1-0.3 dB at every qp.
INTER_LAMBDA = 0.19
# From 1280x720 luma pixels on, the P frames weigh bits at LARGE_LAMBDA_SCALE times INTER_LAMBDA,
# found by measurement (the reason not isolated). Against 0.19, on the released weights at qps
# 22-37: Cockatoo (1280x720, 32 frames) -2.3%, Cactus (1280x720, 16) -0.8%, street (1920x1080, 8)
# -1.1%; the same scale at 640x360 costs car_traffic +2.3%, and x0.75 costs Foreman (352x288)
# +1.1% and people (320x192) +0.5%.
LARGE_PICTURE = 1280 * 720
LARGE_LAMBDA_SCALE = 0.6
# The encoder's estimate of a flat block's residual cost is multiplied by this before it is compared:
# the estimate undercounts it (the latent's contexts expect the quieter block of the frame before).
# Against 1.0, on 24 frames at qps 22-37 (BD-rate against --flat-blocks off): Cockatoo -4.5% instead
# of -3.3%, Cactus +0.4% instead of +1.1%.
FLAT_MARGIN = 1.25
# The encoder's estimate, in bits, of a split flag when it weighs four vectors against one.
SPLIT_FLAG_BITS = 1.0
Refine = Callable[[torch.Tensor], torch.Tensor]  # the in-loop filter applied to the prediction
POSITION = 2 * PATCH  # luma pixels per side of a 1/8 position of the latent


@dataclass
class InterOutput:
    x_hat: torch.Tensor
    field: MotionField
    latent: LatentResult
    motion_stream: bytes | None = None
    unmoded: Unmoded | None = None  # the encoder's, where the stream has an intra blocks' map

    @property
    def streams(self) -> tuple[bytes, bytes]:
        """The two substreams of a P frame: motion vectors, residual latent."""
        assert self.motion_stream is not None and self.latent.stream is not None
        return self.motion_stream, self.latent.stream

    @property
    def coded(self) -> torch.Tensor:
        """(hp, wp) bool: the coded 8x8 blocks (coded_blocks)."""
        return coded_blocks(self.latent.symbols, self.field)


@dataclass(frozen=True)
class Unmoded:
    """What a P frame coded with an empty intra blocks' map leaves for their search: its
    prediction, its analysis, how its latent is coded, whether its edges are skipped and the
    levels of its reconstruction."""

    prediction: Prediction
    y: torch.Tensor
    coding: _LatentCoding
    skip_edges: bool
    bits: int


def coded_blocks(levels: np.ndarray, field: MotionField) -> torch.Tensor:
    """(hp, wp) bool: the 8x8 blocks of a P frame that are more than a copy of their motion's
    prediction: with a non-zero level (`levels`: (C, hp, wp), the latent's integers), in a flat
    block or in an intra-predicted macroblock."""
    hp, wp = levels.shape[-2:]
    coded = torch.from_numpy((levels != 0).any(axis=0))
    if field.flat is not None:
        flat = torch.from_numpy(field.flat)
        coded = coded | spread_blocks(flat[None], field.block // POSITION, hp, wp)[0, 0]
    if field.modes is not None:
        shaped = torch.from_numpy(field.modes != 0)
        coded = coded | spread_blocks(shaped[None], MACROBLOCK // POSITION, hp, wp)[0, 0]
    return coded


def p_frame_edges(levels: np.ndarray, field: MotionField) -> Edges:
    """The edges a P frame of version 2.9 deblocks: beside a coded 8x8 block (coded_blocks) and
    between blocks whose vectors differ."""
    hp, wp = levels.shape[-2:]
    coded = coded_blocks(levels, field)
    units = torch.from_numpy(field.unit_vectors()).permute(2, 0, 1)
    vectors = spread_blocks(units, field.unit // POSITION, hp, wp)[0].permute(1, 2, 0)
    return Edges.between(coded, vectors)


def offset_prediction(fine: torch.Tensor, offsets: tuple[int, int, int]) -> torch.Tensor:
    """The prediction in 1/64 levels with a whole number of levels added to each plane (the four
    Y phases of the tensor, U, V), clipped to the 8-bit range."""
    y, u, v = offsets
    shift = torch.tensor([y, y, y, y, u, v], device=fine.device, dtype=fine.dtype).view(1, 6, 1, 1)
    return (fine + (shift << FINE_BITS)).clamp(0, FINE_PEAK)


def _offset(prediction: Prediction, offsets: tuple[int, int, int]) -> Prediction:
    """The prediction with `offsets` added (offset_prediction), as a Prediction."""
    return Prediction.exact(offset_prediction(prediction.fine, offsets), prediction.values.dtype)


def inter_lambda(x: torch.Tensor) -> float:
    """The P frames' lambda for frame x (half-size planes): its latent's RD levels and the
    encoder's block decisions, in squared steps per bit (not normative)."""
    luma_pixels = 4 * x.shape[-2] * x.shape[-1]
    return INTER_LAMBDA * (LARGE_LAMBDA_SCALE if luma_pixels >= LARGE_PICTURE else 1.0)


def _zero_conv(ch: int) -> nn.Conv2d:
    conv = nn.Conv2d(ch, ch, 1)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


@dataclass(frozen=True)
class _LatentCoding:
    """How a P frame's latent is coded: qp, tables, the reference's levels (contexts), whether
    table shifts are allowed, the adapted table indices (None: the fitted ones), the RD lambda."""

    latent: LatentCodec
    qp: int
    tables: ProbabilityTables
    previous: np.ndarray
    shifts_allowed: bool
    table: np.ndarray | None
    lam: float

    def encode(self, y: torch.Tensor) -> LatentResult:
        return self.latent.encode(
            y, self.qp, self.tables, self.previous, self.shifts_allowed, self.table, self.lam
        )

    def encode_decided(self, scaled: np.ndarray, levels: np.ndarray, like: torch.Tensor) -> LatentResult:
        """The levels an encoder's search decided, coded as they are."""
        return self.latent.encode_decided(
            scaled, levels, self.qp, self.tables, like, None, self.shifts_allowed, self.previous, self.table
        )

    def quantiser(self, transform: BlockTransform, buckets: np.ndarray) -> BlockQuantiser:
        """A block quantiser deciding every level as `encode` does, priced in `buckets`."""
        table = self.latent.frame_table(self.qp, self.table)
        return BlockQuantiser(
            transform, self.latent, self.qp, self.tables, table, buckets, self.lam, ALL_CHANNELS
        )


class InterCoder(nn.Module):
    """Motion (estimation, search, vector coding) and the conditional residual coder."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.estimator = MotionEstimator(cfg.me_levels, cfg.me_widths, cfg.me_scale)
        self.motion = MotionCoder()
        self.transform = BlockTransform(cfg.blocks, cfg.block_width)
        self.condition_analysis = _zero_conv(CHANNELS)
        self.condition_synthesis = _zero_conv(CHANNELS)
        self.latent = LatentCodec(intra=False, theta=INTER_DEAD_ZONE, lam=INTER_LAMBDA)

    def _embedded(self, prediction: torch.Tensor) -> torch.Tensor:
        return self.transform.embed(F.pixel_unshuffle(prediction, PATCH))

    def analysis(self, x: torch.Tensor, prediction: Prediction) -> torch.Tensor:
        """y = A(x - x~) + C_a(E(x~))."""
        p = prediction.values
        return self.transform.analysis(x - p) + self.condition_analysis(self._embedded(p))

    def synthesis(
        self,
        y_hat: torch.Tensor,
        prediction: Prediction,
        qp: int,
        edges: Edges | None = None,
        modes: np.ndarray | None = None,
        bits: int = 8,
    ) -> torch.Tensor:
        """x_hat = deblock(x~ + S(y_hat + C_s(E(x~)))), the residual rounded to 1/64 levels, the
        intra blocks' shapes added (`modes`, 2.13), the filter on every edge or on `edges`, the
        result on the grid of `bits`-bit levels (10 from 2.14)."""
        return deblock(self._unfiltered(y_hat, prediction, modes), qp, y_hat.dtype, edges, bits)

    def _unfiltered(
        self, y_hat: torch.Tensor, prediction: Prediction, modes: np.ndarray | None
    ) -> torch.Tensor:
        """The reconstruction in 1/64 levels before deblocking."""
        residual = to_fine(
            self.transform.synthesis(y_hat + self.condition_synthesis(self._embedded(prediction.values)))
        )
        if modes is None or not modes.any():
            return prediction.fine + residual
        levels = intra_blocks.levels_of(prediction.fine, modes)
        # modes 0-3 predict alike in both sets: the shapes alone unless a mode takes the neighbours' levels
        mode_set = intra_blocks.mode_set(bool(NEIGHBOUR_LEVELS.levelled(modes).any()))
        return intra_prediction.reconstruct(levels + residual, modes, mode_set)

    @torch.no_grad()
    def flow(self, x: torch.Tensor, reference: InterpolatedFrame) -> torch.Tensor:
        """SpyNet's flow from the reference to frame x, which seeds the searches (not normative)."""
        return self.estimator.flow(x, reference.frame)

    @torch.no_grad()
    def search(
        self,
        x: torch.Tensor,
        reference: InterpolatedFrame,
        qp: int,
        tables: ProbabilityTables,
        flow: torch.Tensor,
        block: int,
        finest: int = 1,
    ) -> np.ndarray:
        """The encoder's vectors for frame x, one per block x block luma pixels, whole multiples
        of `finest` quarter pixels (not normative)."""
        target, step, rate_of = self._search_terms(x, qp, tables)
        return search(target, reference, seed(flow, block), step, rate_of, block, finest)

    def _search_terms(
        self, x: torch.Tensor, qp: int, tables: ProbabilityTables
    ) -> tuple[torch.Tensor, float, RateOf]:
        """What the motion searches match and price: the full-resolution target luma, the
        quantiser step on 8-bit levels, the vectors' bits."""
        return F.pixel_shuffle(x[:, :4], 2)[0, 0], base_step(qp) * 255, self._rate_of(qp, tables)

    def _rate_of(self, qp: int, tables: ProbabilityTables) -> RateOf:
        """The bits of coded vector differences in their context buckets, from the coder's tables."""
        indices = self.motion.qp_indices(qp)

        def rate_of(d: np.ndarray, buckets: np.ndarray) -> np.ndarray:
            k = indices[:, buckets]
            return tables.magnitude_bits(k[0], d[..., 0]) + tables.magnitude_bits(k[1], d[..., 1])

        return rate_of

    @torch.no_grad()
    def flat_blocks(
        self,
        x: torch.Tensor,
        reference: InterpolatedFrame,
        qp: int,
        tables: ProbabilityTables,
        vectors: np.ndarray,
        block: int,
        finest: int = 1,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """(vectors, flat map or None when no block is flat): the blocks whose residual costs less
        to code flat (flat_blocks.coding_cost, plus lambda times the vector bits saved, at the
        inter_lambda the residual's levels are decided with), their vectors made their predictors
        (not normative; INTER_LAMBDA rather than LAMBDA: BD-rate -3.3% against -2.6% on 24
        Cockatoo frames, qps 22-37).

        A flat block's mean is read at its predictor, which depends on the blocks decided flat
        before it: the choice made at the searched vectors is checked again at the predictors it
        gives (the mean read elsewhere is what made a single pass lose, on Cockatoo at qp 27-37)."""

        def flat_cost(fine: torch.Tensor) -> np.ndarray:
            return self._block_costs(x, Prediction.exact(block_means(fine, block), x.dtype), qp, block)

        def predicted(at: np.ndarray) -> Prediction:
            return reference.predict(torch.from_numpy(at).to(x.device), block)

        mc = predicted(vectors)
        mc_bits, zero_bits = vector_costs(vectors, self._rate_of(qp, tables), finest)
        bound = self._block_costs(x, mc, qp, block) + inter_lambda(x) * (mc_bits - zero_bits)
        chosen = FLAT_MARGIN * flat_cost(mc.fine) < bound
        if chosen.any():
            chosen &= FLAT_MARGIN * flat_cost(predicted(to_predictors(vectors, chosen)).fine) < bound
        if not chosen.any():
            return vectors, None
        return to_predictors(vectors, chosen), chosen

    @torch.no_grad()
    def split_blocks(
        self,
        x: torch.Tensor,
        reference: InterpolatedFrame,
        qp: int,
        tables: ProbabilityTables,
        flow: torch.Tensor,
        field: MotionField,
    ) -> MotionField:
        """The field with the blocks split whose four unit vectors, searched on units of half the
        block's side from the block's own, lower the estimated residual cost
        (flat_blocks.coding_cost) by more than lambda times their deltas' bits and a split
        flag's; flat blocks stay whole. Unchanged when no block is split (not normative)."""
        unit, finest = field.block // 2, field.vector_step
        whole = spread_units(field.vectors)
        target, step, rate_of = self._search_terms(x, qp, tables)
        fine = search_units(target, reference, seed(flow, unit), step, rate_of, whole, unit, finest)
        deltas = units_by_block(fine - whole)
        one = self._residual_costs(x, reference, qp, field.vectors, field.block)
        per_unit = np.zeros(whole.shape[:2])  # units outside the picture cost nothing
        costs = self._residual_costs(x, reference, qp, fine, unit)
        per_unit[: costs.shape[0], : costs.shape[1]] = costs
        four = units_by_block(per_unit).sum(axis=-1)
        delta_bits = rate_of(deltas // finest, np.full(deltas.shape[:3], DELTA_BUCKET)).sum(axis=-1)
        split = four + inter_lambda(x) * (delta_bits + SPLIT_FLAG_BITS) < one
        if field.flat is not None:
            split &= ~field.flat
        if not split.any():
            return field
        return replace(field, split=split, deltas=np.where(split[..., None, None], deltas, 0))

    @torch.no_grad()
    def prediction_offsets(
        self, x: torch.Tensor, reference: InterpolatedFrame, qp: int, field: MotionField
    ) -> MotionField:
        """The field with the offsets that bring each plane's prediction to the frame's mean (the
        mean difference, rounded to whole levels) where they lower the residual's estimated
        D + lambda R (flat_blocks.coding_cost), else with zero offsets (not normative). A slow
        change of brightness or colour stays below the DC's quantiser step, frame after frame,
        and is never coded otherwise: the error accumulates. The check keeps a frame whose mean
        moved with its content, not its light, from paying for offsets that its residual undoes."""
        plain = replace(field, offsets=(0, 0, 0))
        prediction = self._prediction(reference, plain, None)
        difference = to_planes((to_fine(x) - prediction.fine).double())  # within 255 levels: pictures
        y, u, v = (round(float(d.mean()) / (1 << FINE_BITS)) for d in difference)
        if not (y or u or v):
            return plain
        cost = self._block_costs(x, _offset(prediction, (y, u, v)), qp, field.block).sum()
        keep = cost < self._block_costs(x, prediction, qp, field.block).sum()
        return replace(field, offsets=(y, u, v)) if keep else plain

    def _residual_costs(
        self, x: torch.Tensor, reference: InterpolatedFrame, qp: int, vectors: np.ndarray, block: int
    ) -> np.ndarray:
        """(Hb, Wb) estimated D + lambda R of each block's residual under motion compensation."""
        prediction = reference.predict(torch.from_numpy(vectors).to(x.device), block)
        return self._block_costs(x, prediction, qp, block)

    def _block_costs(self, x: torch.Tensor, prediction: Prediction, qp: int, block: int) -> np.ndarray:
        """(Hb, Wb) estimated D + lambda R of each motion block's residual, in squared steps."""
        scaled = self.analysis(x, prediction) / self.latent.steps(qp, x)
        per_position = coding_cost(scaled, inter_lambda(x))
        return block_sums(per_position, block // POSITION).sum(dim=0).cpu().numpy()

    @torch.no_grad()
    def encode(
        self,
        x: torch.Tensor,
        reference: InterpolatedFrame,
        qp: int,
        tables: ProbabilityTables,
        previous: np.ndarray,
        field: MotionField,
        refine: Refine | None = None,
        *,
        shifts_allowed: bool,
        skip_edges: bool,
        table: np.ndarray | None = None,
        bits: int = 8,
    ) -> InterOutput:
        """Code frame x with the motion the encoder chose (`search`, `flat_blocks`,
        `split_blocks`, `prediction_offsets`); `refine` is the in-loop filter when used; table shifts allowed or not;
        deblocking on every edge or (`skip_edges`, 2.9) on the motion's edges; `table`: the
        latent's table indices when adapted (2.11), else the fitted ones; `field.modes`: None (no
        intra blocks' map) or an empty map, which `with_intra_blocks` may fill (2.13); `bits`:
        the levels of the reconstruction (10 from 2.14)."""
        assert field.modes is None or not field.modes.any(), "the modes are with_intra_blocks' to decide"
        prediction = self._prediction(reference, field, refine)
        y = self.analysis(x, prediction)
        coding = _LatentCoding(self.latent, qp, tables, previous, shifts_allowed, table, inter_lambda(x))
        latent = coding.encode(y)
        x_hat = self._reconstruction(latent, prediction, field, qp, skip_edges, bits)
        stream = self.motion.encode(field, qp, tables)
        unmoded = None if field.modes is None else Unmoded(prediction, y, coding, skip_edges, bits)
        return InterOutput(x_hat, field, latent, stream, unmoded)

    @torch.no_grad()
    def with_intra_blocks(self, x: torch.Tensor, out: InterOutput) -> InterOutput:
        """Frame x coded as `out` (`encode`'s, with an empty map) but with intra blocks (not
        normative): the macroblocks where the estimate says a mode may pay are decided again
        closed loop (intra_search.search_modes) from out's levels and reconstruction, and the
        levels decided are coded; `out` itself where no macroblock is a candidate."""
        start = out.unmoded
        assert start is not None, "intra blocks need the stream's map"
        coding, prediction = start.coding, start.prediction
        recon = self._unfiltered(out.latent.y_hat, prediction, None).clamp(0, FINE_PEAK)  # as the decoder's
        neighbour_levels = out.field.neighbour_levels
        candidates = self._candidates(x, prediction, recon, coding.qp, neighbour_levels)
        if not candidates.any():
            return out
        levels = self.latent.from_symbols(out.latent.symbols)
        begin = IntraDecision(out.field.modes, self.latent.scaled(start.y, coding.qp), levels, recon)
        bases = torch.cat([prediction.fine, block_means(prediction.fine, MACROBLOCK // 2)])
        quantise = coding.quantiser(self.transform, out.latent.buckets)
        bits_of = partial(intra_blocks.mode_bits, neighbour_levels=neighbour_levels)
        mode_set = intra_blocks.mode_set(neighbour_levels)
        decision = search_modes(x, quantise, begin, bits_of, bases, candidates, mode_set)
        field = replace(out.field, modes=decision.modes)
        latent = coding.encode_decided(decision.scaled, decision.levels, x)
        x_hat = self._reconstruction(latent, prediction, field, coding.qp, start.skip_edges, start.bits)
        return InterOutput(x_hat, field, latent, self.motion.encode(field, coding.qp, coding.tables))

    def _reconstruction(
        self,
        latent: LatentResult,
        prediction: Prediction,
        field: MotionField,
        qp: int,
        skip_edges: bool,
        bits: int,
    ) -> torch.Tensor:
        """The synthesis deblocked on every edge, or (`skip_edges`, 2.9) on the frame's own, on
        the grid of `bits`-bit levels."""
        edges = p_frame_edges(latent.symbols, field) if skip_edges else None
        return self.synthesis(latent.y_hat, prediction, qp, edges, field.modes, bits)

    def _candidates(
        self, x: torch.Tensor, prediction: Prediction, recon: torch.Tensor, qp: int, neighbour_levels: bool
    ) -> np.ndarray:
        """(Hm, Wm) the macroblocks where a mode's prediction (of 2.19's modes with
        `neighbour_levels`), taken from `recon`, has a lower estimated D + lambda R
        (flat_blocks.coding_cost, the map's bits at its sparsest context) than the motion's."""
        hm, wm = macroblock_grid(tuple(recon.shape))
        every = np.ones((hm, wm), dtype=np.int64)
        mode_set = intra_blocks.mode_set(neighbour_levels)
        predictions = intra_blocks.mode_predictions(recon, mode_set)
        grid = np.indices((hm, wm)).reshape(2, -1)
        bits = intra_blocks.mode_bits(np.zeros_like(every), *grid, neighbour_levels).reshape(-1, hm, wm)
        none = self._block_costs(x, prediction, qp, MACROBLOCK)
        means = intra_blocks.levels_of(prediction.fine, every)  # what modes 1-3 add to; 4-7 add to 0
        best = np.full(none.shape, np.inf)
        for m in range(1, len(bits)):
            levels = torch.zeros_like(means) if mode_set.levelled(m) else means
            moded = intra_blocks.predicted(levels, predictions, every * m).clamp(0, FINE_PEAK)
            estimate = self._block_costs(x, Prediction.exact(moded.to(torch.int32), x.dtype), qp, MACROBLOCK)
            best = np.minimum(best, estimate + inter_lambda(x) * (bits[m] - bits[0]))
        return best < none

    @staticmethod
    def _prediction(reference: InterpolatedFrame, field: MotionField, refine: Refine | None) -> Prediction:
        """x~: motion compensation, flat blocks made flat, the offsets added, then the in-loop
        filter when used."""
        vectors = torch.from_numpy(field.unit_vectors()).to(reference.frame.device)
        prediction = reference.predict(vectors, field.unit)
        if field.flat is not None:
            flat = flatten(prediction.fine, field.flat, field.block)
            prediction = Prediction.exact(flat, reference.frame.dtype)
        if field.offsets is not None and any(field.offsets):
            prediction = _offset(prediction, field.offsets)
        if refine is not None:
            prediction = prediction.refined(refine)
        return prediction

    @torch.no_grad()
    def decode(
        self,
        streams: tuple[bytes, ...],
        reference: InterpolatedFrame,
        qp: int,
        tables: ProbabilityTables,
        previous: np.ndarray,
        *,
        block: int,
        has_flat: bool,
        has_split: bool,
        has_shifts: bool,
        skip_edges: bool,
        has_offsets: bool,
        has_half_pel: bool,
        has_intra_blocks: bool,
        has_neighbour_levels: bool,
        refine: Refine | None = None,
        table: np.ndarray | None = None,
        bits: int = 8,
    ) -> InterOutput:
        """Read a P frame's two substreams and rebuild it from the reference (motion blocks of
        `block` luma pixels; `has_flat`, `has_split`: its motion substream holds a flat-block
        map, a split map; `has_shifts`: its latent substream starts with table shifts;
        `skip_edges`: deblocked on the motion's edges alone, 2.9; `has_offsets`: its motion
        substream starts with prediction offsets, 2.10; `has_half_pel`: then the half-pel flag,
        2.18; `has_intra_blocks`: it ends with the intra blocks' map, 2.13, with modes 4-7 when
        `has_neighbour_levels`, 2.19; `table`, `bits`: as
        encode's)."""
        shape = tuple(reference.frame.shape)
        grid = block_grid(shape, block)
        field = self.motion.decode(
            streams[0],
            grid,
            qp,
            tables,
            block=block,
            has_flat=has_flat,
            has_split=has_split,
            has_offsets=has_offsets,
            has_half_pel=has_half_pel,
            macroblocks=macroblock_grid(shape) if has_intra_blocks else None,
            has_neighbour_levels=has_neighbour_levels,
        )
        prediction = self._prediction(reference, field, refine)
        like = prediction.values
        latent = self.latent.decode(
            streams[1], latent_positions(shape), qp, tables, like, previous, has_shifts, table
        )
        return InterOutput(
            self._reconstruction(latent, prediction, field, qp, skip_edges, bits), field, latent
        )
