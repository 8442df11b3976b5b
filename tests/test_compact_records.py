"""Compact records (bitstream 2.12, spec 4.1): varint lengths, n implied by the type, the last
substream's size implied by record_len; the same checks as the fixed-length layout."""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.test_bitstream import HEADER, derived_header, inter, intra, records, refused
from tests.test_codec import decode, encode, make_weights

from nvcodec.bitstream import BitstreamReader, BitstreamWriter, FrameRecord, FrameType
from nvcodec.bitstream.container import record_spans
from nvcodec.bitstream.header import COMPACT_VERSION
from nvcodec.bitstream.record import MAX_VARINT_BYTES, read_varint, varint
from nvcodec.codec.schedule import CodingParams, ToolMode
from nvcodec.errors import BitstreamError, InputError

COMPACT = derived_header(compact_records=True)


def compact(record: FrameRecord) -> FrameRecord:
    return replace(record, compact=True)


def compact_stream(records: list[FrameRecord], header=COMPACT, indexed: bool = False) -> bytes:
    out = io.BytesIO()
    writer = BitstreamWriter(out, replace(header, indexed=indexed, version=None))
    for record in records:
        writer.write(record)
    writer.finish(len(records))
    return out.getvalue()


def compact_body(frame_type: int, qp: int, flags: int, sizes: bytes, subs: bytes) -> bytes:
    """A compact record from raw parts: record_len as a varint, the CRC computed."""
    inner = bytes((frame_type, qp, flags)) + sizes + struct.pack("<IHh", 7, 7, 0) + subs
    return varint(len(inner) + 4) + inner + struct.pack("<I", zlib.crc32(inner))


@settings(deadline=None, max_examples=300)
@given(st.integers(0, (1 << (7 * MAX_VARINT_BYTES)) - 1))
def test_varints_round_trip_in_their_shortest_form(value: int) -> None:
    data = varint(value)
    assert len(data) == max(1, -(-value.bit_length() // 7))
    assert read_varint(data + b"\xff", 0, len(data) + 1, "x") == (value, len(data))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x80\x00", "x is not in its shortest form"),
        (b"\x81\x80\x00", "x is not in its shortest form"),
        (b"\x80" * 5 + b"\x01", "x is longer than 5 bytes"),
        (b"\x81", "x runs past the end of its data"),
        (b"", "x runs past the end of its data"),
    ],
)
def test_malformed_varints_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(BitstreamError, match=message):
        read_varint(data, 0, len(data), "x")


