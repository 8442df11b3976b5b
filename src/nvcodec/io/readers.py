"""Video readers: Y4M, raw I420, image sequences and anything PyAV opens, as 8-bit 4:2:0 Frames."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import BinaryIO

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace

from nvcodec.errors import InputError
from nvcodec.frame import Frame, VideoInfo, frame_bytes
from nvcodec.io.formats import (
    CONVERT_FLAGS,
    DEFAULT_FPS,
    HEADER_LIMIT,
    STDIO,
    check_fps,
    check_size,
    extension,
    input_label,
    is_pattern,
    pattern_files,
    reason,
    y4m_size,
)

log = logging.getLogger(__name__)

Y4M_FRAME_HEADER = len(b"FRAME\n")


class StdinSource:
    """Standard input as PyAV sees it: read-only, unseekable, counting the bytes it hands out."""

    def __init__(self, raw: BinaryIO, prefix: bytes = b"") -> None:
        self._raw = raw
        self._prefix = prefix
        self.count = 0

    def read(self, n: int) -> bytes:
        """Up to n bytes: first what was peeked at, then the stream."""
        if self._prefix:
            data, self._prefix = self._prefix[:n], self._prefix[n:]
        else:
            reader = getattr(self._raw, "read1", self._raw.read)
            data = reader(n)
        self.count += len(data)
        return data


@dataclass
class _Plan:
    """How to open one input with PyAV, and what to check while reading it."""

    label: str
    target: str | StdinSource
    format: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    packet_size: int | None = None  # raw I420: every packet must be one whole frame
    data_start: int | None = None  # raw/Y4M: byte offset of the first frame; enables the tail check
    total_bytes: int | None = None  # file size (None for standard input: count what was read)


def _copy_plane(plane: av.video.plane.VideoPlane) -> np.ndarray:
    """One plane as an owned (height, width) uint8 array, dropping the line padding."""
    view = np.ndarray((plane.height, plane.width), np.uint8, buffer=plane, strides=(plane.line_size, 1))
    return view.copy()


def _to_yuv420p(frame: av.VideoFrame) -> av.VideoFrame:
    """Convert any picture to 8-bit limited-range 4:2:0 (RGB sources with the BT.709 matrix)."""
    fmt = frame.format
    if fmt.is_rgb or fmt.has_palette:
        return frame.reformat(
            format="yuv420p",
            dst_colorspace=Colorspace.ITU709,
            src_color_range=ColorRange.JPEG,
            dst_color_range=ColorRange.MPEG,
            interpolation=CONVERT_FLAGS,
            threads=1,
        )
    full = fmt.name.startswith("yuvj") or int(frame.color_range) == ColorRange.JPEG
    return frame.reformat(
        format="yuv420p",
        src_color_range=ColorRange.JPEG if full else ColorRange.MPEG,
        dst_color_range=ColorRange.MPEG,
        interpolation=CONVERT_FLAGS,
        threads=1,
    )


def frame_from_av(picture: av.VideoFrame) -> Frame:
    """A decoded PyAV picture as an owned 8-bit 4:2:0 Frame (converted when it is not yuv420p)."""
    if picture.format.name != "yuv420p":
        picture = _to_yuv420p(picture)
    return Frame(*(_copy_plane(p) for p in picture.planes))


def _open_container(plan: _Plan) -> tuple[av.container.InputContainer, av.VideoStream]:
    """Open a plan's input and its first video stream, or raise InputError."""
    try:
        container = av.open(plan.target, format=plan.format, options=plan.options)
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise InputError(f"cannot open {plan.label} as video: {reason(exc)}") from exc
    if not container.streams.video:
        container.close()
        raise InputError(f"{plan.label}: no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return container, stream


class Reader:
    """The frames of one input video, decoded one at a time; a context manager."""

    def __init__(self, plan: _Plan, info: VideoInfo, container: av.container.InputContainer) -> None:
        self.info = info
        self._plan = plan
        self._container: av.container.InputContainer | None = container
        self._fresh = True
        self._warned = False

    def frames(self, start: int = 0, count: int | None = None) -> Iterator[Frame]:
        """Skip `start` frames, then yield at most `count` (all if None)."""
        if start < 0 or (count is not None and count < 0):
            raise ValueError(f"frames(start={start}, count={count}): negative")
        container = self._take()
        try:
            if count != 0:
                yield from self._decode(container, start, count)
        finally:
            container.close()
            if self._container is container:
                self._container = None

    def estimated_count(self) -> int | None:
        """The frame count when the input says it, else the packets of a file counted without
        decoding (a raw .h264 stream has no count): for progress and planning, not the header."""
        target = self._plan.target
        if self.info.frame_count is not None or self._plan.format is not None or not isinstance(target, str):
            return self.info.frame_count
        if not os.path.isfile(target):  # a FIFO or /dev/fd/N: a second reader would eat the stream
            return None
        deadline = time.monotonic() + COUNT_SECONDS
        count = 0
        try:
            with av.open(target) as container:
                for packet in container.demux(video=0):
                    count += packet.size > 0
                    if time.monotonic() > deadline:  # a long file: start coding instead
                        return None
        except (av.FFmpegError, OSError):
            return None
        return count or None

    def close(self) -> None:
        """Release the input."""
        if self._container is not None:
            self._container.close()
            self._container = None
        self._fresh = False

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.close()

    def note_conversion(self, pix_fmt: str) -> None:
        """Log, once per reader, that frames are converted to 8-bit 4:2:0."""
        if not self._warned:
            self._warned = True
            log.warning("%s: converting %s to 8-bit 4:2:0", self._plan.label, pix_fmt)

    def _take(self) -> av.container.InputContainer:
        """The container opened by open_reader the first time, a fresh one afterwards."""
        if self._fresh and self._container is not None:
            self._fresh = False
            return self._container
        if isinstance(self._plan.target, StdinSource):
            raise InputError("standard input can be read only once")
        self._container = _open_container(self._plan)[0]
        return self._container

    def _decode(
        self, container: av.container.InputContainer, start: int, count: int | None
    ) -> Iterator[Frame]:
        """Demux and decode, checking packet sizes and the bytes left after the last frame."""
        plan, index, produced = self._plan, 0, 0
        end = plan.data_start or 0
        stream = container.streams.video[0]
        try:
            for packet in container.demux(stream):
                if packet.size:
                    if plan.packet_size is not None and packet.size != plan.packet_size:
                        raise InputError(
                            f"{plan.label}: truncated: frame {index} has {packet.size} of {plan.packet_size} bytes"
                        )
                    if packet.pos is not None and packet.pos >= 0:
                        end = packet.pos + packet.size
                for picture in packet.decode():
                    index += 1
                    if index <= start:
                        continue
                    yield self._convert(picture, index - 1)
                    produced += 1
                    if count is not None and produced >= count:
                        return
        except (av.FFmpegError, OSError) as exc:
            raise InputError(f"{plan.label}: cannot read frame {index}: {reason(exc)}") from exc
        if plan.data_start is not None:
            total = plan.total_bytes if plan.total_bytes is not None else getattr(plan.target, "count", end)
            if total > end:
                raise InputError(
                    f"{plan.label}: truncated or corrupt: {total - end} bytes after {index} whole frames "
                    f"do not make a frame"
                )

    def _convert(self, picture: av.VideoFrame, index: int) -> Frame:
        """A decoded picture as an owned yuv420p Frame of the video's size."""
        if (picture.width, picture.height) != (self.info.width, self.info.height):
            raise InputError(
                f"{self._plan.label}: frame {index} is {picture.width}x{picture.height}, "
                f"the video is {self.info.width}x{self.info.height}"
            )
        if picture.format.name != "yuv420p":
            self.note_conversion(picture.format.name)
        return frame_from_av(picture)


def _raw_plan(label: str, target: str | StdinSource, size: tuple[int, int], fps: Fraction) -> _Plan:
    """Raw I420 through PyAV's rawvideo demuxer."""
    w, h = size
    options = {"video_size": f"{w}x{h}", "pixel_format": "yuv420p", "framerate": str(fps)}
    return _Plan(label, target, "rawvideo", options, packet_size=frame_bytes(w, h), data_start=0)


def _plan_for(path: str, size: tuple[int, int] | None, fps: Fraction | None) -> tuple[_Plan, int | None]:
    """Decide how to open `path`; also the frame count when it is known without decoding."""
    raw_fps = fps or DEFAULT_FPS
    if path == STDIO:
        stdin = sys.stdin.buffer if sys.stdin is not None else None
        if stdin is None:
            raise InputError("standard input is closed")
        if stdin.isatty():
            raise InputError(
                "standard input is a terminal: pipe a Y4M (or raw I420 with a size) stream into it"
            )
        if size is not None:
            return _raw_plan("standard input", StdinSource(stdin), size, raw_fps), None
        header = stdin.readline(HEADER_LIMIT)
        y4m_size(header, "standard input")
        source = StdinSource(stdin, header)
        return _Plan("standard input", source, "yuv4mpegpipe", data_start=len(header)), None
    if is_pattern(path):
        first, count = pattern_files(path)
        options = {"start_number": str(first)}
        if fps is not None:
            options["framerate"] = str(fps)
        return _Plan(path, path, "image2", options), count
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file")
    if os.path.isdir(path):
        raise InputError(f"{path}: is a directory")
    ext = extension(path)
    if ext == ".yuv":
        if size is None:
            raise InputError(f"{path}: raw .yuv input needs its frame size: --size WxH")
        total, one = os.path.getsize(path), frame_bytes(*size)
        if total % one:
            raise InputError(
                f"{path}: file size {total} bytes is not a multiple of the "
                f"{size[0]}x{size[1]} I420 frame size {one} bytes"
            )
        plan = _raw_plan(path, path, size, raw_fps)
        plan.total_bytes = total
        return plan, total // one
    if ext == ".y4m":
        try:
            with open(path, "rb") as f:
                header = f.readline(HEADER_LIMIT)
        except OSError as exc:
            raise InputError(f"cannot open {path} as video: {reason(exc)}") from exc
        w, h = y4m_size(header, path)
        total = os.path.getsize(path)
        plan = _Plan(path, path, "yuv4mpegpipe", data_start=len(header), total_bytes=total)
        rest, per = total - len(header), Y4M_FRAME_HEADER + frame_bytes(w, h)
        return plan, (rest // per if rest % per == 0 else None)
    return _Plan(path, path), None


COUNT_SECONDS = 1.0  # at most this long spent counting a raw stream's packets before coding


def _sample_aspect(stream: av.video.stream.VideoStream) -> Fraction | None:
    """The stream's sample aspect ratio when it says one other than 1:1 (fits 16 bits each)."""
    sar = stream.sample_aspect_ratio
    if not sar or sar == 1:
        return None
    sar = Fraction(sar).limit_denominator(0xFFFF)
    return sar if 0 < sar.numerator <= 0xFFFF else None


def open_reader(path: str, size: tuple[int, int] | None = None, fps: Fraction | None = None) -> Reader:
    """Open a video file, an image pattern (frames/%04d.png) or '-' (standard input) for reading.

    `size` (W, H) is required for raw I420 (.yuv, or '-' which is otherwise Y4M); for other
    inputs it must match the video. `fps` sets the rate of raw inputs and image sequences
    (default 25) and overrides the rate reported by any other input.
    """
    path = str(path)
    label = input_label(path)
    if size is not None:
        size = (int(size[0]), int(size[1]))
        check_size(*size, label)
    if fps is not None:
        fps = check_fps(fps, label)
    plan, frame_count = _plan_for(path, size, fps)
    container, stream = _open_container(plan)
    try:
        ctx = stream.codec_context
        width, height = ctx.width, ctx.height
        if width <= 0 or height <= 0:
            raise InputError(f"{label}: cannot determine the frame size")
        check_size(width, height, label)
        if size is not None and size != (width, height):
            raise InputError(f"{label}: size {size[0]}x{size[1]} given, but the video is {width}x{height}")
        rate = fps
        if rate is None and plan.format not in ("rawvideo", "image2"):
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if rate is None or rate <= 0:
            log.info("%s: no frame rate given, assuming %s fps", label, DEFAULT_FPS)
            rate = DEFAULT_FPS
        if frame_count is None and plan.format is None and stream.frames > 0:
            frame_count = stream.frames
        if plan.format == "yuv4mpegpipe" and ctx.pix_fmt != "yuv420p":
            frame_count = None  # the count from the file size assumed 4:2:0
        info = VideoInfo(width, height, Fraction(rate), frame_count, _sample_aspect(stream))
    except BaseException:
        container.close()
        raise
    reader = Reader(plan, info, container)
    if ctx.pix_fmt and ctx.pix_fmt != "yuv420p":
        reader.note_conversion(ctx.pix_fmt)
    return reader
