"""Positions in a video as users write them: a frame number (`130`) or a time (`5.2s`, `1500ms`,
`01:10`, `00:01:10.5`), read as ffmpeg's -ss reads a time (HH:MM:SS, MM:SS or seconds with a
unit). A time stands for the first frame shown at or after it."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

from nvcodec.errors import InputError

_UNITS = {"s": Fraction(1), "ms": Fraction(1, 1000), "us": Fraction(1, 1_000_000)}
_SECONDS = re.compile(r"(\d+(?:\.\d+)?|\.\d+)(s|ms|us)")
_CLOCK = re.compile(r"(?:(\d+):)?(\d+):(\d+(?:\.\d+)?)")


@dataclass(frozen=True)
class Position:
    """A frame number, or a time in seconds (exact)."""

    frame: int | None = None
    seconds: Fraction | None = None

    @classmethod
    def parse(cls, text: str, what: str = "--start") -> Position:
        text = text.strip()
        if text.isdigit():
            return cls(frame=int(text))
        if match := _SECONDS.fullmatch(text):
            return cls(seconds=Fraction(match.group(1)) * _UNITS[match.group(2)])
        if match := _CLOCK.fullmatch(text):
            hours, minutes, seconds = int(match.group(1) or 0), int(match.group(2)), Fraction(match.group(3))
            if minutes >= 60 and match.group(1) or seconds >= 60:
                raise InputError(f"{what} {text!r}: minutes and seconds must be below 60")
            return cls(seconds=3600 * hours + 60 * minutes + seconds)
        raise InputError(
            f"{what} {text!r} is not a position: a frame number (130) or a time (5.2s, 1500ms, 01:10, 00:01:10.5)"
        )

    def frame_at(self, fps: Fraction) -> int:
        """The frame number at this position in a video of this frame rate."""
        if self.frame is not None:
            return self.frame
        return math.ceil(self.seconds * fps)

    def __str__(self) -> str:
        return str(self.frame) if self.frame is not None else f"{float(self.seconds):g}s"