@settings(deadline=None, max_examples=200)
@given(records())
def test_compact_records_round_trip_and_are_shorter(record: FrameRecord) -> None:
    packed = compact(record)
    data = packed.pack()
    assert len(data) == packed.size == len(varint(packed.record_len)) + packed.record_len
    assert FrameRecord.unpack(data, replace(COMPACT, refresh_period=8, tools=0xFB), index=1) == packed
    # the fixed layout spends 4 bytes on record_len, 1 on n and 4 on each size
    saved = record.size - packed.size
    motion = len(varint(len(record.substreams[0]) // 4)) if record.frame_type == FrameType.INTER else 0
    assert saved == 4 - len(varint(packed.record_len)) + 1 + 4 * len(record.substreams) - motion


def test_a_p_record_of_a_typical_size_saves_ten_bytes() -> None:
    record = FrameRecord(FrameType.INTER, 40, 0, (b"m" * 180, b"y" * 1800), 5, 5, 0)
    assert record.size == 4 + 4 + 8 + 8 + 180 + 1800 + 4
    assert record.size - compact(record).size == 10  # 2-byte record_len, 1-byte motion size


def test_a_compact_stream_reads_back_with_its_offsets_and_index() -> None:
    recs = [compact(intra()), compact(inter()), compact(intra()), compact(inter(flags=1))]
    data = compact_stream(recs, indexed=True)
    reader = BitstreamReader(io.BytesIO(data))
    assert reader.header.version == COMPACT_VERSION and reader.header.compact_records
    assert list(reader) == recs
    spans = record_spans(data)
    assert [end - start for start, end in spans] == [r.size for r in recs]
    assert [s.offset for s in reader.index.segments] == [spans[0][0], spans[2][0]]


def test_the_layout_must_match_the_version() -> None:
    with pytest.raises(BitstreamError, match="a fixed-length record in a stream of version 2.12"):
        compact_stream([intra()])
    with pytest.raises(BitstreamError, match="a compact record in a stream of version 2.0"):
        compact_stream([compact(intra())], header=HEADER)


def test_every_truncation_and_bit_flip_of_a_compact_stream_is_refused() -> None:
    data = compact_stream([compact(intra()), compact(inter()), compact(inter(flags=1))])
    for cut in range(len(data)):
        refused(data[:cut])
    for bit in range(len(data) * 8):
        flipped = bytearray(data)
        flipped[bit // 8] ^= 1 << (bit % 8)
        refused(bytes(flipped))


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (b"\0", "frame 0: record_len 0 below the minimum 15"),
        (b"\x0e" + bytes(14), "frame 0: record_len 14 below the minimum 15"),
        (b"\x8f\x00" + bytes(15), "frame 0: record_len is not in its shortest form"),
        (b"\x8f", "truncated record at frame 0: the data ends inside record_len"),
        (compact_body(0, 30, 0, b"", b"abc"), "frame 0: substream 0 has 3 bytes, not a multiple of 4"),
        (
            compact_body(1, 30, 0, b"\x05", b"abcd"),
            "frame 0: record_len 20 too small for its substream sizes",
        ),
        (compact_body(1, 30, 0, b"\x80\x00", b""), "frame 0: the size of substream 0 is not in its shortest"),
        (compact_body(1, 30, 0, b"\x80", b""), "frame 0: the size of substream 0 runs past the end"),
        (compact_body(1, 30, 0, b"\x00", b""), "frame 0: the first record must be an intra frame"),
    ],
)
def test_malformed_compact_records_are_refused(record: bytes, message: str) -> None:
    assert refused(COMPACT.pack() + record).startswith(message)


def test_a_zero_where_a_record_starts_is_the_index_only_after_a_record() -> None:
    data = compact_stream([compact(intra()), compact(intra())], indexed=True)
    head = len(COMPACT.with_frame_count(2).pack())
    assert refused(data[:head] + b"\0\0\0\0" + data[head:]) == "frame 0: record_len 0 below the minimum 15"


def test_the_encoder_writes_compact_records_unless_told_off() -> None:
    """Same pictures and payloads either way; only the framing differs, by what `size` counts."""
    weights = make_weights()
    compact = CodingParams(qp=40, intra_blocks=ToolMode.OFF)  # 2.13's intra blocks would change the payloads
    _, compact_coded, compact_data = encode(weights, compact, frames=4, seed=5)
    _, fixed_coded, fixed_data = encode(
        weights, replace(compact, compact_records=ToolMode.OFF), frames=4, seed=5
    )
    headers = [BitstreamReader(io.BytesIO(d)).header for d in (compact_data, fixed_data)]
    assert [h.version for h in headers] == [(2, 12), (2, 11)]
    for c, f, d in zip(compact_coded, fixed_coded, decode(weights, compact_data)):
        assert c.record.substreams == f.record.substreams and c.picture.recon == f.picture.recon
        assert d.recon_matches and d.picture.recon == c.picture.recon
    assert len(compact_data) == len(headers[0].pack()) + sum(c.bytes for c in compact_coded)
    saved = [f.bytes - c.bytes for c, f in zip(compact_coded, fixed_coded)]
    assert saved[0] >= 6 and all(s >= 9 for s in saved[1:])  # I: 4 + 1 + 4 - 3; P: 4 + 1 + 8 - 4


def test_compact_records_on_is_refused() -> None:
    with pytest.raises(InputError, match="--compact-records is auto or off"):
        CodingParams(compact_records=ToolMode.ON)
