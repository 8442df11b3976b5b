"""Frame records (bitstream_spec.md, section 4): packing, parsing and validation."""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import BinaryIO

from nvcodec.bitstream.header import MAX_DIMENSION, Header, Tools, check_int, read_fully
from nvcodec.errors import BitstreamError, DamagedRecord

MAX_QP = 63
FIXED_RECORD_BYTES = 4 + 8 + 4  # type/qp/flags/n, the picture checks, record_crc
MIN_RECORD_LEN = FIXED_RECORD_BYTES + 4  # an intra record with one empty substream
# Version 2.12's compact records: record_len and the substream sizes as varints, n implied by the
# type, the last substream's size implied by record_len (section 4.1).
COMPACT_FIXED_BYTES = 3 + 8 + 4  # type/qp/flags, the picture checks, record_crc
MIN_COMPACT_RECORD_LEN = COMPACT_FIXED_BYTES  # an intra record with an empty substream
MAX_VARINT_BYTES = 5  # enough for any record_len below 2^35; max_record_bytes is below 2^31


class FrameType(IntEnum):
    """How a frame is predicted."""

    INTRA = 0
    INTER = 1


class FrameFlags(IntFlag):
    """Per-frame switches."""

    FILTER = 1
    ENHANCE = 2
    REFRESH = 4
    LARGE_BLOCKS = 8  # one motion vector per 32x32 luma pixels, not 16x16
    FLAT_BLOCKS = 16  # the motion substream holds a flat-block map
    TABLE_SHIFTS = 32  # the latent substream starts with table shifts
    SPLIT_BLOCKS = 64  # the motion substream holds a split map; split blocks have four vectors
    SIX_TAP = 128  # motion compensation interpolates with the six-tap filters


ALL_FLAGS = int(
    FrameFlags.FILTER
    | FrameFlags.ENHANCE
    | FrameFlags.REFRESH
    | FrameFlags.LARGE_BLOCKS
    | FrameFlags.FLAT_BLOCKS
    | FrameFlags.TABLE_SHIFTS
    | FrameFlags.SPLIT_BLOCKS
    | FrameFlags.SIX_TAP
)
INTRA_FLAGS = FrameFlags.ENHANCE | FrameFlags.TABLE_SHIFTS  # the flags an intra frame may carry
TOOL_FLAGS = (  # a record's flag of a tool, the header's bit that allows it, the tool's name
    (FrameFlags.FILTER, Tools.FILTER, "contextual filter"),
    (FrameFlags.ENHANCE, Tools.ENHANCE, "enhancement"),
    (FrameFlags.LARGE_BLOCKS, Tools.LARGE_BLOCKS, "large motion blocks"),
    (FrameFlags.FLAT_BLOCKS, Tools.FLAT_BLOCKS, "flat blocks"),
    (FrameFlags.TABLE_SHIFTS, Tools.TABLE_SHIFTS, "table shifts"),
    (FrameFlags.SPLIT_BLOCKS, Tools.SPLIT_BLOCKS, "split blocks"),
    (FrameFlags.SIX_TAP, Tools.SIX_TAP, "six-tap filters"),
)


SUBSTREAMS = {FrameType.INTRA: 1, FrameType.INTER: 2}  # (latent,) and (motion, latent)


