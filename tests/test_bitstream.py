"""The .nvc container: round trips, the writer's finish rule, every refusal, and fuzzing."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import tracemalloc
import zlib
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nvcodec
from nvcodec.bitstream import (
    MAGIC,
    BitstreamReader,
    BitstreamWriter,
    FrameFlags,
    FrameRecord,
    FrameType,
    Header,
    Tools,
    max_record_bytes,
    read_info,
)
from nvcodec.errors import BitstreamError

FUZZ = settings(deadline=None, max_examples=250, suppress_health_check=[HealthCheck.too_slow])
UNKNOWN = 0xFFFFFFFF


# --- independent builders, written from bitstream_spec.md rather than from the package -------------


def raw_header(**over: object) -> bytes:
    """Header bytes from raw field values (any value the field's type holds), CRC computed unless given."""
    f: dict = dict(
        magic=MAGIC,
        major=2,
        minor=0,
        width=64,
        height=48,
        fps_num=25,
        fps_den=1,
        frame_count=UNKNOWN,
        chroma=1,
        depth=8,
        name=b"dcvc-fm",
        name_len=None,
        hash=bytes(range(8)),
        intra=-1,
        refresh=0,
        tools=3,
        offsets=(0,),
        n=None,
        sar=b"",
        header_len=None,
        crc=None,
    )
    f.update(over)
    name, offsets = f["name"], f["offsets"]
    body = (
        struct.pack("<HHIII", f["width"], f["height"], f["fps_num"], f["fps_den"], f["frame_count"])
        + bytes([f["chroma"], f["depth"]])
        + bytes([len(name) if f["name_len"] is None else f["name_len"]])
        + name
        + f["hash"]
        + struct.pack("<iHB", f["intra"], f["refresh"], f["tools"])
        + bytes([len(offsets) if f["n"] is None else f["n"]])
        + struct.pack(f"<{len(offsets)}b", *offsets)
        + f["sar"]
    )
    header_len = len(body) if f["header_len"] is None else f["header_len"]
    head = f["magic"] + bytes([f["major"], f["minor"]]) + struct.pack("<H", header_len) + body
    return head + struct.pack("<I", zlib.crc32(head) if f["crc"] is None else f["crc"])


def raw_record(
    frame_type: int = 0,
    qp: int = 30,
    flags: int = 0,
    subs: tuple[bytes, ...] | None = None,
    n: int | None = None,
    crc_recon: int = 7,
    crc_output: int | None = None,
    signature: int = 0,
    record_len: int | None = None,
    crc: int | None = None,
) -> bytes:
    """Record bytes from raw field values, lengths and CRC computed unless given."""
    if subs is None:
        subs = (b"abcdefgh",) if frame_type == 0 else (b"zzzz", b"yyyyyyyy")
    inner = (
        struct.pack("<BBBB", frame_type, qp, flags, len(subs) if n is None else n)
        + b"".join(struct.pack("<I", len(s)) for s in subs)
        + struct.pack("<IHh", crc_recon, crc_recon & 0xFFFF if crc_output is None else crc_output, signature)
        + b"".join(subs)
    )
    length = len(inner) + 4 if record_len is None else record_len
    return struct.pack("<I", length) + inner + struct.pack("<I", zlib.crc32(inner) if crc is None else crc)


def parse(data: bytes) -> list[FrameRecord]:
    """Read a whole file from bytes (BitstreamError propagates, as would anything else)."""
    return list(BitstreamReader(io.BytesIO(data)))


def refused(data: bytes) -> str:
    """The message a reader gives for data that must be refused."""
    with pytest.raises(BitstreamError) as info:
        parse(data)
    message = str(info.value)
    assert "\n" not in message
    return message


def only_bitstream_errors(data: bytes) -> None:
    """Parse arbitrary bytes: success or BitstreamError, nothing else."""
    try:
        parse(data)
    except BitstreamError as exc:
        assert str(exc) and "\n" not in str(exc)


HEADER = Header(64, 48, 25, 1, None, "dcvc-fm", bytes(range(8)), -1, 0, 3, (0,))


def derived_header(**fields) -> Header:
    """HEADER (no tool bit that needs a version) with `fields`, its version derived again."""
    return replace(HEADER, **{"version": None, **fields})


def intra(qp: int = 30, flags: int = 0, crc: int = 7) -> FrameRecord:
    return FrameRecord(FrameType.INTRA, qp, FrameFlags(flags), (b"abcdefgh",), crc, crc & 0xFFFF, -5)


def inter(qp: int = 32, flags: int = 0, crc: int = 9) -> FrameRecord:
    return FrameRecord(FrameType.INTER, qp, FrameFlags(flags), (b"zzzz", b"yyyyyyyy"), crc, crc & 0xFFFF, 77)


def stream(header: Header, records: list[FrameRecord]) -> bytes:
    out = io.BytesIO()
    writer = BitstreamWriter(out, header)
    for record in records:
        writer.write(record)
    writer.finish(len(records))
    return out.getvalue()


SMALL = stream(HEADER.with_frame_count(3), [intra(), inter(), inter(flags=1)])


# --- strategies -----------------------------------------------------------------------------------

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._-", min_size=1, max_size=32)
headers = st.builds(
    Header,
    width=st.integers(1, 8192),
    height=st.integers(1, 8192),
    fps_num=st.integers(1, 1000),
    fps_den=st.just(1),
    frame_count=st.none() | st.integers(1, 2**31 - 1),
    model_name=names,
    weights_hash=st.binary(min_size=8, max_size=8),
    intra_period=st.just(-1) | st.integers(1, 1_000_000),
    refresh_period=st.integers(0, 65535),
    tools=st.integers(0, 3),
    qp_offsets=st.lists(st.integers(-63, 63), min_size=1, max_size=64).map(tuple),
    sar=st.none() | st.tuples(st.integers(1, 65535), st.integers(1, 65535)),
)
words = st.binary(max_size=64).map(lambda b: b[: len(b) // 4 * 4])


@st.composite
def records(draw: st.DrawFn) -> FrameRecord:
    kind = draw(st.sampled_from(FrameType))
    flags = draw(st.integers(0, 2 if kind == FrameType.INTRA else 31))
    if kind == FrameType.INTRA:
        flags &= 2
    crc = draw(st.integers(0, 2**32 - 1))
    out = draw(st.integers(0, 0xFFFF)) if flags & 2 else crc & 0xFFFF
    signature = draw(st.integers(-(2**15), 2**15 - 1))
    # intra: (latent,); inter: (motion, latent)
    subs = tuple(draw(words) for _ in range(1 if kind == FrameType.INTRA else 2))
    return FrameRecord(kind, draw(st.integers(0, 63)), FrameFlags(flags), subs, crc, out, signature)


# --- round trips ----------------------------------------------------------------------------------


@settings(deadline=None, max_examples=200)
@given(headers)
def test_header_round_trip_and_layout(header: Header) -> None:
    data = header.pack()
    assert Header.unpack(data) == header
    assert len(data) == 8 + struct.unpack_from("<H", data, 6)[0] + 4
    count = UNKNOWN if header.frame_count is None else header.frame_count
    assert data == raw_header(
        width=header.width,
        height=header.height,
        fps_num=header.fps_num,
        fps_den=header.fps_den,
        frame_count=count,
        name=header.model_name.encode(),
        hash=header.weights_hash,
        intra=header.intra_period,
        refresh=header.refresh_period,
        tools=header.tools,
        offsets=header.qp_offsets,
        minor=header.version[1],
        sar=struct.pack("<HH", *header.sar) if header.sar else b"",
    )


@settings(deadline=None, max_examples=200)
@given(records())
def test_record_round_trip(record: FrameRecord) -> None:
    data = record.pack()
    assert struct.unpack_from("<I", data)[0] == record.record_len == len(data) - 4
    assert FrameRecord.unpack(data) == record
    header = replace(
        HEADER, refresh_period=8, tools=HEADER.tools | Tools.LARGE_BLOCKS | Tools.FLAT_BLOCKS, version=None
    )
    assert FrameRecord.unpack(data, header, index=1) == record


def test_fps_and_constants() -> None:
    assert Header(64, 48, 30000, 1001, 5, "m", bytes(8), 1, 0, 0, (0,)).fps == Fraction(30000, 1001)
    assert HEADER.chroma_format == 1 and HEADER.bit_depth == 8 and HEADER.version == (2, 0)
    assert max_record_bytes(64, 48) == (1 << 20) + 16 * 64 * 64
    assert max_record_bytes(1920, 1080) == (1 << 20) + 16 * 1920 * 1088


def test_many_records_known_and_unknown_count() -> None:
    recs = [intra()] + [inter(qp=i % 64, crc=i) for i in range(1, 300)]
    for header in (HEADER, HEADER.with_frame_count(300)):
        data = stream(header, recs)
        reader = BitstreamReader(io.BytesIO(data))
        assert reader.header.frame_count == 300
        assert list(reader) == recs


def test_finish_patches_frame_count_in_place() -> None:
    out = io.BytesIO()
    writer = BitstreamWriter(out, HEADER)
    writer.write(intra())
    writer.write(inter())
    assert Header.read(io.BytesIO(out.getvalue())).frame_count is None
    writer.finish(2)
    assert out.tell() == len(out.getvalue())
    assert Header.read(io.BytesIO(out.getvalue())).frame_count == 2  # CRC rewritten too
    assert len(parse(out.getvalue())) == 2


def test_finish_on_a_pipe_leaves_the_count_unknown() -> None:
    class Pipe:
        def __init__(self) -> None:
            self.data = bytearray()

        def write(self, b: bytes) -> int:
            self.data += b
            return len(b)

    pipe = Pipe()
    writer = BitstreamWriter(pipe, HEADER)  # type: ignore[arg-type]
    writer.write(intra())
    writer.finish(1)
    reader = BitstreamReader(io.BytesIO(bytes(pipe.data)))
    assert reader.header.frame_count is None and list(reader) == [intra()]


def test_writer_refusals() -> None:
    writer = BitstreamWriter(io.BytesIO(), HEADER.with_frame_count(1))
    with pytest.raises(BitstreamError, match="frame 0: the first record must be an intra frame"):
        writer.write(inter())
    writer.write(intra())
    with pytest.raises(BitstreamError, match="more records than the 1 frames announced"):
        writer.write(inter())
    with pytest.raises(BitstreamError, match=r"finish\(3\) but 1 records were written"):
        writer.finish(3)
    writer.finish(1)
    with pytest.raises(BitstreamError, match="write after finish"):
        writer.write(inter())
    short = BitstreamWriter(io.BytesIO(), HEADER.with_frame_count(5))
    short.write(intra())
    with pytest.raises(BitstreamError, match="header announces 5 frames, wrote 1"):
        short.finish(1)
    with pytest.raises(BitstreamError, match="no frames written"):
        BitstreamWriter(io.BytesIO(), HEADER).finish(0)
    no_tools = BitstreamWriter(io.BytesIO(), Header(64, 48, 25, 1, None, "m", bytes(8), -1, 0, 0, (0,)))
    with pytest.raises(BitstreamError, match="enhancement flag set but the header's tools"):
        no_tools.write(intra(flags=2))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(width=0), "picture size 0x48 outside 1..8192"),
        (dict(height=8193), "picture size 64x8193"),
        (dict(fps_den=0), "fps_den 0 outside"),
        (dict(fps_num=1001), "frame rate 1001/1 above 1000 fps"),
        (dict(frame_count=0), "frame_count 0 outside"),
        (dict(model_name="Bad"), "model name 'Bad'"),
        (dict(model_name="x" * 33), "model name"),
        (dict(weights_hash=b"1234567"), "weights_hash must be 8 bytes"),
        (dict(intra_period=0), "intra_period 0 outside 1..1000000"),
        (dict(refresh_period=65536), "refresh_period"),
        (dict(tools=4, version=(2, 7)), "tools 4: intra prediction (bit 2) need version 2.8"),
        (dict(tools=132, version=(2, 7)), "tools 132: intra prediction (bit 2) need version 2.8"),
        (dict(tools=128, version=(2, 6)), "tools 128: six-tap filters (bit 7) need version 2.7"),
        (dict(tools=64, version=(2, 5)), "tools 64: split blocks (bit 6) need version 2.6"),
        (dict(tools=32, version=(2, 4)), "tools 32: table shifts (bit 5) need version 2.5"),
        (dict(tools=16, version=(2, 3)), "tools 16: flat blocks (bit 4) need version 2.4"),
        (dict(tools=256), "tools 256 outside 0..255"),
        (dict(tools=8, version=(2, 2)), "tools 8: large motion blocks (bit 3) need version 2.3"),
        (dict(qp_offsets=()), "number of qp offsets 0"),
        (dict(qp_offsets=(64,)), "qp offset 64 outside -63..63"),
        (dict(version=(2, 20)), "bitstream version 2.20 is newer than this decoder"),
        (dict(version=(2, 0), sar=(10, 11)), "a sample aspect ratio needs version 2.1"),
        (dict(sar=(0, 11)), "sar_num 0 outside 1..65535"),
        (dict(version=(3, 0)), "bitstream version 3.0 is newer than this decoder"),
        (dict(version=(1, 0)), "bitstream version 1.0 was made by nvcodec 0.1 (model v1)"),
        (dict(version=(0, 9)), "bitstream version 0.9 is not a released nvcodec version"),
    ],
)
def test_header_construction_refusals(kwargs: dict, message: str) -> None:
    with pytest.raises(BitstreamError) as info:
        replace(HEADER, **kwargs)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("tool", "version", "implied", "refusal"),
    [
        ("skip_edges", (2, 9), (), "deblocking the edges of residual and motion alone needs version 2.9"),
        ("prediction_offsets", (2, 10), ("skip_edges",), "prediction offsets need version 2.10"),
        (
            "adaptive_tables",
            (2, 11),
            ("prediction_offsets", "skip_edges"),
            "adaptive tables need version 2.11",
        ),
        ("compact_records", (2, 12), ("adaptive_tables",), "compact records need version 2.12"),
        (
            "intra_blocks",
            (2, 13),
            ("compact_records", "adaptive_tables"),
            "intra blocks in P frames need version 2.13",
        ),
        (
            "deep_references",
            (2, 14),
            ("intra_blocks", "compact_records"),
            "10-bit references need version 2.14",
        ),
        (
            "pixel_dc",
            (2, 15),
            ("deep_references", "intra_blocks"),
            "intra frames' DC predicted from pixels needs version 2.15",
        ),
        (
            "block_modes",
            (2, 16),
            ("pixel_dc", "deep_references"),
            "a mode per 8x8 block in intra frames needs version 2.16",
        ),
        (
            "sample_offsets",
            (2, 17),
            ("block_modes", "pixel_dc"),
            "sample offsets need version 2.17",
        ),
        (
            "half_pel",
            (2, 18),
            ("sample_offsets", "block_modes"),
            "half-pel frames need version 2.18",
        ),
        (
            "neighbour_levels",
            (2, 19),
            ("half_pel", "sample_offsets"),
            "intra blocks with their neighbours' levels need version 2.19",
        ),
    ],
)
def test_a_tool_no_bit_signals_is_said_by_the_version(
    tool: str, version: tuple[int, int], implied: tuple[str, ...], refusal: str
) -> None:
    """Each tool without a bit takes the lowest version that has it, with the tools before it; every
    stream of that version has it, no older one does, and nvcut derives the version again."""
    header = derived_header(**{tool: True})
    assert header.version == version and all(getattr(header, name) for name in implied)
    older = (version[0], version[1] - 1)
    assert getattr(derived_header(version=version), tool) and not getattr(derived_header(version=older), tool)
    assert derived_header().version == (2, 0) and not getattr(derived_header(), tool)
    with pytest.raises(BitstreamError, match=refusal):
        derived_header(**{tool: True}, version=older)
    parsed = Header.unpack(header.pack())
    assert parsed.version == version and getattr(parsed, tool)
    assert replace(parsed, version=None).version == version


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(frame_type=2), "invalid frame_type 2"),
        (dict(qp=64), "qp 64 outside 0..63"),
        (dict(flags=256), "flags 256 outside 0..255"),
        (dict(flags=128), "flags 128 on an intra frame"),
        (dict(flags=8), "flags 8 on an intra frame"),
        (dict(flags=1), "flags 1 on an intra frame"),
        (dict(substreams=(b"abcd", b"")), "2 substreams on an intra frame (must be 1)"),
        (dict(substreams=(b"abc",)), "substream 0 has 3 bytes"),
        (dict(substreams=()), "0 substreams on an intra frame (must be 1)"),
        (dict(frame_type=FrameType.INTER), "1 substreams on an inter frame (must be 2)"),
        (dict(crc_output=8), "crc_output differs from crc_recon's low 16 bits"),
        (dict(crc_recon=-1, crc_output=-1), "crc_recon -1 outside"),
        (dict(flags=2, crc_output=1 << 16), "crc_output 65536 outside 0..65535"),
        (dict(signature=1 << 15), "signature 32768 outside -32768..32767"),
    ],
)
def test_record_construction_refusals(kwargs: dict, message: str) -> None:
    with pytest.raises(BitstreamError) as info:
        replace(intra(), **kwargs)
    assert message in str(info.value)


