"""Writing and reading whole .nvc files (bitstream_spec.md, sections 3, 4 and 8)."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import BinaryIO

from nvcodec.bitstream.header import Header
from nvcodec.bitstream.index import MARKER, Segment, SegmentIndex, read_index_body, read_index_from_end
from nvcodec.bitstream.record import (
    FrameFlags,
    FrameRecord,
    FrameType,
    length_value,
    read_length_field,
    read_record_after,
)
from nvcodec.errors import BitstreamError, DamagedRecord, InputError


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
    """Writes a header, then records, then (version 2.2) the segment index, over a binary file
    object, which may be a pipe."""

    def __init__(self, file: BinaryIO, header: Header) -> None:
        self._file = file
        self.header = header
        self.frames_written = 0
        self.segments: list[Segment] = []  # where each intra frame's record starts
        self._finished = False
        self._start = _tell_if_seekable(file)
        packed = header.pack()
        _write_all(file, packed)
        self._offset = len(packed)

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
        packed = record.pack()
        _write_all(self._file, packed)
        if record.frame_type == FrameType.INTRA:
            self.segments.append(Segment(index, self._offset))
        self._offset += len(packed)
        self.frames_written += 1

    def finish(self, frame_count: int) -> int:
        """Check the count, patch it in place when the header said unknown and the file can seek,
        and append the segment index when the header announces one; returns the index's size."""
        if self._finished:
            return 0
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
        index = SegmentIndex(frame_count, tuple(self.segments)).pack() if self.header.indexed else b""
        _write_all(self._file, index)
        flush = getattr(self._file, "flush", None)
        if flush is not None:
            flush()
        self._finished = True
        return len(index)


def open_bitstream(path: str) -> BinaryIO:
    """A .nvc file opened for reading; `-` is standard input."""
    if path == "-":
        return sys.stdin.buffer
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such file")
    return open(path, "rb")


class BitstreamReader:
    """Reads a header at construction, then records lazily; the file may be a non-seekable pipe.
    After the last record, `index` holds the file's segment index when it has one."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self.header = Header.read(file)
        self.header_bytes = len(self.header.pack())
        self.frames_read = 0
        self.offset = self.header_bytes  # where the next record starts
        self.index: SegmentIndex | None = None
        self._ended = False

    def __iter__(self) -> Iterator[FrameRecord]:
        """Yield records one at a time; raise BitstreamError where the stream stops being valid."""
        while (record := self.read()) is not None:
            yield record

    def seek_segment(self, frame: int) -> int:
        """Jump to the segment holding `frame` through the file's index, before any record is read;
        returns the number of the next frame to be read (0 where there is no usable index: a pipe,
        a file cut short, a stream of one segment; the caller then reads from the start)."""
        if self.frames_read or self.header.frame_count is not None and frame >= self.header.frame_count:
            return self.frames_read
        if not self.header.may_index or _tell_if_seekable(self._file) is None:
            return 0
        index = read_index_from_end(self._file, self.header_bytes)
        if index is None or self.header.frame_count not in (None, index.frame_count):
            return 0
        segment = index.segment_of(frame)
        self._file.seek(segment.offset)
        self.frames_read, self.offset = segment.first_frame, segment.offset
        return segment.first_frame

    def read(self) -> FrameRecord | None:
        """The next record, or None after the last one. A DamagedRecord error counts its record
        as read and leaves the reader at the next one; any other BitstreamError ends the stream."""
        if self._ended:
            return None
        announced = self.header.frame_count
        index = self.frames_read
        raw = read_length_field(self._file, self.header.compact_records)
        if not raw:
            return self._end_of_file()
        if self.header.may_index and raw == MARKER and index:
            return self._read_index()
        if announced is not None and index == announced:
            raise BitstreamError(f"frame {index}: more records than the {announced} frames announced")
        try:
            record = read_record_after(raw, self._file, self.header, index)
        except DamagedRecord as err:
            self._passed(raw)  # read in full: its record_len framed it
            raise err from None
        self._passed(raw)
        return record

    def _passed(self, raw: bytes) -> None:
        """Count a record read in full, from its record_len field."""
        self.frames_read += 1
        self.offset += len(raw) + length_value(raw, self.header.compact_records, self.frames_read)

    def _end_of_file(self) -> None:
        announced, index = self.header.frame_count, self.frames_read
        if announced is not None and index < announced:
            raise BitstreamError(f"truncated: header announces {announced} frames, found {index}")
        if index == 0:
            raise BitstreamError("truncated: no frames after the header")
        self._ended = True
        return None

    def _read_index(self) -> None:
        """Read the segment index that ends the stream."""
        announced, index = self.header.frame_count, self.frames_read
        if announced is not None and index < announced:
            raise BitstreamError(f"truncated: header announces {announced} frames, found {index}")
        found = read_index_body(self._file)
        if found.frame_count != index:
            raise BitstreamError(f"segment index: counts {found.frame_count} frames, the stream has {index}")
        found.check(self.header_bytes, self.offset)
        self.index, self._ended = found, True
        return None


def record_spans(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each record of a valid stream in memory, its record_len field included."""
    reader = BitstreamReader(io.BytesIO(data))
    spans, start = [], reader.offset
    for _ in reader:
        spans.append((start, reader.offset))
        start = reader.offset
    return spans


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
    index: SegmentIndex | None = None  # the segment index read after the last record, if any

    @property
    def segment_starts(self) -> tuple[int, ...]:
        """The first frame of each segment among the readable records (each intra frame)."""
        return tuple(f.index for f in self.frames if f.frame_type == FrameType.INTRA)


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
                    record.size,
                    record.crc_recon,
                    record.crc_output,
                    record.signature,
                )
            )
    except BitstreamError as exc:
        error = str(exc)
    return StreamInfo(reader.header, tuple(frames), reader.header_bytes, 0, error, reader.index)
