"""Whole jobs: a video file to a .nvc file and back, with outputs that appear only when complete."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, Protocol

from nvcodec.bitstream import BitstreamReader, BitstreamWriter, Header
from nvcodec.codec.decoder import DecodedFrame, Decoder
from nvcodec.codec.encoder import EncodedFrame, Encoder
from nvcodec.codec.frame_loop import resolve_device, resolve_precision
from nvcodec.codec.schedule import CodingParams
from nvcodec.errors import BitstreamError, DamagedRecord, InputError
from nvcodec.frame import Frame, VideoInfo, gray_frame
from nvcodec.io import is_pattern, open_reader, open_writer
from nvcodec.io.formats import OUTPUT_FORMATS, extension, input_label
from nvcodec.io.writers import Writer
from nvcodec.limits import check_picture_size
from nvcodec.metrics import frame_psnr
from nvcodec.outputs import STDOUT, AtomicOutput, check_writable
from nvcodec.stats import FrameReport, Summary
from nvcodec.weights import Weights, default_weights_path, load_weights


class Progress(Protocol):
    """Told how many frames to expect (None: unknown), then about each frame."""

    def begin(self, total: int | None) -> None: ...

    def __call__(self, report: FrameReport) -> None: ...


@dataclass(frozen=True)
class EncodeJob:
    """Everything `nvenc` was asked to do."""

    input: str
    output: str
    params: CodingParams = CodingParams()
    start: int = 0
    frames: int | None = None
    size: tuple[int, int] | None = None
    fps: Fraction | None = None
    device: str = "auto"
    precision: str = "fp32"
    weights: str | None = None
    recon: str | None = None
    stats: str | None = None
    force: bool = False
    max_size: tuple[int, int] | None = None  # None: limits.DEFAULT_MAX_SIZE


@dataclass(frozen=True)
class DecodeJob:
    """Everything `nvdec` was asked to do."""

    input: str
    output: str
    frames: int | None = None
    enhance: bool = True
    device: str = "auto"
    precision: str = "fp32"
    weights: str | None = None
    force: bool = False
    max_size: tuple[int, int] | None = None  # None: limits.DEFAULT_MAX_SIZE
    keep_going: bool = False  # conceal damaged records instead of stopping at the first


@dataclass
class DecodeResult:
    summary: Summary
    mismatched: list[int]  # frames whose reconstruction differs from the encoder's (float drift)
    damaged: list[tuple[int, str]]  # (frame, why) of records concealed with --keep-going


def _weights(path: str | None) -> Weights:
    return load_weights(path if path is not None else default_weights_path())


def _check_outputs(paths: list[str | None], inputs: list[str], force: bool) -> None:
    """Refuse overwriting an input, the same output twice, or an existing file without force."""
    named = [p for p in paths if p is not None and p != STDOUT]
    resolved = [Path(p).resolve() for p in named]
    if len(set(resolved)) != len(resolved):
        raise InputError("the same file is named for two outputs")
    sources = {Path(p).resolve() for p in inputs if p != STDOUT}
    for p, r in zip(named, resolved):
        if r in sources:
            raise InputError(f"{p}: output would overwrite the input")
        if not is_pattern(p):  # a PNG sequence's writer checks each of its files
            check_writable(p, force)
    if sum(p == STDOUT for p in paths if p is not None) > 1:
        raise InputError("only one output can go to standard output")


def _check_bitstream_name(path: str) -> None:
    """Refuse a video file name for the .nvc output: `-o out.mp4` would write a file that no
    player reads as MP4."""
    ext = extension(path)
    if path != STDOUT and (ext in OUTPUT_FORMATS or ext == ".png"):
        raise InputError(
            f"{path}: nvenc writes .nvc bitstreams, not {ext} files; name the output .nvc "
            f"(nvdec makes the {ext} from it)"
        )


def _expected_count(total: int | None, start: int, frames: int | None) -> int | None:
    """Frames the job will code when the input's length is known (else None: patched at the end)."""
    if total is None:
        return None
    available = max(0, total - start)
    return available if frames is None else min(available, frames)


def _write_stats(path: str, summary: Summary, force: bool) -> None:
    with AtomicOutput(path, force) as out:
        out.file.write(json.dumps(summary.to_dict(), indent=1).encode() + b"\n")


def encode_video(job: EncodeJob, progress: Progress | None = None) -> Summary:
    """Encode job.input into job.output; returns the summary (PSNR of the shown pictures)."""
    if job.start < 0 or (job.frames is not None and job.frames < 1):
        raise InputError("--start must be >= 0 and --frames >= 1")
    _check_outputs([job.output, job.recon, job.stats], [job.input], job.force)
    _check_bitstream_name(job.output)
    weights = _weights(job.weights)
    device = resolve_device(job.device)
    dtype = resolve_precision(job.precision, device)
    with open_reader(job.input, job.size, job.fps) as reader:
        check_picture_size(reader.info.width, reader.info.height, job.max_size, input_label(job.input))
        info = replace(
            reader.info, frame_count=_expected_count(reader.info.frame_count, job.start, job.frames)
        )
        if info.frame_count == 0:
            raise InputError(f"{job.input}: no frames to encode (start {job.start})")
        expected = info.frame_count or _expected_count(reader.estimated_count(), job.start, job.frames)
        encoder = Encoder(weights, job.params, info, device, dtype, length_hint=expected or job.frames)
        if progress:
            progress.begin(expected or job.frames)
        with AtomicOutput(job.output, job.force) as out:
            recon = open_writer(job.recon, info, job.force) if job.recon else None
            try:
                summary = _encode_frames(
                    reader.frames(job.start, job.frames), encoder, out.file, recon, progress
                )
            except BaseException:
                if recon:
                    recon.abort()
                raise
            if not summary.frames:
                raise InputError(f"{job.input}: no frames to encode")
            if recon:
                recon.close()
    if job.stats:
        _write_stats(job.stats, summary, job.force)
    return summary


