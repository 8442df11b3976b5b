"""Frames as nvcodec sees them: 8-bit YUV 4:2:0 planes, and the facts about a video."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

MAX_DIMENSION = 8192


def chroma_size(width: int, height: int) -> tuple[int, int]:
    """Width and height of a 4:2:0 chroma plane (odd sizes round up)."""
    return (width + 1) // 2, (height + 1) // 2


@dataclass(frozen=True)
class VideoInfo:
    """What a reader knows about a video before its frames are read."""

    width: int
    height: int
    fps: Fraction
    frame_count: int | None = None  # None: unknown (a stream)
    sar: Fraction | None = None  # sample aspect ratio; None: square or unknown

    def __post_init__(self) -> None:
        if not (1 <= self.width <= MAX_DIMENSION and 1 <= self.height <= MAX_DIMENSION):
            raise ValueError(f"size {self.width}x{self.height} outside 1..{MAX_DIMENSION}")
        if self.fps <= 0:
            raise ValueError(f"frame rate {self.fps} must be positive")


@dataclass(frozen=True, eq=False)
class Frame:
    """One YUV 4:2:0 8-bit picture: full-size luma, half-size (rounded up) chroma."""

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray

    def __post_init__(self) -> None:
        h, w = self.y.shape
        cw, ch = chroma_size(w, h)
        for name, plane, shape in (("y", self.y, (h, w)), ("u", self.u, (ch, cw)), ("v", self.v, (ch, cw))):
            if plane.dtype != np.uint8 or plane.shape != shape:
                raise ValueError(f"plane {name}: expected uint8 {shape}, got {plane.dtype} {plane.shape}")

    @property
    def width(self) -> int:
        return self.y.shape[1]

    @property
    def height(self) -> int:
        return self.y.shape[0]

    @property
    def planes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.y, self.u, self.v

    def tobytes(self) -> bytes:
        """The I420 byte layout: Y, then U, then V, rows without padding."""
        return b"".join(np.ascontiguousarray(p).tobytes() for p in self.planes)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Frame):
            return NotImplemented
        return all(np.array_equal(a, b) for a, b in zip(self.planes, other.planes))

    @classmethod
    def from_bytes(cls, data: bytes, width: int, height: int) -> Frame:
        """Parse one I420 frame of exactly the size given."""
        cw, ch = chroma_size(width, height)
        ny, nc = width * height, cw * ch
        if len(data) != ny + 2 * nc:
            raise ValueError(f"I420 {width}x{height} needs {ny + 2 * nc} bytes, got {len(data)}")
        buf = np.frombuffer(data, np.uint8)
        return cls(
            buf[:ny].reshape(height, width),
            buf[ny : ny + nc].reshape(ch, cw),
            buf[ny + nc :].reshape(ch, cw),
        )


def frame_bytes(width: int, height: int) -> int:
    """Size of one I420 frame in bytes."""
    cw, ch = chroma_size(width, height)
    return width * height + 2 * cw * ch


def gray_frame(width: int, height: int) -> Frame:
    """A mid-gray picture (128 in every plane): what a decoder shows where it has nothing better."""
    cw, ch = chroma_size(width, height)
    return Frame(*(np.full(shape, 128, dtype=np.uint8) for shape in ((height, width), (ch, cw), (ch, cw))))
