"""nvinfo: show what a .nvc bitstream holds (header, and per frame with --frames)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import click

from nvcodec.bitstream import Header, StreamInfo, Tools, read_info
from nvcodec.cli.common import pipe_safe, run, version_option
from nvcodec.errors import InputError
from nvcodec.stats import flag_names


def _header_lines(info: StreamInfo) -> list[str]:
    h = info.header
    count = "unknown (stream)" if h.frame_count is None else str(h.frame_count)
    return [
        f"format        nvcodec bitstream {h.version[0]}.{h.version[1]}",
        f"picture       {h.width}x{h.height}, 4:2:0, {h.bit_depth}-bit, {float(h.fps):g} fps ({h.fps_num}/{h.fps_den})"
        + (f", sample aspect {h.sar[0]}:{h.sar[1]}" if h.sar else ""),
        f"frames        {count} announced, {len(info.frames)} readable",
        f"model         {h.model_name}, weights {h.weights_hash.hex()}",
        _segments_line(info),
        f"refresh       {h.refresh_period or 'off'}",
        f"tools         {', '.join(_tool_names(h)) or 'none'}",
        f"qp offsets    {' '.join(map(str, h.qp_offsets))}",
        f"size          {info.file_bytes} bytes (header {info.header_bytes})",
    ]


def _tool_names(h: Header) -> list[str]:
    """The tools the header allows: its bits, then skipped edges (2.9), prediction offsets (2.10),
    adaptive tables (2.11), intra blocks (2.13), 10-bit references (2.14), pixel DC (2.15), block
    modes (2.16), sample offsets (2.17), half-pel frames (2.18) and neighbour levels (2.19), which
    the version implies (the compact records of 2.12 are framing, not a coding tool)."""
    implied = [
        ("skip_edges", h.skip_edges),
        ("prediction_offsets", h.prediction_offsets),
        ("adaptive_tables", h.adaptive_tables),
        ("intra_blocks", h.intra_blocks),
        ("deep_references", h.deep_references),
        ("pixel_dc", h.pixel_dc),
        ("block_modes", h.block_modes),
        ("sample_offsets", h.sample_offsets),
        ("half_pel", h.half_pel),
        ("neighbour_levels", h.neighbour_levels),
    ]
    return [t.name.lower() for t in Tools if h.tools & t] + [name for name, on in implied if on]


def _segments(info: StreamInfo) -> list[dict[str, int]]:
    """Each segment's first frame and byte offset: from the index, else from the records read."""
    if info.index is not None:
        return [{"first_frame": s.first_frame, "offset": s.offset} for s in info.index.segments]
    offsets, offset = [], info.header_bytes
    for f in info.frames:
        if f.frame_type == 0:
            offsets.append({"first_frame": f.index, "offset": offset})
        offset += f.record_bytes
    return offsets


def _segments_line(info: StreamInfo) -> str:
    h, found = info.header, _segments(info)
    period = "one intra frame" if h.intra_period < 0 else f"an intra frame every {h.intra_period} frames"
    if info.index is not None:
        where = "indexed"
    elif len(found) <= 1:
        where = "no index (one segment)"
    else:
        where = "index missing (found by scanning)" if h.may_index else "no index"
    starts = " ".join(str(s["first_frame"]) for s in found[:12]) + (" ..." if len(found) > 12 else "")
    return f"segments      {len(found)} ({period}; {where}): start at frames {starts}"


def _rate_line(info: StreamInfo) -> str:
    h, n = info.header, len(info.frames)
    if not n:
        return "rate          -"
    bits = 8 * info.file_bytes
    return f"rate          {bits * float(h.fps) / n / 1000:.1f} kbit/s, {bits / (n * h.width * h.height):.4f} bpp"


def _frame_table(info: StreamInfo) -> list[str]:
    lines = [f"{'frame':>6} {'type':>4} {'qp':>3} {'flags':<22} {'bytes':>8}  substreams"]
    for f in info.frames:
        kind = "I" if f.frame_type == 0 else "P"
        flags = ",".join(flag_names(f.flags)) or "-"
        subs = " ".join(map(str, f.substream_sizes))
        lines.append(f"{f.index:>6} {kind:>4} {f.qp:>3} {flags:<22} {f.record_bytes:>8}  {subs}")
    return lines


def _as_json(info: StreamInfo) -> str:
    h = info.header
    return json.dumps(
        {
            "version": list(h.version),
            "width": h.width,
            "height": h.height,
            "fps": f"{h.fps_num}/{h.fps_den}",
            "frame_count": h.frame_count,
            "model": h.model_name,
            "weights": h.weights_hash.hex(),
            "intra_period": h.intra_period,
            "refresh_period": h.refresh_period,
            "tools": h.tools,
            "skip_edges": h.skip_edges,
            "prediction_offsets": h.prediction_offsets,
            "adaptive_tables": h.adaptive_tables,
            "compact_records": h.compact_records,
            "intra_blocks": h.intra_blocks,
            "deep_references": h.deep_references,
            "pixel_dc": h.pixel_dc,
            "block_modes": h.block_modes,
            "sample_offsets": h.sample_offsets,
            "half_pel": h.half_pel,
            "neighbour_levels": h.neighbour_levels,
            "qp_offsets": list(h.qp_offsets),
            "sar": list(h.sar) if h.sar else None,
            "file_bytes": info.file_bytes,
            "indexed": info.index is not None,
            "segments": _segments(info),
            "error": info.error,
            "frames": [
                {
                    "index": f.index,
                    "type": "I" if f.frame_type == 0 else "P",
                    "qp": f.qp,
                    "flags": flag_names(f.flags),
                    "bytes": f.record_bytes,
                    "substreams": list(f.substream_sizes),
                }
                for f in info.frames
            ],
        },
        indent=1,
    )


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@version_option("nvinfo")
@click.argument("input", metavar="IN.nvc")
@click.option("--frames", "show_frames", is_flag=True, help="Also list every frame: type, qp, flags, bytes.")
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON.")
@pipe_safe
def command(input: str, show_frames: bool, as_json: bool) -> None:
    """Show the header of IN.nvc (- for standard input) and a summary of its frames."""
    if input == "-":
        info = read_info(sys.stdin.buffer)
    elif Path(input).is_file():
        info = read_info(input)
    else:
        raise InputError(f"{input}: no such file")
    if as_json:
        click.echo(_as_json(info))
    else:
        lines = _header_lines(info) + [_rate_line(info)]
        if show_frames:
            lines += [""] + _frame_table(info)
        click.echo("\n".join(lines))
    if info.error:
        click.echo(f"nvinfo: error: {info.error}", err=True)
        raise click.exceptions.Exit(4)


def main(argv: Sequence[str] | None = None) -> int:
    return run(command, "nvinfo", argv)