# --- every refusal of the reader, with its message ------------------------------------------------


def test_sample_aspect_ratio_needs_and_makes_version_2_1() -> None:
    """2.1 adds the optional sample aspect ratio; a header without one is still written as 2.0."""
    sar = struct.pack("<HH", 10, 11)
    header = Header.unpack(raw_header(minor=1, sar=sar))
    assert header.sar == (10, 11) and header.version == (2, 1)
    assert Header.unpack(raw_header(minor=1)).sar is None  # 2.1 without the field
    assert replace(HEADER, sar=(10, 11), version=None).pack()[4:6] == bytes([2, 1])
    assert HEADER.pack()[4:6] == bytes([2, 0])
    assert refused(raw_header(sar=sar)) == "header_len 47 does not match its fields (43 bytes)"  # not in 2.0


def test_file_level_refusals() -> None:
    good = raw_header() + raw_record()
    assert len(parse(good)) == 1
    assert refused(b"") == "not an nvcodec bitstream (empty file)"
    assert refused(b"GIF89a" + good) == "not an nvcodec bitstream (bad magic)"
    assert refused(b"\x89P") == "not an nvcodec bitstream (bad magic)"
    assert refused(b"\x89NV") == "truncated header: expected at least 8 bytes, got 3"
    newer = "bitstream version 3.0 is newer than this decoder (reads up to 2.19); upgrade nvcodec"
    assert refused(raw_header(major=3)) == newer
    assert refused(raw_header(minor=20)).startswith("bitstream version 2.20 is newer than this decoder")
    assert refused(raw_header(major=255, minor=255)).startswith("bitstream version 255.255 is newer")
    assert refused(raw_header(major=0, minor=9)) == "bitstream version 0.9 is not a released nvcodec version"
    # a version-1 stream (nvcodec 0.1, model v1) is refused with a pointer to the release that reads it
    for minor in (0, 1):
        v1 = refused(raw_header(major=1, minor=minor) + raw_record())
        assert v1 == (
            f"bitstream version 1.{minor} was made by nvcodec 0.1 (model v1), which this decoder "
            "no longer reads; decode it with nvcodec 0.1"
        )
    assert refused(raw_header(crc=1) + raw_record()) == "header CRC mismatch (corrupted data)"
    assert refused(raw_header()[:30]) == "truncated header: expected 55 bytes, got 30"
    assert refused(raw_header(header_len=0)) == "header_len 0 outside 37..135"
    assert refused(raw_header(header_len=500)) == "header_len 500 outside 37..135"
    assert refused(raw_header()) == "truncated: no frames after the header"
    assert (
        refused(raw_header(frame_count=96) + raw_record() * 40)
        == "truncated: header announces 96 frames, found 40"
    )
    assert (
        refused(raw_header(frame_count=2) + raw_record() * 3)
        == "frame 2: more records than the 2 frames announced"
    )
    assert (
        refused(raw_header(frame_count=1) + raw_record() + b"\0")
        == "frame 1: more records than the 1 frames announced"
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (dict(width=0), "picture size 0x48 outside 1..8192"),
        (dict(width=65535), "picture size 65535x48 outside 1..8192"),
        (dict(height=0), "picture size 64x0"),
        (dict(fps_den=0), "fps_den 0 outside"),
        (dict(fps_num=0), "fps_num 0 outside"),
        (dict(fps_num=2001, fps_den=2), "frame rate 2001/2 above 1000 fps"),
        (dict(frame_count=0), "frame_count 0 outside 1..2147483647"),
        (dict(frame_count=2**31), "frame_count 2147483648 outside"),
        (dict(chroma=3), "chroma_format 3 not supported"),
        (dict(depth=10), "bit_depth 10 not supported"),
        (dict(name=b"", name_len=0, offsets=(0, 0)), "model name length 0 outside 1..32"),
        (dict(name=b"\xff\xfe\x00"), "model name has bytes outside [a-z0-9._-]"),
        (dict(name=b"DCVC"), "model name has bytes outside"),
        (dict(name=b"a" * 33), "model name length 33 outside 1..32"),
        (dict(name=b"a" * 32, offsets=(0,) * 65, sar=b"\x01\x00\x01\x00"), "header_len 136 outside 37..135"),
        (dict(sar=b"\x01\x00\x01\x00"), "header_len 47 does not match its fields (43 bytes)"),
        (dict(intra=0), "intra_period 0 outside 1..1000000"),
        (dict(intra=-2), "intra_period -2 outside"),
        (dict(intra=1_000_001), "intra_period 1000001 outside"),
        (dict(tools=4, minor=7), "tools 4: intra prediction (bit 2) need version 2.8"),
        (dict(tools=128, minor=6), "tools 128: six-tap filters (bit 7) need version 2.7"),
        (dict(tools=8, minor=2), "tools 8: large motion blocks (bit 3) need version 2.3"),
        (dict(offsets=(0, 0), n=0), "number of qp offsets 0 outside 1..64"),
        (dict(offsets=(0, 0), n=1), "header_len 44 does not match its fields (43 bytes)"),
        (dict(offsets=(64,)), "qp offset 64 outside -63..63"),
        (dict(offsets=(-64,)), "qp offset -64 outside -63..63"),
        (dict(name=b"abcd", n=40), "header_len 40 does not match its fields (79 bytes)"),
    ],
)
def test_hostile_header_values(fields: dict, message: str) -> None:
    got = refused(raw_header(**fields) + raw_record())
    assert message in got, got


