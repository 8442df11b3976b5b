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


def record_len_of(substreams: tuple[bytes, ...]) -> int:
    """The record_len of a record holding these substreams (each with its length field)."""
    return FIXED_RECORD_BYTES + sum(4 + len(s) for s in substreams)


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
    def kind(self) -> str:
        """'intra' or 'inter'."""
        return "intra" if self.frame_type == FrameType.INTRA else "inter"

    @property
    def record_len(self) -> int:
        """The record_len field: bytes after it, through record_crc."""
        return record_len_of(self.substreams)

    def pack(self) -> bytes:
        """The record bytes, record_len through record_crc."""
        n = len(self.substreams)
        sizes = [len(s) for s in self.substreams]
        inner = (
            struct.pack(f"<BBBB{n}I", self.frame_type, self.qp, self.flags, n, *sizes)
            + struct.pack("<IHh", self.crc_recon, self.crc_output, self.signature)
            + b"".join(self.substreams)
        )
        return struct.pack("<I", len(inner) + 4) + inner + struct.pack("<I", zlib.crc32(inner))

    def check(self, header: Header, index: int) -> None:
        """Check the rules that depend on the header and on the frame's position (unprefixed message)."""
        if index == 0 and self.frame_type != FrameType.INTRA:
            raise BitstreamError("the first record must be an intra frame")
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


def read_record(stream: BinaryIO, header: Header | None, index: int) -> FrameRecord | None:
    """Read, bound, CRC-check and validate one record; None at a clean end of file.

    A record that cannot be framed (truncated, impossible record_len) raises BitstreamError; one
    read in full but corrupted raises DamagedRecord, with the stream at the next record."""
    raw = read_fully(stream, 4)
    return read_record_after(raw, stream, header, index) if raw else None


def read_record_after(raw: bytes, stream: BinaryIO, header: Header | None, index: int) -> FrameRecord:
    """The rest of read_record once the first bytes (up to 4, the record_len field) are read."""
    if len(raw) < 4:
        raise BitstreamError(
            f"truncated record at frame {index}: expected 4 bytes (record_len), got {len(raw)}"
        )
    (record_len,) = struct.unpack("<I", raw)
    w, h = (header.width, header.height) if header else (MAX_DIMENSION, MAX_DIMENSION)
    bound = max_record_bytes(w, h)
    if record_len > bound:
        raise BitstreamError(f"frame {index}: record_len {record_len} exceeds the bound {bound} for {w}x{h}")
    if record_len < MIN_RECORD_LEN:
        raise BitstreamError(f"frame {index}: record_len {record_len} below the minimum {MIN_RECORD_LEN}")
    body = read_fully(stream, record_len)
    if len(body) < record_len:
        raise BitstreamError(
            f"truncated record at frame {index}: expected {record_len} bytes, got {len(body)}"
        )
    view = memoryview(body)
    if zlib.crc32(view[:-4]) != struct.unpack_from("<I", body, record_len - 4)[0]:
        raise DamagedRecord(f"frame {index}: record CRC mismatch (corrupted data)")
    try:
        record = _parse(view, record_len)
        if header is not None:
            record.check(header, index)
    except BitstreamError as exc:
        raise DamagedRecord(f"frame {index}: {exc}") from None
    return record


def _parse(view: memoryview, record_len: int) -> FrameRecord:
    """Decode the fields of a CRC-checked record body."""
    frame_type, qp, flags, n = view[:4]
    if frame_type not in (0, 1):
        raise BitstreamError(f"invalid frame_type {frame_type} (0 = intra, 1 = inter)")
    want = SUBSTREAMS[FrameType(frame_type)]
    if n != want:
        kind = "intra" if frame_type == FrameType.INTRA else "inter"
        raise BitstreamError(f"n_substreams {n} on an {kind} frame (must be {want})")
    fixed = FIXED_RECORD_BYTES + 4 * n
    if record_len < fixed:
        raise BitstreamError(f"record_len {record_len} too small for {n} substreams")
    sizes = struct.unpack_from(f"<{n}I", view, 4)
    crc_recon, crc_output, signature = struct.unpack_from("<IHh", view, 4 + 4 * n)
    if fixed + sum(sizes) != record_len:
        raise BitstreamError(f"record_len {record_len} does not match its parts ({fixed + sum(sizes)} bytes)")
    subs, pos = [], 12 + 4 * n
    for size in sizes:
        subs.append(bytes(view[pos : pos + size]))
        pos += size
    return FrameRecord(
        FrameType(frame_type), qp, FrameFlags(flags), tuple(subs), crc_recon, crc_output, signature
    )