def _encode_frames(
    frames: Iterable[Frame], encoder: Encoder, file: BinaryIO, recon: Writer | None, progress: Progress | None
) -> Summary:
    header = encoder.header
    writer = BitstreamWriter(file, header)
    summary = Summary(header.width, header.height, header.fps, header_bytes=len(header.pack()))
    if encoder.params.rate is not None:
        summary.target_kbps = encoder.params.rate.bitrate / 1000
    began = time.perf_counter()
    for frame in frames:
        coded: EncodedFrame = encoder.encode(frame)
        writer.write(coded.record)
        if recon:
            recon.write(coded.picture.output)
        report = FrameReport.of(coded.plan.index, coded.record, frame_psnr(frame, coded.picture.output))
        summary.frames.append(report)
        if progress:
            progress(report)
    summary.seconds = time.perf_counter() - began
    if summary.frames:
        writer.finish(len(summary.frames))
    return summary


def _open_bitstream(path: str) -> BinaryIO:
    if path == STDOUT:
        return sys.stdin.buffer
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{path}: no such file")
    return p.open("rb")


def decode_video(job: DecodeJob, progress: Progress | None = None) -> DecodeResult:
    """Decode job.input into job.output; frames that drift from the encoder are listed."""
    if job.frames is not None and job.frames < 1:
        raise InputError("--frames must be >= 1")
    _check_outputs([job.output], [job.input], job.force)
    with _open_bitstream(job.input) as source:
        reader = BitstreamReader(source)
        header = reader.header
        check_picture_size(header.width, header.height, job.max_size, input_label(job.input))
        weights = _weights(job.weights)
        device = resolve_device(job.device)
        decoder = Decoder(weights, header, device, resolve_precision(job.precision, device), job.enhance)
        info = header_info(header, job.frames)
        if progress:
            progress.begin(info.frame_count)
        with open_writer(job.output, info, job.force) as writer:
            return _decode_frames(reader, decoder, writer, job, progress)


def header_info(header: Header, frames: int | None) -> VideoInfo:
    """The video a bitstream holds, as a writer needs it (at most `frames` frames)."""
    count = header.frame_count
    if frames is not None:
        count = frames if count is None else min(count, frames)
    sar = None if header.sar is None else Fraction(*header.sar)
    return VideoInfo(header.width, header.height, header.fps, count, sar)


def _decode_frames(
    reader: BitstreamReader, decoder: Decoder, writer: Writer, job: DecodeJob, progress: Progress | None
) -> DecodeResult:
    """Decode into the writer; where the stream stops being decodable, keep the frames before it."""
    header = reader.header
    result = DecodeResult(Summary(header.width, header.height, header.fps, len(header.pack())), [], [])
    began = time.perf_counter()
    try:
        _decode_records(reader, decoder, writer, job, progress, result)
    except BitstreamError as err:
        kept = len(result.summary.frames)
        if not kept:
            raise
        writer.close()
        advice = "; --keep-going decodes past damaged frames" if isinstance(err, DamagedRecord) else ""
        where = "standard output" if job.output == STDOUT else job.output
        concealed = f" ({len(result.damaged)} of them concealed)" if result.damaged else ""
        raise BitstreamError(
            f"{err}; decoding stopped there, the {kept} frames before it are in {where}{concealed}{advice}"
        ) from None
    result.summary.seconds = time.perf_counter() - began
    return result


def _decode_records(
    reader: BitstreamReader,
    decoder: Decoder,
    writer: Writer,
    job: DecodeJob,
    progress: Progress | None,
    result: DecodeResult,
) -> None:
    shown: Frame | None = None
    while job.frames is None or len(result.summary.frames) < job.frames:
        try:
            record = reader.read()
            if record is None:
                return
            decoded: DecodedFrame = decoder.decode(record)
        except DamagedRecord as err:
            if not job.keep_going:
                raise
            index = decoder.index
            decoder.skip()
            result.damaged.append((index, str(err)))
            shown = shown or gray_frame(decoder.width, decoder.height)
            writer.write(shown)  # concealed: the last picture again
            report = FrameReport(index, "damaged", -1, [], 0)
        else:
            shown = decoded.output
            writer.write(shown)
            if not decoded.recon_matches or decoded.output_matches is False:
                result.mismatched.append(decoded.index)
            report = FrameReport.of(decoded.index, record)
        result.summary.frames.append(report)
        if progress:
            progress(report)
