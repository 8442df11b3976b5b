"""Per-frame reports and the sequence summary (rate from real sizes, PSNR per plane and 6:1:1)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING

from nvcodec.bitstream import FrameFlags, FrameRecord

if TYPE_CHECKING:  # numpy stays out of the command-line tools' start-up
    from nvcodec.metrics import FramePsnr


def flag_names(flags: int) -> list[str]:
    return [f.name.lower() for f in FrameFlags if flags & f]


@dataclass
class FrameReport:
    """What one coded frame cost and how close it came to the source."""

    index: int
    type: str
    qp: int
    flags: list[str]
    bytes: int
    psnr: FramePsnr | None = None
    # of the reconstruction before the out-of-loop enhancement, on a frame the encoder enhanced
    # (None on the others): what `nvdec --no-enhance` shows, and the same stream with `--enhance off`
    unenhanced: FramePsnr | None = None

    @classmethod
    def of(
        cls,
        index: int,
        record: FrameRecord,
        psnr: FramePsnr | None = None,
        unenhanced: FramePsnr | None = None,
    ) -> FrameReport:
        kind = "I" if record.kind == "intra" else "P"
        return cls(index, kind, record.qp, flag_names(record.flags), record.size, psnr, unenhanced)

    @property
    def unenhanced_psnr(self) -> FramePsnr | None:
        """The PSNR of the picture without enhancement, on every frame."""
        return self.psnr if self.unenhanced is None else self.unenhanced

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("psnr")
        d.pop("unenhanced")
        if self.psnr is not None:
            d.update(psnr_y=self.psnr.y, psnr_u=self.psnr.u, psnr_v=self.psnr.v, psnr_yuv=self.psnr.yuv)
        if self.unenhanced is not None:
            d.update(psnr_yuv_unenhanced=self.unenhanced.yuv)
        return d


@dataclass
class Summary:
    """A sequence's totals; `header_bytes` counts the file header, `index_bytes` the segment index
    after the last record, into the rate."""

    width: int
    height: int
    fps: Fraction
    header_bytes: int = 0
    index_bytes: int = 0
    frames: list[FrameReport] = field(default_factory=list)
    seconds: float = 0.0
    target_kbps: float | None = None  # rate control's target, when there was one

    @property
    def total_bytes(self) -> int:
        return self.header_bytes + self.index_bytes + sum(f.bytes for f in self.frames)

    @property
    def bpp(self) -> float:
        return 8 * self.total_bytes / max(1, len(self.frames) * self.width * self.height)

    @property
    def kbps(self) -> float:
        return 8 * self.total_bytes * float(self.fps) / max(1, len(self.frames)) / 1000

    def mean_psnr(self, plane: str) -> float | None:
        values = [getattr(f.psnr, plane) for f in self.frames if f.psnr is not None]
        return sum(values) / len(values) if values else None

    @property
    def speed(self) -> float:
        return len(self.frames) / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        """The one-line summary the tools print."""
        rate = f"{self.kbps:.1f} kbit/s"
        if self.target_kbps is not None:
            rate += f" (target {self.target_kbps:.1f}, {100 * (self.kbps / self.target_kbps - 1):+.2f}%)"
        parts = [f"{len(self.frames)} frames {self.width}x{self.height}", rate]
        parts.append(f"{self.bpp:.4f} bpp")
        if (y := self.mean_psnr("y")) is not None:
            parts.append(f"PSNR-Y {y:.2f} dB, PSNR-YUV {self.mean_psnr('yuv'):.2f} dB")
        parts.append(f"{self.speed:.2f} fps")
        return ", ".join(parts)

    def to_dict(self) -> dict:
        totals = {
            "width": self.width,
            "height": self.height,
            "fps": str(self.fps),
            "frames": len(self.frames),
            "bytes": self.total_bytes,
            "kbps": self.kbps,
            "target_kbps": self.target_kbps,
            "bpp": self.bpp,
            "seconds": self.seconds,
            "frames_per_second": self.speed,
        }
        totals.update({f"psnr_{p}": self.mean_psnr(p) for p in ("y", "u", "v", "yuv")})
        return {**totals, "per_frame": [f.to_dict() for f in self.frames]}
