"""The .nvc file header (bitstream_spec.md, section 3): packing, parsing and validation."""

from __future__ import annotations

import io
import re
import struct
import zlib
from dataclasses import dataclass, field, replace
from enum import IntFlag
from fractions import Fraction
from typing import BinaryIO

from nvcodec.errors import BitstreamError

MAGIC = b"\x89NVC"
VERSION = (2, 19)  # the newest version this code reads and writes
BASE_VERSION = (2, 0)  # what a stream is written as when it needs nothing newer (section 10)
SAR_VERSION = (2, 1)  # adds the optional sample aspect ratio
INDEX_VERSION = (2, 2)  # adds the segment index after the last record (section 8.3)
BLOCKS_VERSION = (2, 3)  # adds large motion blocks (tools and flags bit 3)
FLAT_VERSION = (2, 4)  # adds flat blocks (tools and flags bit 4)
SHIFTS_VERSION = (2, 5)  # adds table shifts (tools and flags bit 5)
SPLIT_VERSION = (2, 6)  # adds split blocks (tools and flags bit 6)
SIX_TAP_VERSION = (2, 7)  # adds the six-tap interpolation filters (tools and flags bit 7)
INTRA_PREDICTION_VERSION = (2, 8)  # adds intra prediction (tools bit 2; no record flag)
SKIP_EDGES_VERSION = (2, 9)  # P frames deblock only the edges of residual and motion (no bit)
OFFSETS_VERSION = (2, 10)  # P frames' motion substreams start with prediction offsets (no bit)
ADAPTIVE_VERSION = (2, 11)  # P frames' latent tables adapt to the P frames before them (no bit)
COMPACT_VERSION = (2, 12)  # records give their lengths as varints (section 4.1; no bit)
INTRA_BLOCKS_VERSION = (2, 13)  # P frames' motion substreams end with an intra blocks' map (no bit)
DEEP_REFERENCES_VERSION = (2, 14)  # reconstructions are kept in 10-bit levels (section 7.6; no bit)
PIXEL_DC_VERSION = (2, 15)  # intra frames predict each block's DC from its neighbours (7.8.1; no bit)
BLOCK_MODES_VERSION = (2, 16)  # intra frames give each 8x8 block one of eight modes (7.8.1; no bit)
SAMPLE_OFFSETS_VERSION = (2, 17)  # latent substreams start with sample offsets (5.4.6, 7.6.1; no bit)
HALF_PEL_VERSION = (2, 18)  # P frames' motion substreams say whether their vectors are half-pel (no bit)
NEIGHBOUR_LEVELS_VERSION = (2, 19)  # P frames' intra blocks may take their levels from neighbours (no bit)
VERSIONS = (
    BASE_VERSION,
    SAR_VERSION,
    INDEX_VERSION,
    BLOCKS_VERSION,
    FLAT_VERSION,
    SHIFTS_VERSION,
    SPLIT_VERSION,
    SIX_TAP_VERSION,
    INTRA_PREDICTION_VERSION,
    SKIP_EDGES_VERSION,
    OFFSETS_VERSION,
    ADAPTIVE_VERSION,
    COMPACT_VERSION,
    INTRA_BLOCKS_VERSION,
    DEEP_REFERENCES_VERSION,
    PIXEL_DC_VERSION,
    BLOCK_MODES_VERSION,
    SAMPLE_OFFSETS_VERSION,
    HALF_PEL_VERSION,
    NEIGHBOUR_LEVELS_VERSION,
)
MAX_DIMENSION = 8192  # the same limit as nvcodec.frame.MAX_DIMENSION (not imported: that module needs numpy)
MAX_FPS = 1000
UNKNOWN_FRAME_COUNT = 0xFFFFFFFF
MAX_FRAME_COUNT = 2**31 - 1
CHROMA_420 = 1
BIT_DEPTH = 8
MAX_INTRA_PERIOD = 1_000_000
MAX_QP_OFFSETS = 64
MAX_QP_OFFSET = 63
MAX_MODEL_NAME = 32
WEIGHTS_HASH_BYTES = 8
PREFIX_BYTES = 8  # magic, version_major, version_minor, header_len
MIN_HEADER_LEN = 35 + 1 + 1  # fixed fields plus a 1-byte model name and one qp offset
SAR_BYTES = 4  # version 2.1: the optional sample aspect ratio after the qp offsets
MAX_HEADER_LEN = 35 + MAX_MODEL_NAME + MAX_QP_OFFSETS + SAR_BYTES
FRAME_COUNT_OFFSET = 20  # byte offset of frame_count from the start of the header
CHUNK = 1 << 20

