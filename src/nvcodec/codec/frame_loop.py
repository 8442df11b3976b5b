"""What encoder and decoder share: the model on its device, the references, the output picture."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from nvcodec.bitstream import FrameFlags, FrameRecord, FrameType, Header, Tools
from nvcodec.entropy.adaptation import TableAdaptation
from nvcodec.errors import InputError
from nvcodec.frame import Frame
from nvcodec.models.compensation import (
    BLOCK,
    HEVC_FILTERS,
    LARGE_BLOCK,
    SIX_TAP_FILTERS,
    FilterSet,
    InterpolatedFrame,
)
from nvcodec.models.intra_prediction import intra_mode_set
from nvcodec.models.latent_codec import LatentResult
from nvcodec.models.layout import quantize_pixels, tensor_to_frame
from nvcodec.models.motion import MotionField
from nvcodec.models.nvc import NvcModel
from nvcodec.models.sample_offsets import PlaneList
from nvcodec.models.sample_offsets import read as read_sample_offsets
from nvcodec.weights import Weights

CPU = torch.device("cpu")
DEEP_BITS = 10  # the levels of reconstructions from version 2.14 (bitstream_spec.md 7.6)
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "fp64": torch.float64}


def motion_block(flags: FrameFlags) -> int:
    """Luma pixels per side of a P frame's motion blocks, from its record's flags."""
    return LARGE_BLOCK if flags & FrameFlags.LARGE_BLOCKS else BLOCK


def motion_flags(field: MotionField) -> FrameFlags:
    """The record flags of a P frame's motion: its block side, its flat-block and split maps."""
    return (
        (FrameFlags.LARGE_BLOCKS if field.block == LARGE_BLOCK else FrameFlags(0))
        | (FrameFlags(0) if field.flat is None else FrameFlags.FLAT_BLOCKS)
        | (FrameFlags(0) if field.split is None else FrameFlags.SPLIT_BLOCKS)
    )


def interpolation_flag(filters: FilterSet) -> FrameFlags:
    """The record flag of a P frame interpolated through `filters`, one of the two sets."""
    assert filters in (HEVC_FILTERS, SIX_TAP_FILTERS), filters.name
    return FrameFlags.SIX_TAP if filters == SIX_TAP_FILTERS else FrameFlags(0)


def interpolation_of(flags: FrameFlags) -> FilterSet:
    """The interpolation filters of a P frame, from its record's flags."""
    return SIX_TAP_FILTERS if flags & FrameFlags.SIX_TAP else HEVC_FILTERS


def shift_flag(shifts: np.ndarray | None) -> FrameFlags:
    """The record flag of a frame whose latent has these table shifts (None: none coded)."""
    return FrameFlags(0) if shifts is None else FrameFlags.TABLE_SHIFTS


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when present; asking for CUDA without it is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA device is available")
    if name not in ("cpu", "cuda"):
        raise InputError(f"unknown device {name!r} (auto, cpu or cuda)")
    return torch.device(name)


def resolve_precision(name: str, device: torch.device) -> torch.dtype:
    if name not in PRECISIONS:
        raise InputError(f"unknown precision {name!r} ({', '.join(PRECISIONS)})")
    if name == "fp16" and device.type != "cuda":
        raise InputError("--precision fp16 needs a CUDA device (CPU coding runs in fp32)")
    return PRECISIONS[name]


def exact_float32_on_cuda() -> None:
    """Make fp32 on CUDA mean fp32: PyTorch lets cuDNN convolutions use TF32 (10-bit mantissas)
    by default, which drifted from the CPU's pictures in 7% of the samples of an intra frame
    (Foreman, qp 32, H200); plain fp32 drifted in none. Process-wide, as PyTorch's switch is."""
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


def frame_crc(frame: Frame) -> int:
    """CRC-32 of the picture's I420 bytes (the decoded-picture hash of a record)."""
    return zlib.crc32(frame.tobytes())


SIGNATURE_BLOCK = 16
SIGNATURE_SCALE = 256  # signature units per 8-bit level
DRIFT_BOUND = 32  # 1/8 of a level: floating-point drift stays far below, another picture far above


