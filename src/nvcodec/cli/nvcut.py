"""nvcut: copy a stretch of a .nvc file into a new one, whole segments, without re-encoding."""

from __future__ import annotations

from collections.abc import Sequence

import click

from nvcodec.cli.common import FORCE, QUIET, PositionType, pipe_safe, run, version_option


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@version_option("nvcut")
@click.argument("input", metavar="IN.nvc")
@click.option("-o", "--output", required=True, help="The .nvc file to write (- for standard output).")
@click.option(
    "--start",
    type=PositionType(),
    required=True,
    help="The first frame wanted: a frame number (130) or a time (5.2s, 00:01:10).",
)
@click.option(
    "--end", type=PositionType(), help="The first frame not wanted (default: the end of the stream)."
)
@FORCE
@QUIET
@pipe_safe
def command(input: str, output: str, start, end, force: bool, quiet: bool) -> None:
    """Copy the segments of IN.nvc (- for standard input) that hold frames START .. END-1.

    Segments are copied whole, so the copy starts at the segment holding START (an intra frame)
    and ends with the segment holding END-1; nvinfo shows where the segments start."""
    from nvcodec.cutting import cut_stream

    cut = cut_stream(input, output, start, end, force)
    if not quiet:
        last = cut.first + cut.count - 1
        click.echo(
            f"nvcut: frames {cut.first}..{last} ({cut.segments} segment{'s' * (cut.segments > 1)}, {cut.bytes} bytes) -> {output}",
            err=True,
        )


def main(argv: Sequence[str] | None = None) -> int:
    return run(command, "nvcut", argv)