_MODEL_NAME = re.compile(r"[a-z0-9._-]{1,32}")
_NAME_BYTES = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789._-")


class Tools(IntFlag):
    """Coding tools the header allows records to use (same bits as the record flags, but for
    intra prediction: every intra frame of a stream whose header sets it is predicted)."""

    FILTER = 1
    ENHANCE = 2
    INTRA_PREDICTION = 4
    LARGE_BLOCKS = 8
    FLAT_BLOCKS = 16
    TABLE_SHIFTS = 32
    SPLIT_BLOCKS = 64
    SIX_TAP = 128


TOOL_VERSIONS = (  # tools that need a version newer than 2.0: bit, version, name
    (Tools.LARGE_BLOCKS, BLOCKS_VERSION, "large motion blocks (bit 3)"),
    (Tools.FLAT_BLOCKS, FLAT_VERSION, "flat blocks (bit 4)"),
    (Tools.TABLE_SHIFTS, SHIFTS_VERSION, "table shifts (bit 5)"),
    (Tools.SPLIT_BLOCKS, SPLIT_VERSION, "split blocks (bit 6)"),
    (Tools.SIX_TAP, SIX_TAP_VERSION, "six-tap filters (bit 7)"),
    (Tools.INTRA_PREDICTION, INTRA_PREDICTION_VERSION, "intra prediction (bit 2)"),
)
IMPLIED_TOOLS = (  # tools no bit signals: the version alone says a stream uses them (field, version, refusal)
    ("skip_edges", SKIP_EDGES_VERSION, "deblocking the edges of residual and motion alone needs version 2.9"),
    ("prediction_offsets", OFFSETS_VERSION, "prediction offsets need version 2.10"),
    ("adaptive_tables", ADAPTIVE_VERSION, "adaptive tables need version 2.11"),
    ("compact_records", COMPACT_VERSION, "compact records need version 2.12"),
    ("intra_blocks", INTRA_BLOCKS_VERSION, "intra blocks in P frames need version 2.13"),
    ("deep_references", DEEP_REFERENCES_VERSION, "10-bit references need version 2.14"),
    ("pixel_dc", PIXEL_DC_VERSION, "intra frames' DC predicted from pixels needs version 2.15"),
    ("block_modes", BLOCK_MODES_VERSION, "a mode per 8x8 block in intra frames needs version 2.16"),
    ("sample_offsets", SAMPLE_OFFSETS_VERSION, "sample offsets need version 2.17"),
    ("half_pel", HALF_PEL_VERSION, "half-pel frames need version 2.18"),
    (
        "neighbour_levels",
        NEIGHBOUR_LEVELS_VERSION,
        "intra blocks with their neighbours' levels need version 2.19",
    ),
)


def read_fully(stream: BinaryIO, n: int) -> bytearray:
    """Read n bytes, or fewer at end of file, in chunks so that memory grows only with the data."""
    out = bytearray()
    while len(out) < n:
        chunk = stream.read(min(CHUNK, n - len(out)))
        if not chunk:
            break
        out += chunk
    return out


def check_int(name: str, value: object, lo: int, hi: int) -> int:
    """Return value if it is an int in lo..hi, else raise BitstreamError naming the field."""
    if not isinstance(value, int) or not lo <= value <= hi:
        shown = int(value) if isinstance(value, int) else repr(value)
        raise BitstreamError(f"{name} {shown} outside {lo}..{hi}")
    return value


