"""What ConFRE's two refiners are trained and evaluated on: what each sees, and the sources.

The out-of-loop enhancement sees decoded pictures; the in-loop filter sees motion-compensated
predictions. The codec (enhancement off) codes the pack's pictures and clips once, and the first
frames of a held-aside clip at three qps, and keeps what the stage's refiner sees with the source
of each frame; both are cached as .npz in the run folder, with a fingerprint of what made them,
so that a run knows when the codec under it has changed.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from nvcodec.bitstream import VERSION, FrameRecord, FrameType
from nvcodec.codec.schedule import CodingParams, ToolMode
from nvcodec.codec.segments import SegmentedEncoder
from nvcodec.errors import InputError
from nvcodec.frame import Frame, VideoInfo
from nvcodec.io import open_reader
from nvcodec.models.blocks import ResidualRefiner
from nvcodec.models.layout import FINE_PEAK, to_fine
from nvcodec.models.nvc import NvcModel
from nvcodec.outputs import write_file
from nvcodec.pipeline import coded_frames
from nvcodec.train.data import Pack
from nvcodec.train.pack import DEFAULT_DATA
from nvcodec.train.packed import pack_frame, unpack_frame
from nvcodec.weights import Weights, release_tensors

TRAIN_QPS = (17, 22, 27, 32, 37, 42, 47)  # around the benchmark's 22..42, where BD-rate is measured
CLIP_QPS = 2  # each clip window is coded at this many of TRAIN_QPS
EVAL_CLIP = DEFAULT_DATA / "video" / "foreman_352x288_25fps.h264"  # frames 0..95: never trained on
EVAL_FRAMES = 32
EVAL_QPS = (27, 32, 37)
PATCH = 64  # half-size positions: 128x128 luma pixels


@dataclass(frozen=True)
class Stage:
    """One of ConFRE's refiners as a training stage."""

    name: str  # the run folder's default name and --stage
    module: str  # the refiner's attribute in NvcModel
    sees: str  # what the refiner is applied to
    measure: str  # how the evaluation's PSNR-YUV is computed (part of the evaluation set's fingerprint)
    independent: tuple[str, ...]  # tensor prefixes that do not change what the refiner sees

    def refiner(self, model: NvcModel) -> ResidualRefiner:
        return getattr(model, self.module)


ENHANCE = Stage("enhance", "enhancer", "decoded pictures", "metrics.frame_psnr", ("enhancer.",))
FILTER = Stage(
    "filter",
    "context_filter",
    "motion-compensated predictions",
    "layout.weighted_mse of the prediction",  # predictions are in 1/64 levels, not pictures
    ("enhancer.", "context_filter."),
)
STAGES = {stage.name: stage for stage in (ENHANCE, FILTER)}


