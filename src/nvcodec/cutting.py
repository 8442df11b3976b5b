"""Cutting a .nvc file at segment boundaries: whole segments copied, nothing decoded or re-encoded."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from nvcodec.bitstream import BitstreamReader, BitstreamWriter, FrameRecord, FrameType, open_bitstream
from nvcodec.errors import InputError
from nvcodec.outputs import AtomicOutput
from nvcodec.positions import Position


@dataclass(frozen=True)
class Cut:
    """What was copied: frames first .. first + count - 1 of the input, in `segments` segments."""

    first: int
    count: int
    segments: int
    bytes: int


def cut_stream(source: str, output: str, start: Position, end: Position | None, force: bool) -> Cut:
    """Copy the segments of `source` that hold frames start .. end - 1 (to its end without `end`)."""
    with open_bitstream(source) as file:
        if output != "-" and source != "-" and os.path.exists(output) and os.path.samefile(source, output):
            raise InputError(f"{output}: output would overwrite the input")
        reader = BitstreamReader(file)
        header = reader.header
        first_wanted = start.frame_at(header.fps)
        stop = None if end is None else end.frame_at(header.fps)
        if stop is not None and stop <= first_wanted:
            raise InputError(
                f"--end {end} (frame {stop}) must come after --start {start} (frame {first_wanted})"
            )
        if header.frame_count is not None and first_wanted >= header.frame_count:
            raise InputError(
                f"--start {start} is frame {first_wanted}, past the last frame ({header.frame_count - 1})"
            )
        first = reader.seek_segment(first_wanted)
        segments = _wanted_segments(reader, first, first_wanted, stop)
        records = [record for segment in segments for record in segment[1]]
        if not records:
            raise InputError(f"--start {start} is frame {first_wanted}, past the end of the stream")
        copied = replace(header, frame_count=len(records), indexed=len(segments) > 1, version=None)
        with AtomicOutput(output, force) as out:
            writer = BitstreamWriter(out.file, copied)
            for record in records:
                writer.write(record)
            index_bytes = writer.finish(len(records))
        size = len(copied.pack()) + sum(r.size for r in records) + index_bytes
        return Cut(segments[0][0], len(records), len(segments), size)


def _wanted_segments(
    reader: BitstreamReader, index: int, start: int, stop: int | None
) -> list[tuple[int, list[FrameRecord]]]:
    """(first frame, records) of each segment from the one holding `start` to the one holding
    `stop - 1`, reading from frame `index` (a segment start)."""
    segments: list[tuple[int, list[FrameRecord]]] = []
    while (record := reader.read()) is not None:
        if record.frame_type == FrameType.INTRA:
            if stop is not None and index >= stop:
                break
            if index <= start:
                segments = []  # a segment starting at or before `start`: the earlier ones go
            segments.append((index, []))
        segments[-1][1].append(record)
        index += 1
    return segments