def check_version(major: int, minor: int) -> None:
    """Refuse any version this decoder cannot read (every version other than 2.0 to 2.19)."""
    if major == 1:
        raise BitstreamError(
            f"bitstream version {major}.{minor} was made by nvcodec 0.1 (model v1), which this decoder "
            "no longer reads; decode it with nvcodec 0.1"
        )
    if (major, minor) > VERSION:
        raise BitstreamError(
            f"bitstream version {major}.{minor} is newer than this decoder "
            f"(reads up to {VERSION[0]}.{VERSION[1]}); upgrade nvcodec"
        )
    if (major, minor) not in VERSIONS:
        raise BitstreamError(f"bitstream version {major}.{minor} is not a released nvcodec version")


@dataclass(frozen=True)
class Header:
    """The file header; constructing one validates every field (BitstreamError)."""

    width: int
    height: int
    fps_num: int
    fps_den: int
    frame_count: int | None
    model_name: str
    weights_hash: bytes
    intra_period: int
    refresh_period: int
    tools: int
    qp_offsets: tuple[int, ...]
    sar: tuple[int, int] | None = None  # sample aspect ratio; None: square (1:1) or unknown
    indexed: bool = field(default=False, compare=False)  # the writer appends a segment index (2.2)
    skip_edges: bool = False  # P frames deblock only the edges of residual and motion (2.9 and later)
    prediction_offsets: bool = False  # P frames add an offset per plane to their prediction (2.10 and later)
    adaptive_tables: bool = False  # P frames' latent tables adapt (2.11 and later)
    compact_records: bool = False  # records in the compact layout (2.12 and later)
    intra_blocks: bool = False  # P frames' macroblocks may be intra predicted (2.13 and later)
    deep_references: bool = False  # reconstructions kept in 10-bit levels (2.14 and later)
    pixel_dc: bool = False  # predicted intra frames predict each block's DC from pixels (2.15 and later)
    block_modes: bool = False  # predicted intra frames have a mode of eight per 8x8 block (2.16 and later)
    sample_offsets: bool = False  # frames offset their samples by class after deblocking (2.17 and later)
    half_pel: bool = False  # P frames flag whether their vectors are whole half pixels (2.18 and later)
    neighbour_levels: bool = False  # P frames' intra blocks may take neighbours' levels (2.19 and later)
    version: tuple[int, int] | None = None  # None: the lowest version that can express the header

    @property
    def may_index(self) -> bool:
        """Whether a segment index may follow the last record (version 2.2 and later, 8.3)."""
        return self.version >= INDEX_VERSION

    def __post_init__(self) -> None:
        object.__setattr__(self, "qp_offsets", tuple(self.qp_offsets))
        if self.sar is not None:
            object.__setattr__(self, "sar", tuple(self.sar))
            if len(self.sar) != 2:
                raise BitstreamError(f"sample aspect ratio {self.sar!r} is not (num, den)")
            check_int("sar_num", self.sar[0], 1, 0xFFFF)
            check_int("sar_den", self.sar[1], 1, 0xFFFF)
        tools = self.tools if isinstance(self.tools, int) else 0
        if self.version is None:
            needs = [(version, tools & bit) for bit, version, _ in TOOL_VERSIONS]
            needs += [(INDEX_VERSION, self.indexed), (SAR_VERSION, self.sar)]
            needs += [(version, getattr(self, name)) for name, version, _ in IMPLIED_TOOLS]
            lowest = max([BASE_VERSION] + [version for version, needed in needs if needed])
            object.__setattr__(self, "version", lowest)
        object.__setattr__(self, "version", tuple(self.version))
        if self.indexed and self.version < INDEX_VERSION:
            raise BitstreamError("a segment index needs version 2.2")
        for name, version, refusal in IMPLIED_TOOLS:
            if getattr(self, name) and self.version < version:
                raise BitstreamError(refusal)
            object.__setattr__(self, name, self.version >= version)
        check_int("tools", self.tools, 0, 0xFF)
        for bit, version, name in TOOL_VERSIONS:
            if tools & bit and self.version < version:
                raise BitstreamError(f"tools {self.tools}: {name} need version {version[0]}.{version[1]}")
        object.__setattr__(self, "tools", int(self.tools))
        if len(self.version) != 2:
            raise BitstreamError(f"version {self.version!r} is not (major, minor)")
        check_version(*self.version)
        if self.sar is not None and self.version < SAR_VERSION:
            raise BitstreamError("a sample aspect ratio needs version 2.1")
        if not all(isinstance(v, int) and 1 <= v <= MAX_DIMENSION for v in (self.width, self.height)):
            raise BitstreamError(f"picture size {self.width}x{self.height} outside 1..{MAX_DIMENSION}")
        check_int("fps_num", self.fps_num, 1, 0xFFFFFFFF)
        check_int("fps_den", self.fps_den, 1, 0xFFFFFFFF)
        if self.fps_num > MAX_FPS * self.fps_den:
            raise BitstreamError(f"frame rate {self.fps_num}/{self.fps_den} above {MAX_FPS} fps")
        if self.frame_count is not None:
            if not isinstance(self.frame_count, int) or not 1 <= self.frame_count <= MAX_FRAME_COUNT:
                raise BitstreamError(
                    f"frame_count {self.frame_count!r} outside 1..{MAX_FRAME_COUNT} (or unknown)"
                )
        if not isinstance(self.model_name, str) or not _MODEL_NAME.fullmatch(self.model_name):
            raise BitstreamError(f"model name {self.model_name!r} is not 1..32 characters of [a-z0-9._-]")
        if not isinstance(self.weights_hash, bytes) or len(self.weights_hash) != WEIGHTS_HASH_BYTES:
            raise BitstreamError(
                f"weights_hash must be {WEIGHTS_HASH_BYTES} bytes, got {self.weights_hash!r}"
            )
        if self.intra_period != -1:
            check_int("intra_period", self.intra_period, 1, MAX_INTRA_PERIOD)
        check_int("refresh_period", self.refresh_period, 0, 0xFFFF)
        check_int("number of qp offsets", len(self.qp_offsets), 1, MAX_QP_OFFSETS)
        for offset in self.qp_offsets:
            check_int("qp offset", offset, -MAX_QP_OFFSET, MAX_QP_OFFSET)

    @property
    def fps(self) -> Fraction:
        """The frame rate as an exact fraction."""
        return Fraction(self.fps_num, self.fps_den)

    @property
    def chroma_format(self) -> int:
        """Always 1 (4:2:0) in version 2.0."""
        return CHROMA_420

    @property
    def bit_depth(self) -> int:
        """Always 8 in version 2.0."""
        return BIT_DEPTH

    def with_frame_count(self, frame_count: int | None) -> Header:
        """A copy announcing another frame count."""
        return replace(self, frame_count=frame_count)

    def pack(self) -> bytes:
        """The header bytes, magic through header_crc."""
        name = self.model_name.encode("ascii")
        count = UNKNOWN_FRAME_COUNT if self.frame_count is None else self.frame_count
        n = len(self.qp_offsets)
        body = (
            struct.pack(
                "<HHIIIBB", self.width, self.height, self.fps_num, self.fps_den, count, CHROMA_420, BIT_DEPTH
            )
            + bytes([len(name)])
            + name
            + self.weights_hash
            + struct.pack(
                f"<iHBB{n}b", self.intra_period, self.refresh_period, self.tools, n, *self.qp_offsets
            )
            + (struct.pack("<HH", *self.sar) if self.sar is not None else b"")
        )
        head = MAGIC + bytes(self.version) + struct.pack("<H", len(body)) + body
        return head + struct.pack("<I", zlib.crc32(head))

    @classmethod
    def read(cls, stream: BinaryIO) -> Header:
        """Read and validate a header from the start of a binary stream."""
        head = read_fully(stream, PREFIX_BYTES)
        if not head:
            raise BitstreamError("not an nvcodec bitstream (empty file)")
        if head[:4] != MAGIC[: min(4, len(head))]:
            raise BitstreamError("not an nvcodec bitstream (bad magic)")
        if len(head) < PREFIX_BYTES:
            raise BitstreamError(f"truncated header: expected at least {PREFIX_BYTES} bytes, got {len(head)}")
        check_version(head[4], head[5])
        (header_len,) = struct.unpack_from("<H", head, 6)
        if not MIN_HEADER_LEN <= header_len <= MAX_HEADER_LEN:
            raise BitstreamError(f"header_len {header_len} outside {MIN_HEADER_LEN}..{MAX_HEADER_LEN}")
        rest = read_fully(stream, header_len + 4)
        if len(rest) < header_len + 4:
            total = PREFIX_BYTES + header_len + 4
            raise BitstreamError(f"truncated header: expected {total} bytes, got {PREFIX_BYTES + len(rest)}")
        body, (crc,) = bytes(rest[:header_len]), struct.unpack_from("<I", rest, header_len)
        if zlib.crc32(rest[:header_len], zlib.crc32(head)) != crc:
            raise BitstreamError("header CRC mismatch (corrupted data)")
        return _parse_body(body, (head[4], head[5]))

    @classmethod
    def unpack(cls, data: bytes) -> Header:
        """Parse bytes that hold exactly one header."""
        stream = io.BytesIO(data)
        header = cls.read(stream)
        if stream.read(1):
            raise BitstreamError("trailing bytes after the header")
        return header


