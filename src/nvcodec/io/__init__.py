"""Video input and output: Y4M, raw I420, containers PyAV reads, lossless MKV/MP4, PNG sequences."""

from nvcodec.io.formats import OUTPUT_FORMATS, PNG_START_NUMBER, STDIO, is_pattern, output_kind
from nvcodec.io.readers import Reader, frame_from_av, open_reader
from nvcodec.io.writers import Writer, open_writer, to_av_frame

__all__ = [
    "OUTPUT_FORMATS",
    "PNG_START_NUMBER",
    "STDIO",
    "Reader",
    "Writer",
    "frame_from_av",
    "is_pattern",
    "open_reader",
    "open_writer",
    "output_kind",
    "to_av_frame",
]
