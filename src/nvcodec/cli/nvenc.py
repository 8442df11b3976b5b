"""nvenc: compress a video into a .nvc bitstream."""

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
    BitsType,
    PositionType,
    ProgressBar,
    RateType,
    SecondsType,
    SizeType,
    pipe_safe,
    run,
    setup_logging,
    version_option,
)
from nvcodec.codec.schedule import DEFAULT_QP, CodingParams, RateTarget, ToolMode

TOOL_MODES = click.Choice([m.value for m in ToolMode])
DECIDED_MODES = click.Choice(["auto", "off"])  # tools the encoder decides for each block or frame


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@version_option("nvenc")
@click.argument("input", metavar="INPUT")
@click.option("-o", "--output", required=True, help="The .nvc file to write (- for standard output).")
@click.option("--qp", type=click.IntRange(0, 63), help="Quality: 0 finest, 63 smallest.  [default: 32]")
@click.option(
    "--bitrate",
    type=BitsType(),
    help="Target bitrate instead of a fixed qp: 800k, 1.5M or bits per second.",
)
@click.option(
    "--rc",
    type=click.Choice(["model", "baseline"]),
    help="Rate controller for --bitrate: a learned rate model, or DCVC-FM's buffer rule.  [default: model]",
)
@click.option("--maxrate", type=BitsType(), help="With --bufsize: a VBV cap on the rate (needs --bitrate).")
@click.option("--bufsize", type=BitsType("BITS"), help="With --maxrate: the VBV buffer in bits (e.g. 1M).")
@click.option(
    "--segment",
    type=SecondsType(),
    help="Start a closed segment (intra frame, fresh references) every SECONDS: the points where "
    "decoding can start and parallel coding splits.  [default: one segment up to 20 s, else 10 s]",
)
@click.option(
    "--segment-frames", type=click.IntRange(1, 1_000_000), help="Or: a closed segment every N frames."
)
@click.option(
    "--refresh-period",
    type=click.IntRange(0, 65535),
    default=32,
    show_default=True,
    help="Refresh every N frames (0: never): the in-loop filter decisions restart there.",
)
@click.option("--frames", type=click.IntRange(min=1), help="Encode at most this many frames.")
@click.option(
    "--start",
    type=PositionType(),
    help="The first frame to code: a frame number (130) or a time (5.2s, 00:01:10).",
)
@click.option("--size", type=SizeType(), help="WxH of a raw .yuv input (I420).")
@click.option("--fps", type=RateType(), help="Frame rate of a raw input (default 25), or an override.")
@DEVICE
@click.option(
    "--precision",
    type=click.Choice(["fp32", "fp16"]),
    default="fp32",
    show_default=True,
    help="Float precision of the network (fp16 needs CUDA).",
)
@click.option(
    "--filter",
    "filter_mode",
    type=TOOL_MODES,
    default="auto",
    show_default=True,
    help="In-loop contextual filter, decided per frame in auto.",
)
@click.option(
    "--enhance",
    "enhance_mode",
    type=TOOL_MODES,
    default="auto",
    show_default=True,
    help="Out-of-loop enhancement, decided per frame in auto.",
)
@click.option(
    "--large-blocks",
    "large_blocks",
    type=TOOL_MODES,
    default="auto",
    show_default=True,
    help="32x32 motion blocks on P frames, tried at qp 27 and up in auto (off encodes faster).",
)
@click.option(
    "--flat-blocks",
    "flat_blocks",
    type=DECIDED_MODES,
    default="auto",
    show_default=True,
    help="P-frame blocks predicted by their mean where motion fails (off: readable by 2.3 decoders).",
)
@click.option(
    "--table-shifts",
    "table_shifts",
    type=DECIDED_MODES,
    default="auto",
    show_default=True,
    help="Frames rescale the latent's probability tables where that saves bits (off: readable by 2.4 decoders).",
)
@click.option(
    "--split-blocks",
    "split_blocks",
    type=DECIDED_MODES,
    default="auto",
    show_default=True,
    help="Motion blocks split into four vectors of half their side where that pays (off: readable by 2.5 decoders).",
)
@click.option(
    "--six-tap",
    "six_tap",
    type=TOOL_MODES,
    default="auto",
    show_default=True,
    help="P frames interpolated with H.264's six-tap filters instead of HEVC's eight-tap ones; auto tries "
    "both on the first P frame of each group of the qp schedule (off: readable by 2.6 decoders).",
)
@click.option(
    "--intra-prediction",
    "intra_prediction",
    type=DECIDED_MODES,
    default="auto",
    show_default=True,
    help="Intra frames' blocks take their shape from their decoded neighbours, a mode per 16x16 "
    "(off: encodes intra frames faster, readable by 2.7 decoders).",
)
@click.option(
    "--skip-edges",
    "skip_edges",
    type=DECIDED_MODES,
    default="auto",
    show_default=True,
    help="P frames deblock only the block edges that residual or motion made, not those copied from "
    "the reference, on every stream with P frames in auto (off: readable by 2.8 decoders, and no "
    "prediction offsets).",
)
@click.option(
    "--prediction-offsets",
    "prediction_offsets",
    type=DECIDED_MODES,
    default="auto",
    show_default=True,
    help="P frames add a whole-level offset to each plane's prediction, following slow changes of "
    "brightness and colour (off: readable by 2.9 decoders, and no adaptive tables).",
)
@click.option(
    "--adaptive-tables",
    "adaptive_tables",
    type=DECIDED_MODES,
    default="auto",
    show_default=True,
    help="P frames code their residual with the tables that the P frames since the intra frame "
    "would have coded best, on every stream with P frames in auto (off: readable by 2.10 decoders).",
)
@click.option(
    "--compact-records",
    "compact_records",
    type=DECIDED_MODES,
    default="auto",
    show_default=True,
    help="Records give their lengths in as few bytes as they need, about 10 bytes less per P frame, "
    "on every stream whose tables adapt in auto (off: readable by 2.11 decoders).",
)
@click.option(
    "--intra-blocks",
    "intra_blocks",
    type=DECIDED_MODES,
    default="auto",
    show_default=True,
    help="P-frame macroblocks where motion fails may be predicted from their decoded neighbours, "
    "as the encoder decides, on every stream with compact records in auto (off: readable by 2.12 "
    "decoders, and faster).",
)
@click.option(
    "--deep-references",
    "deep_references",
    type=DECIDED_MODES,
    default="auto",
    show_default=True,
    help="Decoded frames are kept in 10-bit levels for the frames that copy them (the output stays "
    "8-bit), on every stream with intra blocks in auto (off: readable by 2.13 decoders).",
)
@click.option(
    "--pixel-dc",
    "pixel_dc",
    type=DECIDED_MODES,
    default="auto",
    show_default=True,
    help="Intra frames predict each block's mean from its decoded neighbours, on every stream with "
    "10-bit references and intra prediction in auto (off: readable by 2.14 decoders).",
)
@click.option(
    "--block-modes",
    "block_modes",
    type=DECIDED_MODES,
    default="auto",
    show_default=True,
    help="Intra frames choose a mode for each 8x8 block among eight (four directions), on every "
    "stream with pixel DC in auto (off: one of four per 16x16, readable by 2.15 decoders).",
)
@click.option(
    "--sample-offsets",
    "sample_offsets",
    type=DECIDED_MODES,
    default="auto",
    show_default=True,
    help="After deblocking, each frame may move samples by their class among their neighbours "
    "(SAO's edge offsets), on every stream with block modes in auto (off: readable by 2.16 decoders).",
)
@click.option(
    "--half-pel",
    "half_pel",
    type=DECIDED_MODES,
    default="auto",
    show_default=True,
    help="P frames from qp 32 on may code their vectors in half pixels where that costs less, on "
    "every stream with sample offsets in auto (off: quarter pixels, readable by 2.17 decoders).",
)
@click.option(
    "--neighbour-levels",
    "neighbour_levels",
    type=DECIDED_MODES,
    default="auto",
    show_default=True,
    help="P frames' intra blocks may take their levels from their decoded neighbours instead of the "
    "motion, on every stream with half-pel frames in auto (off: readable by 2.18 decoders).",
)
@MAX_SIZE
@WEIGHTS
@click.option("--stats", type=click.Path(dir_okay=False), help="Write per-frame statistics as JSON.")
@click.option(
    "--recon", type=click.Path(dir_okay=False), help="Also write the decoded video (what nvdec will output)."
)
@JOBS
@CLUSTER
@FORCE
@QUIET
@pipe_safe
def command(
    input: str,
    output: str,
    qp: int | None,
    bitrate: float | None,
    rc: str | None,
    maxrate: float | None,
    bufsize: float | None,
    segment,
    segment_frames: int | None,
    refresh_period: int,
    frames: int | None,
    start,
    size,
    fps,
    device: str,
    precision: str,
    filter_mode: str,
    enhance_mode: str,
    large_blocks: str,
    flat_blocks: str,
    table_shifts: str,
    split_blocks: str,
    six_tap: str,
    intra_prediction: str,
    skip_edges: str,
    prediction_offsets: str,
    adaptive_tables: str,
    compact_records: str,
    intra_blocks: str,
    deep_references: str,
    pixel_dc: str,
    block_modes: str,
    sample_offsets: str,
    half_pel: str,
    neighbour_levels: str,
    max_size: tuple[int, int] | None,
    weights: str | None,
    stats: str | None,
    recon: str | None,
    jobs: int,
    cluster: str | None,
    force: bool,
    quiet: bool,
) -> None:
    """Compress INPUT (.y4m, .yuv, .mp4, .mkv, a %d.png pattern, or - for Y4M on stdin)."""
    setup_logging("nvenc", quiet)
    from nvcodec.codec.segments import SegmentLength  # torch and PyAV: only once the arguments are good
    from nvcodec.pipeline import EncodeJob, encode_video

    params = CodingParams(
        qp=DEFAULT_QP if qp is None else qp,
        rate=rate_target(qp, bitrate, rc, maxrate, bufsize),
        refresh_period=refresh_period,
        filter=ToolMode(filter_mode),
        enhance=ToolMode(enhance_mode),
        large_blocks=ToolMode(large_blocks),
        flat_blocks=ToolMode(flat_blocks),
        table_shifts=ToolMode(table_shifts),
        split_blocks=ToolMode(split_blocks),
        six_tap=ToolMode(six_tap),
        intra_prediction=ToolMode(intra_prediction),
        skip_edges=ToolMode(skip_edges),
        prediction_offsets=ToolMode(prediction_offsets),
        adaptive_tables=ToolMode(adaptive_tables),
        compact_records=ToolMode(compact_records),
        intra_blocks=ToolMode(intra_blocks),
        deep_references=ToolMode(deep_references),
        pixel_dc=ToolMode(pixel_dc),
        block_modes=ToolMode(block_modes),
        sample_offsets=ToolMode(sample_offsets),
        half_pel=ToolMode(half_pel),
        neighbour_levels=ToolMode(neighbour_levels),
    )
    job = EncodeJob(
        input=input,
        output=output,
        params=params,
        **({"start": start} if start is not None else {}),
        frames=frames,
        size=size,
        fps=fps,
        device=device,
        precision=precision,
        weights=weights,
        recon=recon,
        stats=stats,
        force=force,
        max_size=max_size,
        segment=SegmentLength(segment, segment_frames),
        jobs=jobs,
        cluster=cluster,
    )
    bar = ProgressBar("nvenc", quiet)
    try:
        summary = encode_video(job, bar)
    finally:
        bar.close()
    if not quiet:
        click.echo(f"nvenc: {summary.line()} -> {output} ({summary.total_bytes} bytes)", err=True)


def rate_target(
    qp: int | None, bitrate: float | None, rc: str | None, maxrate: float | None, bufsize: float | None
) -> RateTarget | None:
    """The rate-control request of the options, or None for fixed-qp coding (usage errors here)."""
    if bitrate is None:
        given = [
            flag for flag, value in (("--rc", rc), ("--maxrate", maxrate), ("--bufsize", bufsize)) if value
        ]
        if given:
            raise click.UsageError(f"{given[0]} needs --bitrate")
        return None
    if qp is not None:
        raise click.UsageError("--qp and --bitrate exclude each other: a fixed qp, or a target bitrate")
    return RateTarget(bitrate, rc or "model", maxrate, bufsize)


def main(argv: Sequence[str] | None = None) -> int:
    return run(command, "nvenc", argv)
