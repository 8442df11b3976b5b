"""Video writers: Y4M (file or standard output), raw I420, lossless MKV/MP4, PNG sequences."""

from __future__ import annotations

import errno
import os
from typing import BinaryIO

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace

from nvcodec.errors import OutputError
from nvcodec.frame import Frame, VideoInfo
from nvcodec.io.formats import CONVERT_FLAGS, PNG_START_NUMBER, output_kind, pattern_name, reason
from nvcodec.outputs import AtomicOutput, check_writable, final_path

# (PyAV muxer, codec, codec options) per container output.
CONTAINERS: dict[str, tuple[str, str, dict[str, str]]] = {
    "mkv": ("matroska", "ffv1", {}),
    "mp4": ("mp4", "libx264", {"qp": "0", "preset": "veryfast"}),  # qp 0 4:2:0 is bit exact
}


def to_av_frame(frame: Frame) -> av.VideoFrame:
    """A PyAV yuv420p picture holding a copy of the frame's planes (any size, odd included)."""
    picture = av.VideoFrame(frame.width, frame.height, "yuv420p")
    for plane, data in zip(picture.planes, frame.planes):
        view = np.ndarray((plane.height, plane.width), np.uint8, buffer=plane, strides=(plane.line_size, 1))
        view[...] = data
    return picture