def test_record_refusals() -> None:
    h = raw_header()
    no_tools = raw_header(tools=0)
    bound = max_record_bytes(64, 48)
    cases = [
        (h + raw_record(frame_type=1), "frame 0: the first record must be an intra frame"),
        (h + raw_record(frame_type=2, n=2), "frame 0: invalid frame_type 2 (0 = intra, 1 = inter)"),
        (h + raw_record(qp=64), "frame 0: qp 64 outside 0..63"),
        (h + raw_record(flags=128), "frame 0: flags 128 on an intra frame"),
        (h + raw_record(flags=8), "frame 0: flags 8 on an intra frame"),
        (h + raw_record(flags=1), "frame 0: flags 1 on an intra frame"),
        (h + raw_record(flags=4), "frame 0: flags 4 on an intra frame"),
        (
            h + raw_record() + raw_record(frame_type=1, flags=4),
            "frame 1: refresh flag set but the header's refresh_period",
        ),
        (
            no_tools + raw_record(flags=2, crc_output=3),
            "frame 0: enhancement flag set but the header's tools do not",
        ),
        (
            no_tools + raw_record() + raw_record(frame_type=1, flags=1),
            "frame 1: contextual filter flag set but the header",
        ),
        (
            no_tools + raw_record() + raw_record(frame_type=1, flags=8),
            "frame 1: large motion blocks flag set but the header's tools do not allow it",
        ),
        (
            no_tools + raw_record() + raw_record(frame_type=1, flags=16),
            "frame 1: flat blocks flag set but the header's tools do not allow it",
        ),
        (h + raw_record(flags=16), "frame 0: flags 16 on an intra frame"),
        (h + raw_record(flags=48), "frame 0: flags 48 on an intra frame"),  # table shifts and flat blocks
        (
            no_tools + raw_record(flags=32),
            "frame 0: table shifts flag set but the header's tools do not allow it",
        ),
        (
            no_tools + raw_record() + raw_record(frame_type=1, flags=32),
            "frame 1: table shifts flag set but the header's tools do not allow it",
        ),
        (
            no_tools + raw_record() + raw_record(frame_type=1, flags=64),
            "frame 1: split blocks flag set but the header's tools do not allow it",
        ),
        (h + raw_record(flags=64), "frame 0: flags 64 on an intra frame"),
        (
            no_tools + raw_record() + raw_record(frame_type=1, flags=128),
            "frame 1: six-tap filters flag set but the header's tools do not allow it",
        ),
        (h + raw_record(subs=(b"abcd",) * 3), "frame 0: n_substreams 3 on an intra frame (must be 1)"),
        (h + raw_record(subs=(b"", b"abcd")), "frame 0: n_substreams 2 on an intra frame (must be 1)"),
        (
            h + raw_record() + raw_record(frame_type=1, subs=(b"",) * 3),
            "frame 1: n_substreams 3 on an inter frame (must be 2)",
        ),
        (
            h + raw_record() + raw_record(frame_type=1, subs=(b"abcd",)),
            "frame 1: n_substreams 1 on an inter frame (must be 2)",
        ),
        (
            h + raw_record() + raw_record(frame_type=1, subs=(b"",) * 4),
            "frame 1: n_substreams 4 on an inter frame (must be 2)",
        ),
        (h + raw_record(subs=(b"abc",)), "frame 0: substream 0 has 3 bytes, not a multiple of 4"),
        (
            h + raw_record(crc_output=8),
            "frame 0: crc_output differs from crc_recon's low 16 bits on a frame without enhancement",
        ),
        (
            h + raw_record(record_len=0xFFFFFFFF),
            f"frame 0: record_len 4294967295 exceeds the bound {bound} for 64x48",
        ),
        (h + raw_record(record_len=0), "frame 0: record_len 0 below the minimum 20"),
        (h + raw_record(crc=0), "frame 0: record CRC mismatch (corrupted data)"),
        (h + raw_record() + raw_record()[:-1], "truncated record at frame 1: expected 28 bytes, got 27"),
        (h + raw_record() + b"\x10\x00", "truncated record at frame 1: expected 4 bytes (record_len), got 2"),
    ]
    for data, message in cases:
        assert refused(data) == message or refused(data).startswith(message), (message, refused(data))
    # a record_len that disagrees with its parts, with a CRC that is right for the bytes read
    body = raw_record()[4:-4] + b"\0\0\0\0"
    lying = struct.pack("<I", len(body) + 4) + body + struct.pack("<I", zlib.crc32(body))
    assert refused(h + lying) == "frame 0: record_len 32 does not match its parts (28 bytes)"