def _parse_body(body: bytes, version: tuple[int, int]) -> Header:
    """Decode the fields between header_len and header_crc (CRC already checked)."""
    width, height, fps_num, fps_den, count, chroma, depth, name_len = struct.unpack_from("<HHIIIBBB", body)
    if chroma != CHROMA_420:
        raise BitstreamError(f"chroma_format {chroma} not supported (version 2.0 has only 1 = 4:2:0)")
    if depth != BIT_DEPTH:
        raise BitstreamError(f"bit_depth {depth} not supported (version 2.0 has only 8)")
    if not 1 <= name_len <= MAX_MODEL_NAME:
        raise BitstreamError(f"model name length {name_len} outside 1..{MAX_MODEL_NAME}")
    pos = 19
    raw_name = body[pos : pos + name_len]
    if not all(b in _NAME_BYTES for b in raw_name):
        raise BitstreamError("model name has bytes outside [a-z0-9._-]")
    pos += name_len
    expected = pos + WEIGHTS_HASH_BYTES + 8
    if len(body) < expected:
        raise BitstreamError(f"header_len {len(body)} too small for its fields")
    weights_hash = body[pos : pos + WEIGHTS_HASH_BYTES]
    intra, refresh, tools, n = struct.unpack_from("<iHBB", body, pos + WEIGHTS_HASH_BYTES)
    if not 1 <= n <= MAX_QP_OFFSETS:
        raise BitstreamError(f"number of qp offsets {n} outside 1..{MAX_QP_OFFSETS}")
    sar_bytes = SAR_BYTES if version >= SAR_VERSION and len(body) == expected + n + SAR_BYTES else 0
    if len(body) != expected + n + sar_bytes:
        raise BitstreamError(f"header_len {len(body)} does not match its fields ({expected + n} bytes)")
    offsets = struct.unpack_from(f"<{n}b", body, expected)
    sar = struct.unpack_from("<HH", body, expected + n) if sar_bytes else None
    return Header(
        width,
        height,
        fps_num,
        fps_den,
        None if count == UNKNOWN_FRAME_COUNT else count,
        raw_name.decode("ascii"),
        weights_hash,
        intra,
        refresh,
        tools,
        offsets,
        sar,
        version=version,
    )