def max_record_bytes(width: int, height: int) -> int:
    """The largest record_len allowed for a picture size: 1 MiB + 16 bytes per 64-padded pixel."""
    return (1 << 20) + 16 * (-(-width // 64) * 64) * (-(-height // 64) * 64)


def varint(value: int) -> bytes:
    """value in LEB128: seven bits a byte, least significant first, the top bit set on all but the last."""
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def read_varint(data: bytes | memoryview, pos: int, end: int, name: str) -> tuple[int, int]:
    """The varint at data[pos:end] and the position after it; refuses one that runs past `end`,
    is longer than MAX_VARINT_BYTES or is not in its shortest form (BitstreamError naming `name`)."""
    value = 0
    for i in range(MAX_VARINT_BYTES):
        if pos + i >= end:
            raise BitstreamError(f"{name} runs past the end of its data")
        byte = data[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if byte < 0x80:
            if byte == 0 and i:
                raise BitstreamError(f"{name} is not in its shortest form")
            return value, pos + i + 1
    raise BitstreamError(f"{name} is longer than {MAX_VARINT_BYTES} bytes")


def _head_bytes(frame_type: int, qp: int, flags: int, sizes: list[int], compact: bool) -> bytes:
    """The fields before the picture checks: type, qp, flags, then the substream sizes."""
    if compact:  # n follows from the type, the last size from record_len; sizes in 4-byte words
        return bytes((frame_type, qp, flags)) + b"".join(varint(size // 4) for size in sizes[:-1])
    return struct.pack(f"<BBBB{len(sizes)}I", frame_type, qp, flags, len(sizes), *sizes)


def record_len_of(substreams: tuple[bytes, ...], compact: bool) -> int:
    """The record_len of a record holding these substreams: bytes after its length field."""
    sizes = [len(s) for s in substreams]
    return len(_head_bytes(0, 0, 0, sizes, compact)) + 8 + sum(sizes) + 4


def record_size(substreams: tuple[bytes, ...], compact: bool) -> int:
    """The bytes a record holding these substreams takes, its record_len field included."""
    record_len = record_len_of(substreams, compact)
    return record_len + (len(varint(record_len)) if compact else 4)


@dataclass(frozen=True)
class FrameRecord:
    """One coded frame; constructing one checks the rules that need no header (BitstreamError)."""

    frame_type: FrameType
    qp: int
    flags: FrameFlags
    substreams: tuple[bytes, ...]
    crc_recon: int  # CRC-32 of the reconstruction
    crc_output: int  # the low 16 bits of the output picture's CRC-32
    signature: int = 0  # the reconstruction's drift-tolerant signature (nvcodec.codec.frame_loop)
    compact: bool = False  # packed in version 2.12's compact layout (Header.compact_records)

    def __post_init__(self) -> None:
        if not isinstance(self.frame_type, int) or self.frame_type not in (0, 1):
            raise BitstreamError(f"invalid frame_type {self.frame_type!r} (0 = intra, 1 = inter)")
        object.__setattr__(self, "frame_type", FrameType(self.frame_type))
        check_int("qp", self.qp, 0, MAX_QP)
        check_int("flags", self.flags, 0, ALL_FLAGS)
        object.__setattr__(self, "flags", FrameFlags(self.flags))
        if self.frame_type == FrameType.INTRA and self.flags & ~INTRA_FLAGS:
            raise BitstreamError(
                f"flags {int(self.flags)} on an intra frame "
                "(only enhancement, 2, and table shifts, 32, are allowed)"
            )
        if not all(isinstance(s, (bytes, bytearray, memoryview)) for s in self.substreams):
            raise BitstreamError("substreams must be bytes")
        object.__setattr__(self, "substreams", tuple(bytes(s) for s in self.substreams))
        want = SUBSTREAMS[self.frame_type]
        if len(self.substreams) != want:
            raise BitstreamError(
                f"{len(self.substreams)} substreams on an {self.kind} frame (must be {want})"
            )
        object.__setattr__(self, "compact", bool(self.compact))
        for i, sub in enumerate(self.substreams):
            if len(sub) % 4:
                raise BitstreamError(f"substream {i} has {len(sub)} bytes, not a multiple of 4")
        check_int("crc_recon", self.crc_recon, 0, 0xFFFFFFFF)
        check_int("crc_output", self.crc_output, 0, 0xFFFF)
        check_int("signature", self.signature, -(1 << 15), (1 << 15) - 1)
        if not self.flags & FrameFlags.ENHANCE and self.crc_output != self.crc_recon & 0xFFFF:
            raise BitstreamError(
                "crc_output differs from crc_recon's low 16 bits on a frame without enhancement"
            )

    @property
    def layout(self) -> str:
        """'compact' (version 2.12 and later) or 'fixed-length' (2.0 to 2.11)."""
        return "compact" if self.compact else "fixed-length"

    @property
    def kind(self) -> str:
        """'intra' or 'inter'."""
        return "intra" if self.frame_type == FrameType.INTRA else "inter"

    @property
    def record_len(self) -> int:
        """The record_len field: bytes after it, through record_crc."""
        return record_len_of(self.substreams, self.compact)

    @property
    def size(self) -> int:
        """The bytes the record takes in a file, its record_len field included."""
        return record_size(self.substreams, self.compact)

    def pack(self) -> bytes:
        """The record bytes, record_len through record_crc."""
        sizes = [len(s) for s in self.substreams]
        inner = (
            _head_bytes(self.frame_type, self.qp, self.flags, sizes, self.compact)
            + struct.pack("<IHh", self.crc_recon, self.crc_output, self.signature)
            + b"".join(self.substreams)
        )
        record_len = len(inner) + 4
        length = varint(record_len) if self.compact else struct.pack("<I", record_len)
        return length + inner + struct.pack("<I", zlib.crc32(inner))

    def check(self, header: Header, index: int) -> None:
        """Check the rules that depend on the header and on the frame's position (unprefixed message)."""
        if index == 0 and self.frame_type != FrameType.INTRA:
            raise BitstreamError("the first record must be an intra frame")
        if self.compact != header.compact_records:
            major, minor = header.version
            raise BitstreamError(f"a {self.layout} record in a stream of version {major}.{minor}")
        for flag, tool, name in TOOL_FLAGS:
            if self.flags & flag and not header.tools & tool:
                raise BitstreamError(f"{name} flag set but the header's tools do not allow it")
        if self.flags & FrameFlags.REFRESH and not header.refresh_period:
            raise BitstreamError("refresh flag set but the header's refresh_period is 0 (off)")
        bound = max_record_bytes(header.width, header.height)
        if self.record_len > bound:
            raise BitstreamError(
                f"record_len {self.record_len} exceeds {bound} for {header.width}x{header.height}"
            )

    @classmethod
    def read(cls, stream: BinaryIO, header: Header | None = None, index: int = 0) -> FrameRecord | None:
        """Read one record, or return None at a clean end of file; header enables the header rules."""
        return read_record(stream, header, index)

    @classmethod
    def unpack(cls, data: bytes, header: Header | None = None, index: int = 0) -> FrameRecord:
        """Parse bytes that hold exactly one record."""
        stream = io.BytesIO(data)
        record = read_record(stream, header, index)
        if record is None:
            raise BitstreamError(f"truncated record at frame {index}: expected 4 bytes, got 0")
        if stream.read(1):
            raise BitstreamError(f"frame {index}: trailing bytes after the record")
        return record


def read_length_field(stream: BinaryIO, compact: bool) -> bytes:
    """The bytes of a record_len field (4, or a varint's 1 to 5 in a compact stream); fewer, or
    none, where the data ends. A compact field starting with 0 (never a record) is read as 4
    bytes, the length of the segment index's marker, in either layout."""
    if not compact:
        return bytes(read_fully(stream, 4))
    raw = bytearray(stream.read(1))
    if raw == b"\0":
        return bytes(raw + read_fully(stream, 3))
    while raw and raw[-1] >= 0x80 and len(raw) < MAX_VARINT_BYTES and (byte := stream.read(1)):
        raw += byte
    return bytes(raw)


def length_value(raw: bytes, compact: bool, index: int) -> int:
    """The record_len a complete field holds (BitstreamError where it is cut short or malformed)."""
    if not compact:
        if len(raw) < 4:
            raise BitstreamError(
                f"truncated record at frame {index}: expected 4 bytes (record_len), got {len(raw)}"
            )
        return struct.unpack("<I", raw)[0]
    if len(raw) < MAX_VARINT_BYTES and raw[-1] >= 0x80:
        raise BitstreamError(f"truncated record at frame {index}: the data ends inside record_len")
    try:
        return read_varint(raw, 0, len(raw), "record_len")[0]
    except BitstreamError as exc:
        raise BitstreamError(f"frame {index}: {exc}") from None


def read_record(stream: BinaryIO, header: Header | None, index: int) -> FrameRecord | None:
    """Read, bound, CRC-check and validate one record; None at a clean end of file. Without a
    header the record is read in the fixed-length layout of versions 2.0 to 2.11.

    A record that cannot be framed (truncated, impossible record_len) raises BitstreamError; one
    read in full but corrupted raises DamagedRecord, with the stream at the next record."""
    raw = read_length_field(stream, header is not None and header.compact_records)
    return read_record_after(raw, stream, header, index) if raw else None


def read_record_after(raw: bytes, stream: BinaryIO, header: Header | None, index: int) -> FrameRecord:
    """The rest of read_record once its record_len field (`raw`) is read."""
    compact = header is not None and header.compact_records
    record_len = length_value(raw, compact, index)
    w, h = (header.width, header.height) if header else (MAX_DIMENSION, MAX_DIMENSION)
    bound = max_record_bytes(w, h)
    if record_len > bound:
        raise BitstreamError(f"frame {index}: record_len {record_len} exceeds the bound {bound} for {w}x{h}")
    minimum = MIN_COMPACT_RECORD_LEN if compact else MIN_RECORD_LEN
    if record_len < minimum:
        raise BitstreamError(f"frame {index}: record_len {record_len} below the minimum {minimum}")
    body = read_fully(stream, record_len)
    if len(body) < record_len:
        raise BitstreamError(
            f"truncated record at frame {index}: expected {record_len} bytes, got {len(body)}"
        )
    view = memoryview(body)
    if zlib.crc32(view[:-4]) != struct.unpack_from("<I", body, record_len - 4)[0]:
        raise DamagedRecord(f"frame {index}: record CRC mismatch (corrupted data)")
    try:
        record = _parse(view, record_len, compact)
        if header is not None:
            record.check(header, index)
    except BitstreamError as exc:
        raise DamagedRecord(f"frame {index}: {exc}") from None
    return record


def _parse(view: memoryview, record_len: int, compact: bool) -> FrameRecord:
    """Decode the fields of a CRC-checked record body."""
    frame_type, qp, flags = view[:3]
    if frame_type not in (0, 1):
        raise BitstreamError(f"invalid frame_type {frame_type} (0 = intra, 1 = inter)")
    sizes, pos = (_compact_sizes if compact else _fixed_sizes)(view, record_len, FrameType(frame_type))
    crc_recon, crc_output, signature = struct.unpack_from("<IHh", view, pos)
    pos += 8
    if pos + sum(sizes) + 4 != record_len:
        raise BitstreamError(
            f"record_len {record_len} does not match its parts ({pos + sum(sizes) + 4} bytes)"
        )
    subs = []
    for size in sizes:
        subs.append(bytes(view[pos : pos + size]))
        pos += size
    return FrameRecord(
        FrameType(frame_type), qp, FrameFlags(flags), tuple(subs), crc_recon, crc_output, signature, compact
    )


def _fixed_sizes(view: memoryview, record_len: int, frame_type: FrameType) -> tuple[list[int], int]:
    """The substream sizes of a 2.0-2.11 record (n_substreams, then a u32 each) and where they end."""
    n, want = view[3], SUBSTREAMS[frame_type]
    if n != want:
        kind = "intra" if frame_type == FrameType.INTRA else "inter"
        raise BitstreamError(f"n_substreams {n} on an {kind} frame (must be {want})")
    if record_len < FIXED_RECORD_BYTES + 4 * n:
        raise BitstreamError(f"record_len {record_len} too small for {n} substreams")
    return list(struct.unpack_from(f"<{n}I", view, 4)), 4 + 4 * n


def _compact_sizes(view: memoryview, record_len: int, frame_type: FrameType) -> tuple[list[int], int]:
    """The substream sizes of a compact record (a varint of 4-byte words for each but the last,
    whose size is what record_len leaves) and where they end."""
    sizes, pos, end = [], 3, record_len - 12  # the picture checks and record_crc follow
    for i in range(SUBSTREAMS[frame_type] - 1):
        words, pos = read_varint(view, pos, end, f"the size of substream {i}")
        sizes.append(4 * words)
    last = end - pos - sum(sizes)
    if last < 0:
        raise BitstreamError(f"record_len {record_len} too small for its substream sizes")
    return sizes + [last], pos