def codec_fingerprint(model: NvcModel, stage: Stage) -> str:
    """SHA-256 (16 hex digits) of every released tensor that decides what the stage's refiner
    sees (for the enhancement: all but the enhancer; for the in-loop filter: all but both)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(release_tensors(model).items()):
        if not name.startswith(stage.independent):
            digest.update(name.encode())
            digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()[:16]


def coder_identity(weights: Weights, stage: Stage) -> dict:
    """What decides the cached data of a stage: the codec's fingerprint and the bitstream version
    its encoder writes (a new coding tool changes the pictures under the same weights)."""
    return {"codec": codec_fingerprint(weights.model, stage), "bitstream": f"{VERSION[0]}.{VERSION[1]}"}


def floats(a: np.ndarray) -> torch.Tensor:
    """Stored samples as float32 in [0, 1]: uint8 levels, or uint16 1/64 levels (predictions)."""
    scale = FINE_PEAK if a.dtype == np.uint16 else 255
    return torch.from_numpy(a.astype(np.float32)) / scale


def fine_levels(x: torch.Tensor) -> np.ndarray:
    """A (6, h, w) prediction on [0, 1] as uint16 1/64 levels, as the codec rounds it."""
    return to_fine(x).clamp(0, FINE_PEAK).to(torch.int32).cpu().numpy().astype(np.uint16)


def _save_npz(path: Path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8), **arrays)
    write_file(path, buffer.getvalue())


def _meta(z: np.lib.npyio.NpzFile) -> dict:
    return json.loads(z["meta"].tobytes()) if "meta" in z.files else {}


def _fit(patch: np.ndarray) -> np.ndarray:
    """A patch padded by replication to PATCH x PATCH (pictures smaller than a patch)."""
    ph, pw = PATCH - patch.shape[1], PATCH - patch.shape[2]
    return np.pad(patch, ((0, 0), (0, ph), (0, pw)), mode="edge") if ph or pw else patch


@dataclass
class Pairs:
    """What a refiner sees (uint8 pictures or uint16 predictions) and the sources (uint8), all
    (6, h, w) in the packed layout."""

    inputs: list[np.ndarray]
    sources: list[np.ndarray]
    meta: dict  # what coded them: the stage, coder_identity, the qps, the pack

    def save(self, path: Path) -> None:
        arrays = {f"in_{i}": d for i, d in enumerate(self.inputs)}
        arrays |= {f"src_{i}": s for i, s in enumerate(self.sources)}
        _save_npz(path, arrays, self.meta)

    @classmethod
    def load(cls, path: Path) -> Pairs:
        with np.load(path) as z:
            count = sum(k.startswith("in_") for k in z.files)
            return cls([z[f"in_{i}"] for i in range(count)], [z[f"src_{i}"] for i in range(count)], _meta(z))

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """`size` random patches (input, source) as float tensors in [0, 1]."""
        seen, src = [], []
        for i in np.random.randint(len(self.inputs), size=size):
            d, s = self.inputs[i], self.sources[i]
            h, w = d.shape[1:]
            ph, pw = min(PATCH, h), min(PATCH, w)
            r, c = np.random.randint(h - ph + 1), np.random.randint(w - pw + 1)
            seen.append(_fit(d[:, r : r + ph, c : c + pw]))
            src.append(_fit(s[:, r : r + ph, c : c + pw]))
        return floats(np.stack(seen)), floats(np.stack(src))


class Recorder(nn.Module):
    """Stands in for the in-loop filter while coding: keeps what it is applied to, and applies it."""

    def __init__(self, refiner: nn.Module) -> None:
        super().__init__()
        self.refiner = refiner
        self.seen: list[np.ndarray] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(fine_levels(x[0]))
        return self.refiner(x)


@contextmanager
def recording_predictions(model: NvcModel) -> Iterator[Recorder]:
    """The model with a Recorder in place of its in-loop filter, for the time of the block."""
    recorder = Recorder(model.context_filter)
    model.context_filter = recorder
    try:
        yield recorder
    finally:
        model.context_filter = recorder.refiner


def code_frames(
    weights: Weights, frames: list[Frame], qp: int, device: torch.device, stage: Stage
) -> tuple[list[FrameRecord], list[int], list[np.ndarray]]:
    """Code frames as one low-delay sequence with the default schedule, enhancement off: the
    records, the indices of the frames the stage's refiner sees, and what it sees of them (the
    in-loop filter stage codes with the filter on every P frame and records its inputs)."""
    info = VideoInfo(frames[0].width, frames[0].height, Fraction(25), len(frames))

    def coded(tool: ToolMode) -> list[tuple[FrameRecord, Frame]]:
        params = CodingParams(qp=qp, enhance=ToolMode.OFF, filter=tool)
        encoder = SegmentedEncoder(weights, params, info, device, torch.float32)
        return [(record, shown) for record, _, shown in coded_frames(encoder, frames, keep_shown=True)]

    if stage is FILTER:
        with recording_predictions(weights.model) as recorder:
            records = [record for record, _ in coded(ToolMode.ON)]
        return records, [i for i, r in enumerate(records) if r.frame_type == FrameType.INTER], recorder.seen
    pairs = coded(ToolMode.AUTO)
    return [record for record, _ in pairs], list(range(len(frames))), [pack_frame(p) for _, p in pairs]


def build_pairs(weights: Weights, pack: Pack, device: torch.device, stage: Stage) -> Pairs:
    """Code every picture of the pack at one qp and every clip at CLIP_QPS qps (spread over
    TRAIN_QPS in turn); keep what the stage's refiner sees of each frame with its source (the
    in-loop filter sees only P frames, so the pictures give it nothing)."""
    pictures = [] if stage is FILTER else pack.photos + pack.crops
    jobs = [([p], TRAIN_QPS[i % len(TRAIN_QPS)]) for i, p in enumerate(pictures)]
    for i, clip in enumerate(pack.clips):
        jobs += [(list(clip), TRAIN_QPS[(CLIP_QPS * i + k) % len(TRAIN_QPS)]) for k in range(CLIP_QPS)]
    meta = {"stage": stage.name, "coder": coder_identity(weights, stage), "qps": list(TRAIN_QPS),
            "pack": pack.summary()}  # fmt: skip
    pairs = Pairs([], [], meta)
    for packed, qp in tqdm(jobs, desc="coding the pack", unit="sequence", file=sys.stderr):
        _, indices, seen = code_frames(weights, [unpack_frame(p) for p in packed], qp, device, stage)
        pairs.inputs += seen
        pairs.sources += [packed[i] for i in indices]
    return pairs


@dataclass
class EvalSet:
    """Held-aside frames coded at EVAL_QPS: the sources of the frames the refiner sees, what it
    sees of them at each qp, and the bits per substream."""

    sources: np.ndarray  # (N, 6, h, w) uint8
    inputs: dict[int, np.ndarray]  # (N, 6, h, w) as Pairs.inputs
    bits: dict[int, dict[str, int]]
    clip: str  # the clip's file name
    measure: str  # Stage.measure
    coder: dict  # coder_identity

    @property
    def fingerprint(self) -> str:
        """12 hex digits of SHA-256 over the measure, the refiner's inputs and their bits: two
        evaluations compare only when this is the same."""
        digest = hashlib.sha256(self.measure.encode())
        digest.update(json.dumps(self.bits, sort_keys=True).encode())
        for qp in sorted(self.inputs):
            digest.update(self.inputs[qp].tobytes())
        return digest.hexdigest()[:12]

    def save(self, path: Path) -> None:
        arrays = {"sources": self.sources} | {f"in_{qp}": d for qp, d in self.inputs.items()}
        _save_npz(
            path, arrays, {"bits": self.bits, "clip": self.clip, "measure": self.measure, "coder": self.coder}
        )

    @classmethod
    def load(cls, path: Path) -> EvalSet:
        with np.load(path) as z:
            meta = _meta(z)
            bits = {int(k): v for k, v in meta["bits"].items()}
            inputs = {qp: z[f"in_{qp}"] for qp in bits}
            return cls(z["sources"], inputs, bits, meta["clip"], meta["measure"], meta.get("coder", {}))


def substream_bits(records: list[FrameRecord]) -> dict[str, int]:
    """Bits of the intra latents, the motion vectors and the P-frame residual latents."""
    bits = {"intra": 0, "motion": 0, "residual": 0}
    for record in records:
        streams = record.substreams
        if record.frame_type == FrameType.INTRA:
            bits["intra"] += 8 * len(streams[0])
        else:
            bits["motion"] += 8 * len(streams[0])
            bits["residual"] += 8 * len(streams[1])
    return bits


def build_eval(weights: Weights, path: Path, device: torch.device, stage: Stage) -> EvalSet:
    """The first EVAL_FRAMES frames of the clip, coded at EVAL_QPS."""
    if not path.is_file():
        raise InputError(f"{path}: no such evaluation clip (--eval-clip)")
    with open_reader(str(path)) as reader:
        frames = list(reader.frames(0, EVAL_FRAMES))
    inputs, bits, indices = {}, {}, []
    for qp in tqdm(EVAL_QPS, desc="coding the evaluation clip", unit="qp", file=sys.stderr):
        records, indices, seen = code_frames(weights, frames, qp, device, stage)
        inputs[qp] = np.stack(seen)
        bits[qp] = substream_bits(records)
    sources = np.stack([pack_frame(frames[i]) for i in indices])
    return EvalSet(sources, inputs, bits, path.name, stage.measure, coder_identity(weights, stage))