def test_enhanced_frames_may_differ_in_output_crc() -> None:
    recs = parse(
        raw_header() + raw_record(flags=2, crc_output=99) + raw_record(frame_type=1, flags=3, crc_output=5)
    )
    assert recs[0].flags == FrameFlags.ENHANCE and recs[0].crc_output == 99
    assert recs[1].flags == FrameFlags.FILTER | FrameFlags.ENHANCE


# --- streams, pipes and bounds ---------------------------------------------------------------------


class Trickle:
    """A non-seekable source with only read(), returning at most 7 bytes per call."""

    def __init__(self, data: bytes) -> None:
        self._data, self._pos = data, 0

    def read(self, n: int) -> bytes:
        chunk = self._data[self._pos : self._pos + min(n, 7)]
        self._pos += len(chunk)
        return chunk


def test_non_seekable_reading_is_lazy_and_reports_truncation() -> None:
    assert list(BitstreamReader(Trickle(SMALL))) == parse(SMALL)  # type: ignore[arg-type]
    cut = SMALL[: len(SMALL) - 10]
    reader = BitstreamReader(Trickle(cut))  # type: ignore[arg-type]
    got = []
    with pytest.raises(BitstreamError, match=r"truncated record at frame 2: expected \d+ bytes, got \d+"):
        for record in reader:
            got.append(record)
    assert len(got) == 2 and reader.frames_read == 2


