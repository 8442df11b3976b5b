"""Fit the entropy model to real symbols: the rate-only fit that gradient training starts from.

With the transform, the steps and the quantiser fixed, the symbols hardly depend on the tables
(only the motion search weighs vector bits), so the encoder codes the training pictures once per
qp, the symbols are counted per (qp, channel, context bucket), and each cell gets the table that
codes its counts in the fewest bits. The bits predicted this way are exact code lengths; the
script checks them against the real substream sizes of held-out frames.

    python -m nvcodec.train.fit --out runs/fit.safetensors [--pack packs/train.npz]
    python -m nvcodec.train.fit --refit motion --start weights/base.safetensors --out runs/refit.safetensors
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from nvcodec.bitstream import FrameFlags, FrameRecord, FrameType
from nvcodec.codec.encoder import Encoder
from nvcodec.codec.frame_loop import motion_block
from nvcodec.codec.schedule import CodingParams, ToolMode
from nvcodec.entropy.coder import ProbabilityTables, SymbolDecoder
from nvcodec.entropy.context import BUCKETS, CHANNELS, QPS, STEP_CHANNELS
from nvcodec.entropy.tables import SCALES, build_tables, scale_of
from nvcodec.frame import Frame, VideoInfo
from nvcodec.models.config import get_config
from nvcodec.models.intra_prediction import BLOCK_MODES, macroblock_grid, map_bits, read_modes
from nvcodec.models.latent_codec import Coded, LatentCodec
from nvcodec.models.layout import frame_to_tensor
from nvcodec.models.motion import (
    DELTA_BUCKET,
    OFFSET_TABLE,
    VECTOR_BUCKETS,
    MotionField,
    block_grid,
    field_buckets,
    median_prediction,
)
from nvcodec.models.nvc import NvcModel
from nvcodec.models.sample_offsets import parameter_bits
from nvcodec.outputs import write_file
from nvcodec.train.data import Pack
from nvcodec.train.packed import unpack_frame
from nvcodec.weights import Weights, load_weights, save_weights

HIST = 512  # magnitudes counted exactly below this; larger ones are counted as HIST - 1
PRIOR_WEIGHT = 8.0  # pseudo-counts from the cell's step and bucket, for sparse cells
SPYNET = Path(__file__).resolve().parents[4] / "shared" / "data" / "pretrained" / "spynet"
INTER_QPS = (0, 6, 12, 18, 24, 30, 36, 42, 48, 54, 60)
KINDS = ("intra", "inter")
REFITS = {
    "intra": "refit: the intra tables and offsets refitted on intra-predicted symbols, the rest unchanged",
    "motion": "refit: the vector tables refitted on the vectors of clips coded with every tool, the rest unchanged",
}
MIN_COUNT = 200  # symbols a qp needs before it is fitted on its own
FLUSH_BITS = 32  # the ANS coder's final state word, once per substream


class Counts:
    """Histograms of symbol magnitudes per (kind, qp, channel, bucket) and of vector differences,
    and the sums that give each channel's reconstruction offset."""

    def __init__(self) -> None:
        self.latent = np.zeros((len(KINDS), QPS, CHANNELS, BUCKETS, HIST), dtype=np.int64)
        self.vectors = np.zeros((QPS, 2, VECTOR_BUCKETS, HIST), dtype=np.int64)
        self.offset_sum = np.zeros((len(KINDS), CHANNELS))
        self.offset_count = np.zeros((len(KINDS), CHANNELS))
        self.substreams = 0
        self.mode_map_bits = 0.0  # coded with fixed probabilities, not with the fitted tables
        self.sample_offset_bits = 0.0  # so are the sample offsets' parameters (2.17)
        self.prediction_offsets = np.zeros(HIST, dtype=np.int64)  # magnitudes, coded with OFFSET_TABLE

    def observer(self, kind: int) -> Callable[[Coded], None]:
        """What a latent codec of that kind calls with each coded latent."""

        def observe(coded: Coded) -> None:
            mag = np.minimum(np.abs(coded.symbols), HIST - 1)
            channel = np.broadcast_to(np.arange(CHANNELS).reshape(-1, 1, 1), mag.shape)
            np.add.at(self.latent[kind, coded.qp], (channel.ravel(), coded.buckets.ravel(), mag.ravel()), 1)
            nonzero = coded.levels != 0
            gap = np.where(nonzero, np.abs(coded.levels) - np.abs(coded.scaled), 0.0)
            self.offset_sum[kind] += gap.sum(axis=(1, 2))
            self.offset_count[kind] += nonzero.sum(axis=(1, 2))

        return observe

    def add_vectors(self, qp: int, field: MotionField) -> None:
        """Count what a field codes with the vector tables: the differences of its blocks that are
        not flat, in the contexts the motion coder uses, and its split blocks' deltas (in half
        pixels in a half-pel frame, as coded); and its
        prediction offsets' magnitudes, which OFFSET_TABLE codes."""
        step = field.vector_step
        diff = (field.vectors - median_prediction(field.vectors)) // step
        coded = np.ones(diff.shape[:2], dtype=bool) if field.flat is None else ~field.flat
        self._count(qp, diff[coded], field_buckets(diff)[coded])
        if field.split is not None:
            deltas = field.deltas[field.split].reshape(-1, 2) // step
            self._count(qp, deltas, np.full(len(deltas), DELTA_BUCKET))
        if field.offsets is not None:
            np.add.at(self.prediction_offsets, np.minimum(np.abs(field.offsets), HIST - 1), 1)

    def _count(self, qp: int, values: np.ndarray, buckets: np.ndarray) -> None:
        """Count (n, 2) vector components coded with the tables of `buckets` (n,)."""
        mag = np.minimum(np.abs(values), HIST - 1)
        for c in range(2):
            np.add.at(self.vectors[qp, c], (buckets, mag[:, c]), 1)

    def offsets(self, kind: int) -> np.ndarray:
        """Per channel, the mean distance from a level to the values quantised to it (centroid)."""
        return self.offset_sum[kind] / np.maximum(self.offset_count[kind], 1)