class _StdoutSink:
    """Standard output for PyAV: write-only and unseekable."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw

    def write(self, data: bytes) -> int:
        """Write all of data."""
        self._raw.write(data)
        return len(data)


def _output_error(path: str, exc: BaseException) -> OSError:
    """What a failed write raises: BrokenPipeError when the reader went away (the tools end
    quietly), else an OutputError that says why."""
    if isinstance(exc, BrokenPipeError) or getattr(exc, "errno", None) == errno.EPIPE:
        return BrokenPipeError(errno.EPIPE, "Broken pipe")
    if isinstance(exc, OutputError):  # already names the path
        return exc
    return OutputError(f"{path}: cannot write: {reason(exc)}")


class Writer:
    """A video output: write() frames, then close() to commit; abort() removes the output.

    As a context manager it commits on a clean exit and aborts on an exception.
    """

    def __init__(self, path: str, info: VideoInfo) -> None:
        self.path = path
        self.info = info
        self._done = False

    def write(self, frame: Frame) -> None:
        """Append one frame (its size must be the video's)."""
        if self._done:
            raise ValueError(f"{self.path}: writer already closed")
        if (frame.width, frame.height) != (self.info.width, self.info.height):
            raise ValueError(
                f"{self.path}: frame is {frame.width}x{frame.height}, output is {self.info.width}x{self.info.height}"
            )
        try:
            self._write(frame)
        except (av.FFmpegError, OSError) as exc:
            self.abort()
            raise _output_error(self.path, exc) from exc

    def close(self) -> None:
        """Finish the output and move it into place."""
        if self._done:
            return
        try:
            self._finish()
        except (av.FFmpegError, OSError) as exc:
            self.abort()
            raise _output_error(self.path, exc) from exc
        except BaseException:
            self.abort()
            raise
        self._done = True

    def abort(self) -> None:
        """Remove everything written (standard output cannot be taken back)."""
        if not self._done:
            self._done = True
            self._discard()

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _write(self, frame: Frame) -> None:
        """Store one frame (subclasses)."""
        raise NotImplementedError

    def _finish(self) -> None:
        """Flush and commit the output (subclasses)."""
        raise NotImplementedError

    def _discard(self) -> None:
        """Delete whatever was written (subclasses)."""
        raise NotImplementedError


class _RawWriter(Writer):
    """Raw I420: the frames' bytes one after the other."""

    def __init__(self, path: str, info: VideoInfo, force: bool) -> None:
        super().__init__(path, info)
        self._out = AtomicOutput(path, force)

    def _write(self, frame: Frame) -> None:
        self._out.file.write(frame.tobytes())

    def _finish(self) -> None:
        self._out.commit()

    def _discard(self) -> None:
        self._out.abort()


class _Y4mWriter(_RawWriter):
    """YUV4MPEG2, written here rather than by PyAV's muxer, which drops the sample aspect ratio:
    a header line (size, rate, aspect, 4:2:0), then each frame's planes after a FRAME line."""

    def __init__(self, path: str, info: VideoInfo, force: bool) -> None:
        super().__init__(path, info, force)
        rate, sar = info.fps, info.sar
        aspect = "0:0" if sar is None else f"{sar.numerator}:{sar.denominator}"  # 0:0: unknown
        header = (
            f"YUV4MPEG2 W{info.width} H{info.height} F{rate.numerator}:{rate.denominator} Ip "
            f"A{aspect} C420jpeg XYSCSS=420JPEG\n"
        )
        self._out.file.write(header.encode("ascii"))

    def _write(self, frame: Frame) -> None:
        self._out.file.write(b"FRAME\n" + frame.tobytes())


class _ContainerWriter(Writer):
    """FFV1 .mkv or lossless H.264 .mp4 through a PyAV muxer, into AtomicOutput's temp file."""

    def __init__(self, path: str, info: VideoInfo, force: bool, kind: str) -> None:
        super().__init__(path, info)
        muxer, codec, options = CONTAINERS[kind]
        self._out = AtomicOutput(path, force)
        target = _StdoutSink(self._out.file) if self._out.streaming else self._out.temp_path
        self._count = 0
        self._time_base = 1 / info.fps
        try:
            self._container = av.open(target, "w", format=muxer)
            self._stream = self._container.add_stream(codec, rate=info.fps, options=options)
            self._stream.width, self._stream.height = info.width, info.height
            self._stream.pix_fmt = "yuv420p"
            self._stream.time_base = self._time_base
        except (av.FFmpegError, OSError, ValueError) as exc:
            self._out.abort()
            raise OutputError(f"{path}: cannot write {kind}: {reason(exc)}") from exc

    def _write(self, frame: Frame) -> None:
        picture = to_av_frame(frame)
        picture.pts = self._count
        picture.time_base = self._time_base  # the codec's; the muxer may change the stream's
        self._count += 1
        self._container.mux(self._stream.encode(picture))

    def _finish(self) -> None:
        self._container.mux(self._stream.encode(None))
        self._container.close()
        self._out.commit()

    def _discard(self) -> None:
        try:
            self._container.close()
        except Exception:  # the output is being thrown away; removing it is what matters
            pass
        self._out.abort()


class _PngWriter(Writer):
    """A PNG sequence from a pattern, numbered from PNG_START_NUMBER (1, as ffmpeg does).

    Each image goes to a hidden `.NAME.part` beside its target; close() renames them all into
    place, abort() deletes them. Frames are converted to RGB with the BT.709 matrix (lossy).
    """

    def __init__(self, pattern: str, info: VideoInfo, force: bool) -> None:
        super().__init__(pattern, info)
        self._force = force
        self._count = 0
        check_writable(self._target(0), force)
        try:
            self._codec = av.CodecContext.create("png", "w")
            self._codec.width, self._codec.height = info.width, info.height
            self._codec.pix_fmt = "rgb24"
        except (av.FFmpegError, ValueError) as exc:
            raise OutputError(f"{pattern}: cannot write PNG: {reason(exc)}") from exc

    def _target(self, index: int) -> str:
        return pattern_name(self.path, PNG_START_NUMBER + index)

    def _part(self, index: int) -> str:
        head, tail = os.path.split(self._target(index))
        return os.path.join(head, f".{tail}.part")

    def _write(self, frame: Frame) -> None:
        check_writable(self._target(self._count), self._force)
        rgb = to_av_frame(frame).reformat(
            format="rgb24",
            src_colorspace=Colorspace.ITU709,
            src_color_range=ColorRange.MPEG,
            dst_color_range=ColorRange.JPEG,
            interpolation=CONVERT_FLAGS,
            threads=1,
        )
        data = b"".join(bytes(packet) for packet in self._codec.encode(rgb))
        self._count += 1  # counted first, so that abort() also removes a partly written file
        with open(self._part(self._count - 1), "wb") as f:
            f.write(data)

    def _finish(self) -> None:
        for index in range(self._count):
            os.replace(self._part(index), final_path(self._target(index)))

    def _discard(self) -> None:
        for index in range(self._count):
            try:
                os.unlink(self._part(index))
            except FileNotFoundError:
                pass


def open_writer(path: str, info: VideoInfo, force: bool = False) -> Writer:
    """Open an output by its name: .y4m, .yuv, .mkv (FFV1), .mp4 (lossless H.264), a %d.png pattern or '-'.

    '-' writes Y4M to standard output. Nothing is written before the format and the target are
    checked; an existing output is refused unless `force`. Odd sizes work except for .mp4, which
    raises OutputError (H.264 4:2:0 needs even sides; padding would change the video).
    """
    path = str(path)
    kind = output_kind(path)
    if kind == "mp4" and (info.width % 2 or info.height % 2):
        raise OutputError(
            f"{path}: H.264 .mp4 needs an even width and height, not {info.width}x{info.height} (use .mkv or .y4m)"
        )
    if kind == "png":
        return _PngWriter(path, info, force)
    if kind == "yuv":
        return _RawWriter(path, info, force)
    if kind == "y4m":
        return _Y4mWriter(path, info, force)
    return _ContainerWriter(path, info, force, kind)