def test_huge_record_len_in_a_truncated_file_is_not_allocated() -> None:
    header = raw_header(width=8192, height=8192)
    bound = max_record_bytes(8192, 8192)
    data = header + struct.pack("<I", bound) + bytes(100)
    tracemalloc.start()
    try:
        assert refused(data) == f"truncated record at frame 0: expected {bound} bytes, got 100"
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20


def test_read_info(tmp_path) -> None:
    path = tmp_path / "a.nvc"
    path.write_bytes(SMALL)
    info = read_info(path)
    assert info.error is None and info.header.frame_count == 3 and len(info.frames) == 3
    assert info.header_bytes + sum(f.record_bytes for f in info.frames) == info.file_bytes == len(SMALL)
    assert info.frames[2].flags == FrameFlags.FILTER and info.frames[0].substream_sizes == (8,)
    assert info.frames[1].substream_sizes == info.frames[2].substream_sizes == (4, 8)  # motion, latent
    path.write_bytes(SMALL[:-3])
    assert read_info(path).error.startswith("truncated record at frame 2")
    path.write_bytes(b"nope")
    with pytest.raises(BitstreamError, match="bad magic"):
        read_info(path)


def test_package_imports_neither_torch_nor_numpy() -> None:
    code = "import sys, nvcodec.bitstream; assert not {'torch', 'numpy'} & set(sys.modules)"
    src = str(Path(nvcodec.__file__).parents[1])
    subprocess.run([sys.executable, "-c", code], check=True, env={"PYTHONPATH": src})


