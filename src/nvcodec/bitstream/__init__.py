"""The .nvc container: file header, frame records, writer and reader (pure Python, no torch/numpy)."""

from nvcodec.bitstream.container import (
    BitstreamReader,
    BitstreamWriter,
    FrameInfo,
    StreamInfo,
    open_bitstream,
    read_info,
)
from nvcodec.bitstream.header import MAGIC, MAX_DIMENSION, UNKNOWN_FRAME_COUNT, VERSION, Header, Tools
from nvcodec.bitstream.record import FrameFlags, FrameRecord, FrameType, max_record_bytes

__all__ = [
    "MAGIC",
    "MAX_DIMENSION",
    "UNKNOWN_FRAME_COUNT",
    "VERSION",
    "BitstreamReader",
    "BitstreamWriter",
    "FrameFlags",
    "FrameInfo",
    "FrameRecord",
    "FrameType",
    "Header",
    "StreamInfo",
    "Tools",
    "max_record_bytes",
    "open_bitstream",
    "read_info",
]
