"""Format knowledge shared by readers and writers: paths, image patterns, Y4M headers, limits."""

from __future__ import annotations

import os
import re
from fractions import Fraction

from av.video.reformatter import Interpolation

from nvcodec.errors import InputError, OutputError
from nvcodec.frame import MAX_DIMENSION

STDIO = "-"
DEFAULT_FPS = Fraction(25)
PNG_START_NUMBER = 1  # like ffmpeg's image2 muxer; the reader accepts sequences starting at 0..4
PATTERN_PROBE = 5  # image2 demuxer's default start_number_range

_PATTERN = re.compile(r"%(0?\d+)?d")
OUTPUT_FORMATS = {".y4m": "y4m", ".yuv": "yuv", ".mkv": "mkv", ".mp4": "mp4"}
Y4M_MAGIC = b"YUV4MPEG2"
HEADER_LIMIT = 4096
# Accurate rounding and full-resolution chroma in swscale: ~6 dB better RGB <-> YUV round trips.
# Conversions also pass threads=1: swscale's sliced threads (FFmpeg 8.1) sometimes corrupt a row
# of frames with an odd height, making a conversion nondeterministic.
CONVERT_FLAGS = (
    Interpolation.BICUBIC
    | Interpolation.ACCURATE_RND
    | Interpolation.FULL_CHR_H_INT
    | Interpolation.FULL_CHR_H_INP
)
OUTPUT_HELP = "use .y4m, .yuv, .mkv, .mp4, a %d.png pattern or -"


def extension(path: str) -> str:
    """The lower-case extension of a path, with its dot ('' if none)."""
    return os.path.splitext(path)[1].lower()


def is_pattern(path: str) -> bool:
    """Whether a path is a printf image pattern such as frames/%04d.png (one %d or %0Nd)."""
    if len(_PATTERN.findall(path.replace("%%", ""))) != 1:
        return False
    try:
        path % 0
    except (TypeError, ValueError):
        return False
    return True


def pattern_name(pattern: str, number: int) -> str:
    """The file name of image `number` of a pattern (same rules as ffmpeg's %d / %0Nd)."""
    return pattern % number


def pattern_files(pattern: str) -> tuple[int, int]:
    """First number (0..4) and count of the consecutive files a pattern matches; InputError if none."""
    for first in range(PATTERN_PROBE):
        if os.path.isfile(pattern_name(pattern, first)):
            count = 1
            while os.path.isfile(pattern_name(pattern, first + count)):
                count += 1
            return first, count
    raise InputError(f"{pattern}: no file matches this pattern (first numbers 0..{PATTERN_PROBE - 1} tried)")


def output_kind(path: str) -> str:
    """'y4m', 'yuv', 'mkv', 'mp4' or 'png' for an output path ('-' is Y4M); OutputError if unknown."""
    if path == STDIO:
        return "y4m"
    ext = extension(path)
    if is_pattern(path) and ext == ".png":
        return "png"
    if ext in OUTPUT_FORMATS and not is_pattern(path):
        return OUTPUT_FORMATS[ext]
    raise OutputError(f"unknown output format '{ext or path}' ({OUTPUT_HELP})")


def input_label(path: str) -> str:
    """How messages name an input: its path, or 'standard input' for '-'."""
    return "standard input" if path == STDIO else path


def check_size(width: int, height: int, label: str) -> None:
    """InputError unless both sides are within 1..MAX_DIMENSION."""
    if not (1 <= width <= MAX_DIMENSION and 1 <= height <= MAX_DIMENSION):
        raise InputError(
            f"{label}: invalid frame size {width}x{height} (each side must be 1..{MAX_DIMENSION})"
        )


def check_fps(fps: Fraction, label: str) -> Fraction:
    """The frame rate as a Fraction; InputError unless positive."""
    try:
        value = Fraction(fps)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{label}: invalid frame rate {fps!r}") from exc
    if value <= 0:
        raise InputError(f"{label}: invalid frame rate {fps} (must be positive)")
    return value


def reason(exc: BaseException) -> str:
    """The human part of a PyAV/OS error (without errno and path)."""
    return str(getattr(exc, "strerror", None) or exc)


def y4m_size(header: bytes, label: str) -> tuple[int, int]:
    """Width and height from a Y4M stream header, refusing absurd sizes before PyAV allocates."""
    if not header:
        raise InputError(f"{label}: empty input (expected a Y4M stream)")
    if not header.startswith(Y4M_MAGIC):
        hint = " (raw I420 needs a frame size)" if label == "standard input" else ""
        raise InputError(f"{label}: not a Y4M stream (no {Y4M_MAGIC.decode()} header){hint}")
    if not header.endswith(b"\n"):
        raise InputError(f"{label}: Y4M header truncated or longer than {HEADER_LIMIT} bytes")
    dims: dict[bytes, int] = {}
    for token in header.split()[1:]:
        if token[:1] in (b"W", b"H"):
            try:
                dims[token[:1]] = int(token[1:].decode("ascii"))
            except ValueError:
                raise InputError(
                    f"{label}: bad Y4M header field {token.decode('ascii', 'replace')!r}"
                ) from None
    if b"W" not in dims or b"H" not in dims:
        raise InputError(f"{label}: Y4M header lacks the frame size (W and H)")
    check_size(dims[b"W"], dims[b"H"], label)
    return dims[b"W"], dims[b"H"]
