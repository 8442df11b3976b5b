"""The segment index of version 2.2 (bitstream_spec.md, 8.3): where each closed segment starts.

A segment is an intra frame and the P frames after it up to the next intra frame; nothing in it
depends on an earlier frame, so decoding can start at any segment. The index follows the last
record, introduced by a zero where the next record_len would be, so that an encoder writing to a
pipe can still append it:

    u32 0 | "NVIX" | u32 segment_count | u32 frame_count | segment_count x (u32 first_frame,
    u64 offset) | u32 crc | u32 index_len | "NVIX"

`offset` is the byte position of the segment's first record (its record_len field) from the start
of the file, `crc` the CRC-32 of the bytes from the first "NVIX" to the last entry, and index_len
the index's size from the zero marker to the end, so that a reader can find it from the end of a
file. A file without its index (cut short, or read from a pipe) is still decoded and searched by
scanning the records.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from typing import BinaryIO

from nvcodec.bitstream.header import MAX_FRAME_COUNT, read_fully
from nvcodec.errors import BitstreamError

INDEX_MAGIC = b"NVIX"
MARKER = b"\0\0\0\0"  # where a record_len would be: no record is that short
ENTRY = struct.Struct("<IQ")
COUNTS = struct.Struct("<II")
TAIL = struct.Struct("<II4s")  # crc, index_len, magic
FIXED_BYTES = len(MARKER) + len(INDEX_MAGIC) + COUNTS.size + TAIL.size


@dataclass(frozen=True)
class Segment:
    """Where a segment starts: its first frame's number and its first record's byte offset."""

    first_frame: int
    offset: int


@dataclass(frozen=True)
class SegmentIndex:
    """The frame count of a file and its segments in order."""

    frame_count: int
    segments: tuple[Segment, ...]

    def pack(self) -> bytes:
        """The index bytes, marker through the closing magic."""
        body = INDEX_MAGIC + COUNTS.pack(len(self.segments), self.frame_count)
        body += b"".join(ENTRY.pack(s.first_frame, s.offset) for s in self.segments)
        return (
            MARKER
            + body
            + TAIL.pack(zlib.crc32(body), FIXED_BYTES + ENTRY.size * len(self.segments), INDEX_MAGIC)
        )

    def check(self, header_bytes: int, end: int) -> None:
        """The rules of 8.3: segment 0 at frame 0 right after the header, frames and offsets strictly
        increasing, every offset before the index (at byte `end`), every first frame counted."""
        segments = self.segments
        if not segments or segments[0] != Segment(0, header_bytes):
            raise BitstreamError("segment index: the first segment must start at frame 0 after the header")
        for before, after in zip(segments, segments[1:]):
            if not (before.first_frame < after.first_frame and before.offset < after.offset):
                raise BitstreamError("segment index: segments out of order")
        if segments[-1].offset >= end or not segments[-1].first_frame < self.frame_count <= MAX_FRAME_COUNT:
            raise BitstreamError("segment index: a segment lies past the end of the stream")

    def segment_of(self, frame: int) -> Segment:
        """The last segment starting at or before `frame`."""
        return max((s for s in self.segments if s.first_frame <= frame), key=lambda s: s.first_frame)


def read_index_body(stream: BinaryIO) -> SegmentIndex:
    """Parse an index from just after its zero marker (checks its framing and CRC, not its
    entries: SegmentIndex.check does that)."""
    head = read_fully(stream, len(INDEX_MAGIC) + COUNTS.size)
    if len(head) < len(INDEX_MAGIC) + COUNTS.size or head[:4] != INDEX_MAGIC:
        raise BitstreamError("a zero record_len not followed by a segment index")
    count, frames = COUNTS.unpack_from(head, 4)
    if not 1 <= count <= frames:
        raise BitstreamError(f"segment index: {count} segments for {frames} frames")
    entries = read_fully(stream, ENTRY.size * count)
    tail = read_fully(stream, TAIL.size)
    if len(entries) < ENTRY.size * count or len(tail) < TAIL.size:
        raise BitstreamError("segment index: truncated")
    crc, length, magic = TAIL.unpack(tail)
    if crc != zlib.crc32(entries, zlib.crc32(head)) or magic != INDEX_MAGIC:
        raise BitstreamError("segment index: CRC mismatch (corrupted data)")
    if length != FIXED_BYTES + ENTRY.size * count:
        raise BitstreamError(f"segment index: index_len {length} does not match its segment count {count}")
    if read_fully(stream, 1):
        raise BitstreamError("bytes after the segment index")
    segments = tuple(Segment(*ENTRY.unpack_from(entries, ENTRY.size * i)) for i in range(count))
    return SegmentIndex(frames, segments)


def read_index_from_end(file: BinaryIO, header_bytes: int) -> SegmentIndex | None:
    """The index of a seekable file, found from its last bytes; None when it has none or a damaged
    one (the caller then scans). The file position is restored."""
    try:
        here = file.tell()
    except OSError:
        return None
    try:
        size = file.seek(0, os.SEEK_END)
        if size < header_bytes + FIXED_BYTES:
            return None
        file.seek(size - TAIL.size)
        _, length, magic = TAIL.unpack(file.read(TAIL.size))
        if magic != INDEX_MAGIC or not FIXED_BYTES <= length <= size - header_bytes:
            return None
        start = size - length
        file.seek(start)
        if file.read(len(MARKER)) != MARKER:
            return None
        index = read_index_body(file)
        index.check(header_bytes, start)
        return index
    except BitstreamError:
        return None
    finally:
        file.seek(here)
