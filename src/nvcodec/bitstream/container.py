"""Writing and reading whole .nvc files (bitstream_spec.md, sections 3, 4 and 8)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import BinaryIO

from nvcodec.bitstream.header import Header, read_fully
from nvcodec.bitstream.record import FrameFlags, FrameRecord, FrameType, read_record
from nvcodec.errors import BitstreamError, DamagedRecord


def _tell_if_seekable(file: BinaryIO) -> int | None:
    """The current position of a seekable file, or None for a pipe or a write-only object."""
    try:
        return file.tell() if file.seekable() else None
    except (AttributeError, OSError, ValueError):
        return None


def _write_all(file: BinaryIO, data: bytes) -> None:
    """Write every byte, also on raw files that accept only part of a write."""
    view = memoryview(data)
    while view:
        written = file.write(view)
        if written is None or written >= len(view):
            return
        view = view[written:]


class BitstreamWriter:
    """Writes a header, then records, over a binary file object."""

    def __init__(self, file: BinaryIO, header: Header) -> None:
        self._file = file
        self.header = header
        self.frames_written = 0
        self._finished = False
        self._start = _tell_if_seekable(file)
        _write_all(file, header.pack())

    def write(self, record: FrameRecord) -> None:
        """Append one record after checking it against the header and the records before it."""
        if self._finished:
            raise BitstreamError("write after finish")
        index, announced = self.frames_written, self.header.frame_count
        if announced is not None and index >= announced:
            raise BitstreamError(f"frame {index}: more records than the {announced} frames announced")
        try:
            record.check(self.header, index)
        except BitstreamError as exc:
            raise BitstreamError(f"frame {index}: {exc}") from None
        _write_all(self._file, record.pack())
        self.frames_written += 1

    def finish(self, frame_count: int) -> None:
        """Check the count and, when the header said unknown and the file can seek, patch it in place."""
        if self._finished:
            return
        if frame_count != self.frames_written:
            raise BitstreamError(f"finish({frame_count}) but {self.frames_written} records were written")
        announced = self.header.frame_count
        if announced is not None and announced != frame_count:
            raise BitstreamError(f"truncated: header announces {announced} frames, wrote {frame_count}")
        if frame_count < 1:
            raise BitstreamError("no frames written (an empty video cannot be encoded)")
        if announced is None and self._start is not None:
            self.header = self.header.with_frame_count(frame_count)
            end = self._file.tell()
            self._file.seek(self._start)
            _write_all(self._file, self.header.pack())
            self._file.seek(end)
        flush = getattr(self._file, "flush", None)
        if flush is not None:
            flush()
        self._finished = True


class BitstreamReader:
    """Reads a header at construction, then records lazily; the file may be a non-seekable pipe."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self.header = Header.read(file)
        self.frames_read = 0

    def __iter__(self) -> Iterator[FrameRecord]:
        """Yield records one at a time; raise BitstreamError where the stream stops being valid."""
        while (record := self.read()) is not None:
            yield record

    def read(self) -> FrameRecord | None:
        """The next record, or None after the last one. A DamagedRecord error counts its record
        as read and leaves the reader at the next one; any other BitstreamError ends the stream."""
        announced = self.header.frame_count
        index = self.frames_read
        if announced is not None and index == announced:
            if read_fully(self._file, 1):
                raise BitstreamError(f"frame {index}: more records than the {announced} frames announced")
            return None
        try:
            record = read_record(self._file, self.header, index)
        except DamagedRecord:
            self.frames_read += 1
            raise
        if record is None:
            if announced is not None:
                raise BitstreamError(f"truncated: header announces {announced} frames, found {index}")
            if index == 0:
                raise BitstreamError("truncated: no frames after the header")
            return None
        self.frames_read += 1
        return record


@dataclass(frozen=True)
class FrameInfo:
    """What nvinfo shows of one record (no payload kept)."""

    index: int
    frame_type: FrameType
    qp: int
    flags: FrameFlags
    substream_sizes: tuple[int, ...]
    record_bytes: int  # including the record_len field
    crc_recon: int
    crc_output: int  # low 16 bits
    signature: int


@dataclass(frozen=True)
class StreamInfo:
    """A file's header, its readable records, and the error that stopped reading (None if valid)."""

    header: Header
    frames: tuple[FrameInfo, ...]
    header_bytes: int
    file_bytes: int
    error: str | None


class _Counted:
    """A binary stream that counts the bytes read from it (the size of a piped file)."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw, self.count = raw, 0

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self.count += len(data)
        return data


def read_info(path: str | os.PathLike[str] | BinaryIO) -> StreamInfo:
    """Summarise a .nvc file (or a stream, read to its end); a bad header raises BitstreamError, a
    later problem lands in .error."""
    if not isinstance(path, (str, os.PathLike)):
        counted = _Counted(path)
        info = _read_info(counted)
        while counted.read(1 << 20):  # what follows an error still counts in the size
            pass
        return replace(info, file_bytes=counted.count)
    with open(path, "rb") as file:
        return replace(_read_info(file), file_bytes=os.path.getsize(path))


def _read_info(file: BinaryIO) -> StreamInfo:
    """The header and every readable record's summary (file_bytes left at 0 for the caller)."""
    reader = BitstreamReader(file)
    frames: list[FrameInfo] = []
    error = None
    try:
        for record in reader:
            sizes = tuple(len(s) for s in record.substreams)
            frames.append(
                FrameInfo(
                    len(frames),
                    record.frame_type,
                    record.qp,
                    record.flags,
                    sizes,
                    record.record_len + 4,
                    record.crc_recon,
                    record.crc_output,
                    record.signature,
                )
            )
    except BitstreamError as exc:
        error = str(exc)
    return StreamInfo(reader.header, tuple(frames), len(reader.header.pack()), 0, error)
