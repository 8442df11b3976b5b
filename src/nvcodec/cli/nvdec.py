"""nvdec: turn a .nvc bitstream back into video."""

from __future__ import annotations

from collections.abc import Sequence

import click

from nvcodec.cli.common import (
    CLUSTER,
    DEVICE,
    FORCE,
    JOBS,
    MAX_SIZE,
    QUIET,
    WEIGHTS,
    PositionType,
    ProgressBar,
    pipe_safe,
    run,
    setup_logging,
    version_option,
)
from nvcodec.errors import BitstreamError


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@version_option("nvdec")
@click.argument("input", metavar="IN.nvc")
@click.option(
    "-o",
    "--output",
    required=True,
    help="Video to write: .y4m, .yuv, .mkv (FFV1), .mp4 (x264 lossless), a %d.png pattern, - (Y4M).",
)
@click.option("--no-enhance", is_flag=True, help="Skip the out-of-loop enhancement of flagged frames.")
@DEVICE
@click.option("--precision", type=click.Choice(["fp32", "fp16", "fp64"]), default="fp32", show_default=True)
@click.option(
    "--start",
    type=PositionType(),
    help="The first frame to output: a frame number (130) or a time (5.2s, 00:01:10); decoding "
    "starts at the segment holding it.",
)
@click.option("--frames", type=click.IntRange(min=1), help="Decode at most this many frames.")
@click.option(
    "--keep-going",
    is_flag=True,
    help="Go on past damaged frames, showing the last good picture in their place (exit status 4).",
)
@MAX_SIZE
@WEIGHTS
@JOBS
@CLUSTER
@FORCE
@QUIET
@pipe_safe
def command(
    input: str,
    output: str,
    no_enhance: bool,
    device: str,
    precision: str,
    start,
    frames: int | None,
    keep_going: bool,
    max_size: tuple[int, int] | None,
    weights: str | None,
    jobs: int,
    cluster: str | None,
    force: bool,
    quiet: bool,
) -> None:
    """Decode IN.nvc (- for standard input)."""
    setup_logging("nvdec", quiet)
    from nvcodec.pipeline import DecodeJob, decode_video  # torch and PyAV: only once the arguments are good

    job = DecodeJob(
        input=input,
        output=output,
        frames=frames,
        enhance=not no_enhance,
        device=device,
        precision=precision,
        weights=weights,
        force=force,
        max_size=max_size,
        keep_going=keep_going,
        jobs=jobs,
        cluster=cluster,
        **({"start": start} if start is not None else {}),
    )
    bar = ProgressBar("nvdec", quiet)
    try:
        result = decode_video(job, bar)
    finally:
        bar.close()
    n = len(result.summary.frames)
    if result.mismatched:
        first = result.mismatched[0]
        click.echo(
            f"nvdec: warning: {len(result.mismatched)} of {n} frames differ from the encoder's "
            f"reconstruction (floating-point drift; first at frame {first})",
            err=True,
        )
    if not quiet:
        click.echo(f"nvdec: {result.summary.line()} -> {output}", err=True)
    if result.damaged:
        first, why = result.damaged[0]
        click.echo(
            f"nvdec: error: {len(result.damaged)} of {n} frames could not be decoded and show the last "
            f"good picture (first: {why})",
            err=True,
        )
        raise click.exceptions.Exit(BitstreamError.exit_code)


def main(argv: Sequence[str] | None = None) -> int:
    return run(command, "nvdec", argv)