@contextmanager
def observed(model: NvcModel, counts: Counts) -> Iterator[None]:
    """Within the block, both latent codecs report what they code to `counts`."""
    codecs = (model.intra.latent, model.inter.latent)
    for kind, codec in enumerate(codecs):
        codec.observer = counts.observer(kind)
    try:
        yield
    finally:
        for codec in codecs:
            codec.observer = None


def cost_matrix(tables: ProbabilityTables) -> np.ndarray:
    """(tables, HIST) bits of a symbol of each magnitude under each table."""
    return tables.magnitude_bits(np.arange(len(tables))[:, None], np.arange(HIST)[None])


def shifted(k: int, qps: int) -> int:
    """Table k moved to the scale expected `qps` qp higher (steps grow 2^(1/6) per qp)."""
    family, index = divmod(k, SCALES)
    per_qp = np.log(2) / 6 / np.log(scale_of(1) / scale_of(0))
    return family * SCALES + int(np.clip(round(index - per_qp * qps), 0, SCALES - 1))


def best_tables(hist: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """The argmin table of each histogram row (..., HIST)."""
    return np.argmin(hist.reshape(-1, HIST) @ cost.T, axis=1).reshape(hist.shape[:-1])


def fit_latent(hist: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """(QPS, C, BUCKETS) table indices from one kind's (QPS, C, BUCKETS, HIST) counts."""
    fitted = np.zeros(hist.shape[:3], dtype=np.int64)
    have = hist.sum(axis=(1, 2, 3)) >= MIN_COUNT
    for qp in np.flatnonzero(have):
        h = hist[qp].astype(np.float64)
        prior = np.zeros_like(h)
        for channels in STEP_CHANNELS:
            pooled = h[channels].sum(axis=0) + h.sum(axis=(0, 1)) / (h.sum() + 1) * 1e-3 + 1e-9
            prior[channels] = pooled / pooled.sum(axis=-1, keepdims=True) * PRIOR_WEIGHT
        fitted[qp] = best_tables(h + prior, cost)
    return _fill_qps(fitted, have)


def _fill_qps(fitted: np.ndarray, have: np.ndarray, follow_steps: bool = True) -> np.ndarray:
    """Qps without data take the nearest fitted qp's tables, moved to their step size if they
    `follow_steps` (latent symbols do; vectors, in quarter pixels, do not)."""
    known = np.flatnonzero(have)
    if not known.size:
        raise ValueError("no symbols to fit")
    for qp in np.flatnonzero(~have):
        near = known[np.argmin(np.abs(known - qp))]
        move = qp - near if follow_steps else 0
        fitted[qp] = np.vectorize(lambda k, d=move: shifted(int(k), d))(fitted[near])
    return fitted


def fit_vectors(hist: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """(QPS, 2, buckets) table indices of the vector differences from their counts."""
    have = hist.sum(axis=(1, 2, 3)) >= MIN_COUNT
    return _fill_qps(best_tables(hist.astype(np.float64) + 1e-3, cost), have, follow_steps=False)


def count_intra(model: NvcModel, frames: list[Frame], counts: Counts, qps: range) -> None:
    """Count the intra symbols of each picture at each qp, coded with intra prediction as the
    encoder codes them, the newest version's modes (no table shifts: the fit is what the shifts
    start from)."""
    tables = model.probability_tables()
    with observed(model, counts), torch.no_grad():
        for frame in tqdm(frames, desc="intra", unit="image", file=sys.stderr):
            x = frame_to_tensor(frame)
            for qp in qps:
                model.intra.encode(x, qp, tables, prediction=BLOCK_MODES)


# The full fit codes without trying tools (each trial would be counted in the latent's symbols):
# 16x16 motion blocks, no flat blocks, no filter, no enhancement; the latents coded with the fitted
# tables themselves (no shifts, no adaptation); intra frames are predicted, as count_intra codes them. The motion refit counts vectors from the records alone, so it codes as
# users do, every tool decided by the encoder.
NO_TRIALS = CodingParams(
    filter=ToolMode.OFF,
    enhance=ToolMode.OFF,
    large_blocks=ToolMode.OFF,
    flat_blocks=ToolMode.OFF,
    table_shifts=ToolMode.OFF,
    split_blocks=ToolMode.OFF,
    six_tap=ToolMode.OFF,
    adaptive_tables=ToolMode.OFF,
)
AS_USERS_CODE = CodingParams()


def encode_clip(
    weights: Weights, clip: list[Frame], qp: int, counts: Counts, tools: CodingParams = NO_TRIALS
) -> int:
    """Code a clip with the real encoder and count its symbols; returns the substream bits."""
    info = VideoInfo(clip[0].width, clip[0].height, Fraction(25), len(clip))
    encoder = Encoder(weights, replace(tools, qp=qp), info)
    bits = 0
    with observed(weights.model, counts):
        for frame in clip:
            rec = encoder.encode(frame).record
            bits += 8 * sum(len(s) for s in rec.substreams)
            counts.substreams += len(rec.substreams)
            planes = encoder.sample_offsets_of(rec)[0]  # None before 2.17
            counts.sample_offset_bits += 0 if planes is None else parameter_bits(planes)
            modes = encoder.intra_modes
            if rec.frame_type == FrameType.INTRA and modes is not None:
                grid = macroblock_grid(tuple(encoder.reference.picture.frame.shape), modes.side)
                latent = encoder.sample_offsets_of(rec)[1][0]
                counts.mode_map_bits += map_bits(
                    read_modes(SymbolDecoder(encoder.tables, latent), grid, modes), modes
                )
            if rec.frame_type == FrameType.INTER:
                counts.add_vectors(rec.qp, coded_field(weights, encoder, rec))
    return bits


def coded_field(weights: Weights, encoder: Encoder, rec: FrameRecord) -> MotionField:
    """The motion field a P frame's record holds, read back as a decoder reads it."""
    block = motion_block(rec.flags)
    return weights.model.inter.motion.decode(
        rec.substreams[0],
        block_grid(tuple(encoder.reference.picture.frame.shape), block),
        rec.qp,
        encoder.tables,
        block=block,
        has_flat=bool(rec.flags & FrameFlags.FLAT_BLOCKS),
        has_split=bool(rec.flags & FrameFlags.SPLIT_BLOCKS),
        has_offsets=encoder.header.prediction_offsets,
        has_half_pel=encoder.header.half_pel,
        macroblocks=macroblock_grid(tuple(encoder.reference.picture.frame.shape))
        if encoder.header.intra_blocks
        else None,
        has_neighbour_levels=encoder.header.neighbour_levels,
    )


def fit_codec(codec: LatentCodec, counts: Counts, kind: int, cost: np.ndarray) -> None:
    """Give a latent codec the fitted tables and reconstruction offsets of its kind."""
    with torch.no_grad():
        codec.index_table.copy_(torch.from_numpy(fit_latent(counts.latent[kind], cost)))
        codec.recon_offset.copy_(torch.from_numpy(counts.offsets(kind)))


def count_inter(
    weights: Weights,
    clips: list[list[Frame]],
    counts: Counts,
    qps: tuple[int, ...],
    tools: CodingParams = NO_TRIALS,
) -> None:
    with tqdm(total=len(clips) * len(qps), desc="inter", unit="clip", file=sys.stderr) as bar:
        for qp in qps:
            for clip in clips:
                encode_clip(weights, clip, qp, counts, tools)
                bar.update()


def predicted_bits(model: NvcModel, counts: Counts, cost: np.ndarray) -> float:
    """The bits the model's tables give the counted symbols (exact code lengths), and the mode
    maps'."""
    total = 0.0
    for kind, codec in enumerate((model.intra.latent, model.inter.latent)):
        table = codec.index_table.numpy().astype(np.int64)
        total += float((counts.latent[kind] * cost[table]).sum())
    table = model.inter.motion.index_table.numpy().astype(np.int64)
    fixed = counts.mode_map_bits + counts.sample_offset_bits
    fixed += float((counts.prediction_offsets * cost[OFFSET_TABLE]).sum())
    return total + float((counts.vectors * cost[table]).sum()) + fixed


def check_rates(weights: Weights, clip: list[Frame], cost: np.ndarray) -> dict[int, dict[str, float]]:
    """Predicted against coded substream bits on held-out frames, at three qps; the coder adds
    its final state (one 32-bit word) to each substream and fills its last word, which no symbol
    model accounts for."""
    out = {}
    for qp in (12, 32, 52):
        counts = Counts()
        coded = encode_clip(weights, clip, qp, counts)
        predicted = predicted_bits(weights.model, counts, cost)
        flush = FLUSH_BITS * counts.substreams
        out[qp] = {
            "predicted": round(predicted),
            "coded": coded,
            "substreams": counts.substreams,
            "gap_percent": round(100 * (coded / predicted - 1), 2),
            "gap_percent_beyond_flush": round(100 * ((coded - flush) / predicted - 1), 2),
        }
    return out


def fit_tables(
    weights: Weights,
    images: list[Frame],
    clips: list[list[Frame]],
    inter_qps: tuple[int, ...],
    args: argparse.Namespace,
) -> None:
    """Count and fit the tables `args.refit` names, every table without it (`args.passes` times:
    the encoder's decisions weigh bits, so later passes see fitted tables)."""
    model = weights.model
    cost = cost_matrix(model.probability_tables())
    for _ in range(args.passes):
        counts = Counts()
        if args.refit in (None, "intra"):
            count_intra(model, images, counts, range(0, QPS, args.intra_qp_step))
            fit_codec(model.intra.latent, counts, 0, cost)
        if args.refit is None:
            count_inter(weights, clips, counts, inter_qps)
            fit_codec(model.inter.latent, counts, 1, cost)
        elif args.refit == "motion":
            count_inter(weights, clips, counts, inter_qps, AS_USERS_CODE)
        if args.refit in (None, "motion"):
            model.inter.motion.index_table.copy_(torch.from_numpy(fit_vectors(counts.vectors, cost)))


def start_weights(args: argparse.Namespace) -> tuple[Weights, dict]:
    """The model to fit (a new one, or the weights to refit, given today's full set of tables)
    and what it started from."""
    if args.refit:
        weights = load_weights(args.start)
        weights.model.use_tables(*(torch.from_numpy(t) for t in build_tables()))
        manifest = Path(args.start).parent / "manifest.json"
        known = json.loads(manifest.read_text()) if manifest.is_file() else {}
        sha = weights.sha256.hex()
        return weights, {
            "sha256": sha,
            "history": known.get("history") if known.get("sha256") == sha else None,
        }
    model = NvcModel(get_config(args.config)).eval()
    if args.config != "tiny":
        model.inter.estimator.spynet.load_pretrained(args.spynet)
    return Weights(model, b"\0" * 32, "fit"), {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nvcodec.train.fit", description=__doc__.splitlines()[0])
    parser.add_argument("--pack", default="packs/train.npz")
    parser.add_argument("--out", required=True)
    parser.add_argument("--config", default="base")
    parser.add_argument("--spynet", default=str(SPYNET))
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--images", type=int, default=80)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--passes", type=int, default=2, help="count and fit this many times")
    parser.add_argument("--intra-qp-step", type=int, default=3, help="fit intra symbols every N qps")
    parser.add_argument("--inter-qps", default=",".join(map(str, INTER_QPS)), help="base qps of the clips")
    parser.add_argument(
        "--refit",
        choices=REFITS,
        help="refit only these tables of the --start weights (intra: with the intra offsets); the rest stays",
    )
    parser.add_argument("--start", metavar="WEIGHTS", help="the weights --refit starts from")
    args = parser.parse_args(argv)
    if (args.refit is None) != (args.start is None):
        parser.error("--refit and --start go together")
    torch.set_num_threads(args.threads)
    started = time.time()
    pack = Pack(args.pack)
    weights, started_from = start_weights(args)
    images = [unpack_frame(p) for p in (pack.photos + pack.crops)[: args.images]]
    refit = args.refit is not None
    clips = (
        []
        if args.refit == "intra"
        else [[unpack_frame(f) for f in clip] for clip in pack.clips[: args.clips]]
    )
    inter_qps = () if args.refit == "intra" else tuple(int(q) for q in args.inter_qps.split(","))
    fit_tables(weights, images, clips, inter_qps, args)
    check = check_rates(weights, pack.eval_frames(), cost_matrix(weights.model.probability_tables()))
    sha = save_weights(weights.model, args.out)
    summary = {
        "stage": REFITS[args.refit]
        if refit
        else "fit: rate-only fit of the entropy tables, no gradient training",
        "data": pack.summary(),
        "seconds": round(time.time() - started),
        "images": len(images),
        "clips": len(clips),
        "inter_qps": list(inter_qps),
        "intra_qp_step": args.intra_qp_step,
        "passes": args.passes,
        "rate_check_eval_frames": check,
        "sha256": sha,
    }
    if started_from:
        summary["started_from"] = started_from
    text = json.dumps(summary, indent=1)
    write_file(Path(args.out).with_suffix(".json"), text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