def test_max_dimension_matches_frames() -> None:
    from nvcodec.bitstream.header import MAX_DIMENSION
    from nvcodec.frame import MAX_DIMENSION as FRAME_MAX

    assert MAX_DIMENSION == FRAME_MAX


# --- fuzzing: any bytes give records or a BitstreamError, quickly ------------------------------------


def test_every_truncation_is_refused_when_the_count_is_known() -> None:
    for cut in range(len(SMALL)):
        refused(SMALL[:cut])


def test_truncations_with_unknown_count_stop_only_at_record_boundaries() -> None:
    data = HEADER.pack() + b"".join(r.pack() for r in (intra(), inter(), inter(flags=1)))
    header_len = len(HEADER.pack())
    ends = {header_len + sum(len(r.pack()) for r in parse(data)[:k]) for k in range(1, 4)}
    for cut in range(len(data) + 1):
        if cut in ends:
            assert len(parse(data[:cut])) == sorted(ends).index(cut) + 1
        else:
            refused(data[:cut])


def test_every_single_bit_flip_is_detected() -> None:
    for bit in range(len(SMALL) * 8):
        flipped = bytearray(SMALL)
        flipped[bit // 8] ^= 1 << (bit % 8)
        refused(bytes(flipped))


@FUZZ
@given(
    st.lists(st.tuples(st.integers(0, len(SMALL) - 1), st.integers(1, 255)), min_size=1, max_size=8),
    st.integers(0, len(SMALL)),
)
def test_random_corruption_and_truncation(flips: list[tuple[int, int]], cut: int) -> None:
    damaged = bytearray(SMALL)
    for pos, mask in flips:
        damaged[pos] ^= mask
    only_bitstream_errors(bytes(damaged[:cut]))
    only_bitstream_errors(bytes(damaged))


@FUZZ
@given(st.binary(max_size=400))
def test_random_bytes(noise: bytes) -> None:
    only_bitstream_errors(noise)
    only_bitstream_errors(MAGIC + noise)
    only_bitstream_errors(MAGIC + b"\x01\x00" + noise)
    only_bitstream_errors(MAGIC + b"\x02\x00" + noise)
    only_bitstream_errors(raw_header() + noise)


@FUZZ
@given(
    width=st.integers(0, 65535),
    height=st.integers(0, 65535),
    fps_num=st.integers(0, 2**32 - 1),
    fps_den=st.integers(0, 2**32 - 1),
    frame_count=st.integers(0, 2**32 - 1),
    chroma=st.integers(0, 255),
    depth=st.integers(0, 255),
    name=st.binary(max_size=40),
    intra=st.integers(-(2**31), 2**31 - 1),
    refresh=st.integers(0, 65535),
    tools=st.integers(0, 255),
    offsets=st.lists(st.integers(-128, 127), max_size=70),
    n=st.none() | st.integers(0, 255),
)
def test_hostile_header_fields(**fields: object) -> None:
    data = raw_header(**fields)
    try:
        header = Header.read(io.BytesIO(data))
    except BitstreamError:
        return
    assert header.pack() == data  # anything accepted is canonical


@FUZZ
@given(
    frame_type=st.integers(0, 255),
    qp=st.integers(0, 255),
    flags=st.integers(0, 255),
    subs=st.lists(st.binary(max_size=12), max_size=6),
    n=st.none() | st.integers(0, 255),
    crc_recon=st.integers(0, 2**32 - 1),
    crc_output=st.none() | st.integers(0, 2**16 - 1),
    signature=st.integers(-(2**15), 2**15 - 1),
    record_len=st.none() | st.integers(0, 2**32 - 1),
    tail=st.binary(max_size=40),
)
def test_hostile_record_fields(tail: bytes, **fields: object) -> None:
    only_bitstream_errors(raw_header() + raw_record(**fields) + tail)
    only_bitstream_errors(raw_header(frame_count=2) + raw_record() + raw_record(**fields) + tail)
