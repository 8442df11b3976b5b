"""One latent, quantised and coded: steps per qp, the dead-zone quantiser, DC prediction, contexts.

step_c(qp) = w_c * 2^((qp - 4) / 6) / 255        (so that qp means what x264's QP means)
q = sign(y / step) * floor(|y / step| + theta)   (encoder's choice, not normative; DC rounds),
    then each level may move towards zero where that lowers (y/step - q)^2 + lambda * bits
s = q - MED(q) on the DC channels of intra frames (integer, from decoded neighbours), else q
the symbols s are coded in frequency steps with table indices from nvcodec.entropy.context
y_hat = (q - sign(q) * delta_c) * step            (delta_c: the reconstruction offset)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from nvcodec.entropy.coder import ProbabilityTables, SymbolDecoder, SymbolEncoder
from nvcodec.entropy.context import (
    BUCKETS,
    CHANNELS,
    DC_CHANNELS,
    PLANE_OF_CHANNEL,
    PLANES,
    QPS,
    STEP_CHANNELS,
    STEPS,
    Y_CHANNELS,
    activity,
    buckets,
)
from nvcodec.entropy.table_shifts import (
    GROUPS,
    SHIFT_TABLE,
    choose,
    read_shifts,
    shift_step,
    worth_coding,
)
from nvcodec.entropy.tables import SCALES

# Chroma steps relative to luma. Equal slopes under the 6:1:1 weights would give sqrt(6/4) = 1.22
# at high rates, but chroma is smooth and cheap to code: on 24 Foreman frames, BD-rate against
# x264 falls from +111% at 1.22 to +80% at 0.43 and +79% at 0.31 (+84% at 0.22).
CHROMA_WEIGHT = 0.37
SYMBOL_LIMIT = 1 << 30  # the encoder never codes a larger magnitude (bitstream_spec.md, 5.3)
# Twice H.264's lambda = 0.85 * 2^((QP - 12) / 3) = 0.136 Qstep^2, in squared steps: measured on
# 24 Foreman frames, the doubled one saves ~4% BD-rate against x264 (the H.264 one zeroes too little).
LAMBDA = 0.272
ALL_CHANNELS = np.arange(CHANNELS)


def base_step(qp: int) -> float:
    """The step of qp on [0, 1] samples for a unit channel weight: x264's QP step scale."""
    return 2.0 ** ((qp - 4) / 6) / 255


def default_index_table() -> torch.Tensor:
    """A usable start before fitting: dead zone 0.3 family, scale growing with the context."""
    bucket = torch.arange(BUCKETS).view(1, 1, -1).expand(QPS, CHANNELS, BUCKETS)
    return (SCALES + 12 + 3 * bucket).clamp(max=2 * SCALES - 1).to(torch.int16).contiguous()