def picture_signature(frame: Frame) -> int:
    """256 times the mean luma level, each sample signed by its 16x16 block's sign in a fixed
    pseudo-random pattern (bitstream_spec.md, 7.11). Drift of a few levels here and there moves
    it by a few units; another picture (a stream changed behind recomputed CRCs, other weights)
    moves it by hundreds."""
    h, w = frame.y.shape
    rows = np.arange(h, dtype=np.int64)[:, None] // SIGNATURE_BLOCK
    cols = np.arange(w, dtype=np.int64)[None, :] // SIGNATURE_BLOCK
    signs = 1 - 2 * ((((rows * 73856093) ^ (cols * 19349663)) >> 7) & 1)
    total = int((frame.y.astype(np.int64) * signs).sum())
    mean = (total * SIGNATURE_SCALE + (h * w) // 2) // (h * w)
    return max(-(1 << 15), min((1 << 15) - 1, mean))


@dataclass
class Reference:
    """What frame t is predicted from: the decoded frame t-1 and the symbols its coding left."""

    picture: InterpolatedFrame  # x_hat_{t-1}, interpolated for motion compensation
    symbols: np.ndarray  # latent symbols of frame t-1 (C, H, W) int64


@dataclass
class Picture:
    """A coded frame's pictures: the in-loop reconstruction and what is shown (the same Frame
    when nothing is enhanced), with their CRCs computed once."""

    recon: Frame
    output: Frame

    @property
    def enhanced(self) -> bool:
        return self.output is not self.recon

    @cached_property
    def recon_crc(self) -> int:
        return frame_crc(self.recon)

    @cached_property
    def output_crc(self) -> int:
        return frame_crc(self.output) if self.enhanced else self.recon_crc


class FrameLoop:
    """The model placed for coding, its tables, and the reference state across frames: the
    reference picture and symbols, and (adaptive tables, 2.11) the counts that adapt P frames'
    tables; reconstructions in 10-bit levels from 2.14 (`bits`), else 8-bit ones."""

    def __init__(self, weights: Weights, device: torch.device, dtype: torch.dtype, header: Header) -> None:
        self.weights = weights
        if device.type == "cuda" and dtype == torch.float32:
            exact_float32_on_cuda()
        self.model: NvcModel = weights.model.place(device, dtype)
        self.tables = self.model.probability_tables()
        self.device, self.dtype = device, dtype
        self.header = header
        self.width, self.height = header.width, header.height
        self.reference: Reference | None = None
        self.adaptation = TableAdaptation(self.tables) if header.adaptive_tables else None
        self.bits = DEEP_BITS if header.deep_references else 8
        predicted = header.tools & Tools.INTRA_PREDICTION
        self.intra_modes = intra_mode_set(header.pixel_dc, header.block_modes) if predicted else None
        self.index = 0

    def latent_table(self, qp: int) -> np.ndarray | None:
        """The table indices of the next P frame's latent at qp when adapted (2.11); None: the
        fitted ones."""
        if self.adaptation is None:
            return None
        return self.adaptation.table(qp, self.model.inter.latent.fitted(qp))

    def advance(self, x_hat: torch.Tensor, latent: LatentResult, record: FrameRecord) -> None:
        """Make the frame just coded the reference of the next one, and count its latent for
        the tables of the next P frames (an intra frame clears the counts)."""
        if self.adaptation is not None:
            if record.frame_type == FrameType.INTRA:
                self.adaptation.reset()
            else:
                self.adaptation.add(record.qp, latent.symbols, latent.buckets)
        picture = InterpolatedFrame(x_hat, self.bits)
        self.reference, self.index = Reference(picture, latent.symbols), self.index + 1

    def sample_offsets_of(self, record: FrameRecord) -> tuple[PlaneList | None, tuple[bytes, ...]]:
        """A record's sample offsets (None before 2.17) and its substreams as the model codes them,
        the offsets taken off the front of the latent substream."""
        if not self.header.sample_offsets:
            return None, record.substreams
        planes, latent = read_sample_offsets(record.substreams[-1], self.tables)
        return planes, (*record.substreams[:-1], latent)

    def to_frame(self, x: torch.Tensor) -> Frame:
        """The 8-bit picture, of the true size, of a frame tensor on the grid of this stream's references."""
        return tensor_to_frame(x, self.width, self.height, self.bits)

    def picture_of(self, x_hat: torch.Tensor, shown: torch.Tensor | None) -> Picture:
        """The pictures of a reconstruction and of its enhanced version (None: not enhanced)."""
        recon = self.to_frame(x_hat)
        return Picture(recon, recon if shown is None else self.to_frame(shown))

    def enhanced(self, x_hat: torch.Tensor) -> torch.Tensor:
        """The out-of-loop enhancement of a reconstruction, on the 8-bit grid."""
        return quantize_pixels(self.model.enhancer(x_hat))
