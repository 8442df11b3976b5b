"""What the enhancement is trained and evaluated on: decoded pictures and their sources.

The codec (enhancement off) codes the pack's pictures and clips once, and the first frames of a
held-aside clip at three qps; both are cached as .npz in the run folder, with a fingerprint of
what made them, so that a run knows when the codec under it has changed.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from nvcodec.bitstream import FrameRecord, FrameType
from nvcodec.codec.schedule import CodingParams, ToolMode
from nvcodec.codec.segments import SegmentedEncoder
from nvcodec.errors import InputError
from nvcodec.frame import Frame, VideoInfo
from nvcodec.io import open_reader
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
EVAL_MEASURE = "metrics.frame_psnr"  # PSNR-YUV as the benchmarks compute it (part of the fingerprint)


def codec_fingerprint(model: NvcModel) -> str:
    """SHA-256 (16 hex digits) of every released tensor but the enhancer's: what decides the
    decoded pictures the enhancer learns from."""
    digest = hashlib.sha256()
    for name, tensor in sorted(release_tensors(model).items()):
        if not name.startswith("enhancer."):
            digest.update(name.encode())
            digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()[:16]


def floats(a: np.ndarray) -> torch.Tensor:
    """uint8 levels as float32 in [0, 1]."""
    return torch.from_numpy(a).float() / 255


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
    """Decoded pictures and their sources, both (6, h, w) uint8 in the packed layout."""

    decoded: list[np.ndarray]
    sources: list[np.ndarray]
    meta: dict  # what coded them: the codec's fingerprint, the qps, the pack

    def save(self, path: Path) -> None:
        arrays = {f"dec_{i}": d for i, d in enumerate(self.decoded)}
        arrays |= {f"src_{i}": s for i, s in enumerate(self.sources)}
        _save_npz(path, arrays, self.meta)

    @classmethod
    def load(cls, path: Path) -> Pairs:
        with np.load(path) as z:
            count = sum(k.startswith("dec_") for k in z.files)
            return cls([z[f"dec_{i}"] for i in range(count)], [z[f"src_{i}"] for i in range(count)], _meta(z))

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """`size` random patches (decoded, source) as float tensors in [0, 1]."""
        dec, src = [], []
        for i in np.random.randint(len(self.decoded), size=size):
            d, s = self.decoded[i], self.sources[i]
            h, w = d.shape[1:]
            ph, pw = min(PATCH, h), min(PATCH, w)
            r, c = np.random.randint(h - ph + 1), np.random.randint(w - pw + 1)
            dec.append(_fit(d[:, r : r + ph, c : c + pw]))
            src.append(_fit(s[:, r : r + ph, c : c + pw]))
        return floats(np.stack(dec)), floats(np.stack(src))


def code_frames(
    weights: Weights, frames: list[Frame], qp: int, device: torch.device
) -> list[tuple[FrameRecord, Frame]]:
    """Code frames as one low-delay sequence with the default schedule and tools, enhancement off:
    each frame's record and decoded picture."""
    info = VideoInfo(frames[0].width, frames[0].height, Fraction(25), len(frames))
    params = CodingParams(qp=qp, enhance=ToolMode.OFF)
    encoder = SegmentedEncoder(weights, params, info, device, torch.float32)
    return [(record, shown) for record, _, shown in coded_frames(encoder, frames, keep_shown=True)]


def build_pairs(weights: Weights, pack: Pack, device: torch.device) -> Pairs:
    """Code every picture of the pack at one qp and every clip at CLIP_QPS qps (spread over
    TRAIN_QPS in turn); keep each decoded frame with its source."""
    jobs = [([p], TRAIN_QPS[i % len(TRAIN_QPS)]) for i, p in enumerate(pack.photos + pack.crops)]
    for i, clip in enumerate(pack.clips):
        jobs += [(list(clip), TRAIN_QPS[(CLIP_QPS * i + k) % len(TRAIN_QPS)]) for k in range(CLIP_QPS)]
    meta = {"codec": codec_fingerprint(weights.model), "qps": list(TRAIN_QPS), "pack": pack.summary()}
    pairs = Pairs([], [], meta)
    for packed, qp in tqdm(jobs, desc="coding the pack", unit="sequence", file=sys.stderr):
        coded = code_frames(weights, [unpack_frame(p) for p in packed], qp, device)
        pairs.decoded += [pack_frame(picture) for _, picture in coded]
        pairs.sources += list(packed)
    return pairs


@dataclass
class EvalSet:
    """Held-aside frames coded at EVAL_QPS: sources, decoded pictures, bits per substream."""

    sources: np.ndarray  # (N, 6, h, w) uint8
    decoded: dict[int, np.ndarray]
    bits: dict[int, dict[str, int]]
    clip: str  # the clip's file name

    @property
    def fingerprint(self) -> str:
        """12 hex digits of SHA-256 over the measure, the decoded pictures and their bits: two
        evaluations compare only when this is the same."""
        digest = hashlib.sha256(EVAL_MEASURE.encode())
        digest.update(json.dumps(self.bits, sort_keys=True).encode())
        for qp in sorted(self.decoded):
            digest.update(self.decoded[qp].tobytes())
        return digest.hexdigest()[:12]

    def save(self, path: Path) -> None:
        arrays = {"sources": self.sources} | {f"dec_{qp}": d for qp, d in self.decoded.items()}
        _save_npz(path, arrays, {"bits": self.bits, "clip": self.clip})

    @classmethod
    def load(cls, path: Path) -> EvalSet:
        with np.load(path) as z:
            meta = _meta(z)
            bits = {int(k): v for k, v in meta["bits"].items()}
            return cls(z["sources"], {qp: z[f"dec_{qp}"] for qp in bits}, bits, meta["clip"])


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


def build_eval(weights: Weights, path: Path, device: torch.device) -> EvalSet:
    """The first EVAL_FRAMES frames of the clip, coded at EVAL_QPS."""
    if not path.is_file():
        raise InputError(f"{path}: no such evaluation clip (--eval-clip)")
    with open_reader(str(path)) as reader:
        frames = list(reader.frames(0, EVAL_FRAMES))
    decoded, bits = {}, {}
    for qp in tqdm(EVAL_QPS, desc="coding the evaluation clip", unit="qp", file=sys.stderr):
        coded = code_frames(weights, frames, qp, device)
        decoded[qp] = np.stack([pack_frame(picture) for _, picture in coded])
        bits[qp] = substream_bits([record for record, _ in coded])
    return EvalSet(np.stack([pack_frame(f) for f in frames]), decoded, bits, path.name)