def _med(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """median(a, b, a + b - c): the edge-detecting predictor from left a, top b, top-left c."""
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    return np.where(c >= hi, lo, np.where(c <= lo, hi, a + b - c))


def med_predict(q: np.ndarray) -> np.ndarray:
    """The median edge predictor of each (P, H, W) value from its left, top and top-left neighbours.

    Row 0 predicts from the left (0 at the origin), column 0 from above; elsewhere
    median(a, b, a + b - c) with a left, b top, c top-left.
    """
    pred = np.zeros_like(q)
    pred[:, 1:, 1:] = _med(q[:, 1:, :-1], q[:, :-1, 1:], q[:, :-1, :-1])
    pred[:, 0, 1:] = q[:, 0, :-1]
    pred[:, 1:, 0] = q[:, :-1, 0]
    return pred


def med_reconstruct(s: np.ndarray) -> np.ndarray:
    """Inverse of q - med_predict(q): values along anti-diagonals, each from the previous ones."""
    _, h, w = s.shape
    q = np.zeros_like(s)
    q[:, 0, :] = np.cumsum(s[:, 0, :], axis=1)
    q[:, :, 0] = np.cumsum(np.concatenate([q[:, :1, 0], s[:, 1:, 0]], axis=1), axis=1)
    for d in range(2, h + w - 1):
        i = np.arange(max(1, d - w + 1), min(h, d))
        j = d - i
        if not i.size:
            continue
        q[:, i, j] = s[:, i, j] + _med(q[:, i, j - 1], q[:, i - 1, j], q[:, i - 1, j - 1])
    return q


@dataclass
class LatentResult:
    """A coded latent: what the synthesis uses, the coded symbols, and the substream."""

    y_hat: torch.Tensor
    symbols: np.ndarray  # (C, H, W) int64, as coded (DC residuals on intra frames)
    stream: bytes | None = None  # encoding only
    shifts: np.ndarray | None = None  # the frame's table shifts (entropy.table_shifts); None: not coded
    buckets: np.ndarray | None = None  # the context bucket of each symbol (C, H, W)


# take(step, buckets) -> the step's symbols, both (channels of the step, H, W)
Take = Callable[[int, np.ndarray], np.ndarray]


@dataclass
class Coded:
    """What the encoder decided for one latent, for whoever observes it (the fit)."""

    qp: int
    scaled: np.ndarray  # y / step, (C, H, W)
    levels: np.ndarray  # q
    symbols: np.ndarray  # s
    buckets: np.ndarray  # the context bucket of each symbol


@dataclass
class Decisions:
    """The encoder's symbols for one latent, step by step, with the tables each group is coded with."""

    symbols: np.ndarray  # s, (C, H, W)
    buckets: np.ndarray  # the context bucket of each symbol
    groups: list[tuple[np.ndarray, np.ndarray]]  # (symbols, table indices) of each step, in order
    shifts: np.ndarray | None  # the table shifts (None: not coded)


def rd_levels(
    scaled: np.ndarray, levels: np.ndarray, bits: Callable[[np.ndarray], np.ndarray], lam: float
) -> np.ndarray:
    """Each level, or the level one step towards zero, or zero: whichever costs least at `lam`
    squared steps per bit."""
    candidates = np.stack([levels, levels - np.sign(levels), np.zeros_like(levels)])
    cost = (scaled - candidates) ** 2 + lam * bits(candidates)
    return np.take_along_axis(candidates, np.argmin(cost, axis=0)[None], axis=0)[0]


class LatentCodec(nn.Module):
    """Quantises and codes a 96-channel latent at 1/8 of the frame size."""

    def __init__(self, intra: bool, theta: float, lam: float) -> None:
        super().__init__()
        self.intra = intra
        self.theta = theta
        self.lam = lam  # the encoder's lambda of rd_levels, in squared steps per bit
        weights = torch.ones(CHANNELS)
        weights[Y_CHANNELS:] = CHROMA_WEIGHT
        self.log_weight = nn.Parameter(weights.log())
        self.recon_offset = nn.Parameter(torch.zeros(CHANNELS))
        self.register_buffer("index_table", default_index_table())
        self.observer: Callable[[Coded], None] | None = None

    def steps(self, qp: int, like: torch.Tensor) -> torch.Tensor:
        """(1, C, 1, 1) quantiser steps of qp, in the dtype and device of `like`."""
        step = torch.exp(self.log_weight.float()) * base_step(qp)
        return step.view(1, -1, 1, 1).to(device=like.device, dtype=like.dtype)

    def scaled(self, y: torch.Tensor, qp: int) -> np.ndarray:
        """y / step in fp32 on the CPU, (C, H, W)."""
        return (y.detach().float() / self.steps(qp, y.float()).detach())[0].cpu().numpy()

    def quantize(self, scaled: np.ndarray) -> np.ndarray:
        """Dead-zone quantisation; DC channels of intra frames round."""
        theta = np.full((CHANNELS, 1, 1), self.theta, dtype=np.float32)
        if self.intra:
            theta[DC_CHANNELS] = 0.5
        mag = np.minimum(np.floor(np.abs(scaled) + theta), SYMBOL_LIMIT)
        return (np.sign(scaled) * mag).astype(np.int64)

    @torch.no_grad()
    def dequantize(self, q: np.ndarray, qp: int, like: torch.Tensor) -> torch.Tensor:
        t = torch.from_numpy(q).unsqueeze(0).to(device=like.device, dtype=like.dtype)
        offset = self.recon_offset.detach().view(1, -1, 1, 1).to(device=like.device, dtype=like.dtype)
        return (t - torch.sign(t) * offset) * self.steps(qp, like)

    def to_symbols(self, q: np.ndarray, med_dc: bool = True) -> np.ndarray:
        """The symbols of levels q: an intra frame's DC levels as MED residuals, unless the
        pixels predict them (`med_dc` false: version 2.15's predicted intra frames)."""
        s = q.copy()
        if self.intra and med_dc:
            s[DC_CHANNELS] -= med_predict(q[DC_CHANNELS])
        return s

    def from_symbols(self, s: np.ndarray, med_dc: bool = True) -> np.ndarray:
        q = s.copy()
        if self.intra and med_dc:
            q[DC_CHANNELS] = med_reconstruct(s[DC_CHANNELS])
        return q

    def _steps(
        self, shape: tuple[int, int], previous: np.ndarray | None, take: Take
    ) -> tuple[np.ndarray, np.ndarray]:
        """Run the coding steps; `take` gets each step's context buckets and returns its symbols.
        Returns the symbols and the bucket of each, both (C, H, W)."""
        symbols = np.zeros((CHANNELS, *shape), dtype=np.int64)
        seen = np.zeros_like(symbols)
        current = np.zeros((3, *shape), dtype=np.int64)
        before = activity(previous, ALL_CHANNELS) if previous is not None and not self.intra else current
        for j in range(STEPS):
            bucket = buckets(before if j == 0 else current)[PLANE_OF_CHANNEL[STEP_CHANNELS[j]]]
            symbols[STEP_CHANNELS[j]] = take(j, bucket)
            seen[STEP_CHANNELS[j]] = bucket
            current = current + activity(symbols, STEP_CHANNELS[j])
        return symbols, seen

    def fitted(self, qp: int) -> np.ndarray:
        """(C, BUCKETS) the fitted table indices of qp."""
        return self.index_table[qp].cpu().numpy().astype(np.int64)

    def frame_table(self, qp: int, table: np.ndarray | None) -> np.ndarray:
        """The frame's (C, BUCKETS) table indices: `table` when adapted (2.11), else the fitted ones."""
        return self.fitted(qp) if table is None else table

    @staticmethod
    def _indices(
        table: np.ndarray, j: int, bucket: np.ndarray, shifts: np.ndarray | None = None
    ) -> np.ndarray:
        """The table index of each symbol of step j from the frame's (C, BUCKETS) table."""
        k = table[STEP_CHANNELS[j][:, None, None], bucket]
        return k if shifts is None else shift_step(k, shifts, j, PLANE_OF_CHANNEL[STEP_CHANNELS[j]])

    @torch.no_grad()
    def encode(
        self,
        y: torch.Tensor,
        qp: int,
        tables: ProbabilityTables,
        previous: np.ndarray | None = None,
        shifts_allowed: bool = False,
        table: np.ndarray | None = None,
        lam: float | None = None,
    ) -> LatentResult:
        """Quantise and code y; returns the decoder's own y_hat and the substream, with table
        shifts where they are allowed and the encoder expects them to save bits; `table`: the
        frame's (C, BUCKETS) table indices when not the fitted ones (adaptive tables); `lam`: the
        RD levels' lambda when not the codec's own."""
        scaled = self.scaled(y, qp)
        decided = self._decide(
            scaled, self.quantize(scaled), qp, tables, previous, shifts_allowed, table, lam=lam
        )
        return self._write(y, scaled, qp, tables, decided)

    def contexts(
        self,
        scaled: np.ndarray,
        levels: np.ndarray,
        qp: int,
        tables: ProbabilityTables,
        rd: bool = True,
        med_dc: bool = True,
    ) -> np.ndarray:
        """(C, H, W) the context bucket of each symbol of `levels` coded as encode() codes them
        (no shifts; without `rd`, the levels as they are, as encode_decided codes them): what an
        encoder that decides levels itself prices them with; `med_dc`: as to_symbols'."""
        return self._decide(scaled, levels, qp, tables, None, adapt=False, rd=rd, med_dc=med_dc).buckets

    @torch.no_grad()
    def encode_decided(
        self,
        scaled: np.ndarray,
        levels: np.ndarray,
        qp: int,
        tables: ProbabilityTables,
        like: torch.Tensor,
        encoder: SymbolEncoder | None = None,
        shifts_allowed: bool = False,
        previous: np.ndarray | None = None,
        table: np.ndarray | None = None,
        med_dc: bool = True,
    ) -> LatentResult:
        """Code levels whose RD decisions the caller made (intra prediction's), after what
        `encoder` holds when given; `like` gives the device and dtype of y_hat; `previous`,
        `table`: as encode's; `med_dc`: as to_symbols'."""
        decided = self._decide(
            scaled, levels, qp, tables, previous, shifts_allowed, table, rd=False, med_dc=med_dc
        )
        return self._write(like, scaled, qp, tables, decided, encoder, med_dc)

    def _decide(
        self,
        scaled: np.ndarray,
        levels: np.ndarray,
        qp: int,
        tables: ProbabilityTables,
        previous: np.ndarray | None,
        adapt: bool,
        table: np.ndarray | None = None,
        rd: bool = True,
        med_dc: bool = True,
        lam: float | None = None,
    ) -> Decisions:
        """The symbols to code, step by step, each step's RD decisions made with its tables (with
        `adapt`, shifted as chosen on the step's levels before those decisions, then chosen again
        on the decided ones, and decided again without shifts when they would not pay for
        themselves; without `rd`, the levels as they are; `lam`: as encode's)."""
        lam = self.lam if lam is None else lam
        s = self.to_symbols(levels, med_dc)
        frame_table = self.frame_table(qp, table)
        shifts = np.zeros(GROUPS, dtype=np.int64)
        groups: list[tuple[np.ndarray, np.ndarray]] = []
        gains: list[float] = []

        def take(j: int, bucket: np.ndarray) -> np.ndarray:
            channels = STEP_CHANNELS[j]
            planes = PLANE_OF_CHANNEL[channels]
            group = slice(j * PLANES, (j + 1) * PLANES)
            values = s[channels]
            unshifted = self._indices(frame_table, j, bucket)
            gain = 0.0
            if adapt:
                shifts[group], gain = choose(tables, unshifted, values, planes)
            k = shift_step(unshifted, shifts, j, planes)
            if rd and not (self.intra and j == 0):  # intra DC symbols are MED residuals: kept
                values = rd_levels(scaled[channels], values, lambda c: tables.magnitude_bits(k, c), lam)
                if adapt:  # chosen again on the decided levels: the shifts coded
                    shifts[group], gain = choose(tables, unshifted, values, planes)
                    k = shift_step(unshifted, shifts, j, planes)
            gains.append(gain)
            groups.append((values, k))
            return values

        s, seen = self._steps(s.shape[1:], previous, take)
        if adapt and not worth_coding(tables, sum(gains)):
            return self._decide(
                scaled, levels, qp, tables, previous, adapt=False, table=table, rd=rd, med_dc=med_dc, lam=lam
            )
        return Decisions(s, seen, groups, shifts if adapt else None)

    def _write(
        self,
        y: torch.Tensor,
        scaled: np.ndarray,
        qp: int,
        tables: ProbabilityTables,
        decided: Decisions,
        encoder: SymbolEncoder | None = None,
        med_dc: bool = True,
    ) -> LatentResult:
        """The substream of the decided symbols (the shifts first when there are any), after
        what `encoder` holds; `med_dc`: as to_symbols'."""
        if encoder is None:
            encoder = SymbolEncoder(tables)
        if decided.shifts is not None:
            encoder.add(decided.shifts, np.full(GROUPS, SHIFT_TABLE))
        for values, k in decided.groups:
            encoder.add(values, k)
        q = self.from_symbols(decided.symbols, med_dc)
        if self.observer is not None:
            self.observer(Coded(qp, scaled, q, decided.symbols, decided.buckets))
        y_hat = self.dequantize(q, qp, y)
        return LatentResult(y_hat, decided.symbols, encoder.finish(), decided.shifts, decided.buckets)

    @torch.no_grad()
    def decode(
        self,
        stream: bytes,
        shape: tuple[int, int],
        qp: int,
        tables: ProbabilityTables,
        like: torch.Tensor,
        previous: np.ndarray | None = None,
        has_shifts: bool = False,
        table: np.ndarray | None = None,
    ) -> LatentResult:
        """Read a latent of (H, W) positions; `like` gives the device and dtype of y_hat;
        `has_shifts`: the substream starts with table shifts; `table`: as encode's."""
        decoder = SymbolDecoder(tables, stream)
        latent = self.read(decoder, shape, qp, like, previous, has_shifts, table)
        decoder.finish()
        return latent

    def read(
        self,
        decoder: SymbolDecoder,
        shape: tuple[int, int],
        qp: int,
        like: torch.Tensor,
        previous: np.ndarray | None = None,
        has_shifts: bool = False,
        table: np.ndarray | None = None,
        med_dc: bool = True,
    ) -> LatentResult:
        """Read a latent from where `decoder` stands (decode; `med_dc`: as to_symbols')."""
        shifts = read_shifts(decoder) if has_shifts else None
        frame_table = self.frame_table(qp, table)
        s, seen = self._steps(
            shape, previous, lambda j, bucket: decoder.read(self._indices(frame_table, j, bucket, shifts))
        )
        q = self.from_symbols(s, med_dc)
        return LatentResult(self.dequantize(q, qp, like), s, shifts=shifts, buckets=seen)


def latent_positions(frame_shape: tuple[int, ...]) -> tuple[int, int]:
    """(H, W) of the latent for a frame tensor (N, 6, H/2, W/2)."""
    return frame_shape[2] // 4, frame_shape[3] // 4
