"""Whole jobs: a video file to a .nvc file and back, with outputs that appear only when complete."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, Protocol

import torch

from nvcodec.bitstream import BitstreamReader, BitstreamWriter, FrameRecord, FrameType, Header, open_bitstream
from nvcodec.codec.decoder import DecodedFrame, Decoder
from nvcodec.codec.frame_loop import resolve_device, resolve_precision
from nvcodec.codec.schedule import CodingParams
from nvcodec.codec.segments import (
    SegmentedEncoder,
    SegmentLength,
    segmented_header,
    split_segments,
)
from nvcodec.errors import BitstreamError, DamagedRecord, InputError
from nvcodec.frame import Frame, VideoInfo, gray_frame
from nvcodec.io import is_pattern, open_reader, open_writer
from nvcodec.io.formats import OUTPUT_FORMATS, extension, input_label
from nvcodec.io.writers import Writer
from nvcodec.limits import check_picture_size
from nvcodec.metrics import frame_psnr
from nvcodec.outputs import STDOUT, AtomicOutput, check_writable
from nvcodec.parallel import Runner, check_options, make_runner, use_task_threads, worker_weights
from nvcodec.positions import Position
from nvcodec.stats import FrameReport, Summary
from nvcodec.weights import Weights, default_weights_path, load_weights

log = logging.getLogger(__name__)


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
    start: Position = Position(frame=0)  # the first frame to code
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
    segment: SegmentLength = SegmentLength()  # sets params.intra_period once the input is open
    jobs: int = 1  # worker processes (segments coded in parallel)
    cluster: str | None = None  # a Dask scheduler's address: segments coded on its workers


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
    start: Position = Position(frame=0)  # the first frame to output
    jobs: int = 1  # worker processes (segments decoded in parallel)
    cluster: str | None = None  # a Dask scheduler's address: segments decoded on its workers


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
    if job.frames is not None and job.frames < 1:
        raise InputError("--frames must be >= 1")
    if job.params.intra_period != -1:
        raise ValueError("EncodeJob: set the segment length with .segment, not params.intra_period")
    check_options(job.jobs, job.cluster)
    _check_outputs([job.output, job.recon, job.stats], [job.input], job.force)
    _check_bitstream_name(job.output)
    weights = _weights(job.weights)
    device = resolve_device(job.device)
    dtype = resolve_precision(job.precision, device)
    with open_reader(job.input, job.size, job.fps) as reader:
        check_picture_size(reader.info.width, reader.info.height, job.max_size, input_label(job.input))
        start = job.start.frame_at(reader.info.fps)
        info = replace(reader.info, frame_count=_expected_count(reader.info.frame_count, start, job.frames))
        if info.frame_count == 0:
            raise InputError(f"{job.input}: no frames to encode (--start {job.start} is frame {start})")
        expected = info.frame_count or _expected_count(reader.estimated_count(), start, job.frames)
        bound = info.frame_count if info.frame_count is not None else job.frames
        params = replace(job.params, intra_period=job.segment.frames_at(info.fps, bound))
        plan = _SegmentPlan(weights, params, info, job, expected or job.frames)
        if progress:
            progress.begin(expected or job.frames)
        with AtomicOutput(job.output, job.force) as out:
            recon = open_writer(job.recon, info, job.force) if job.recon else None
            try:
                with _runner(job, weights, params.intra_period > 0) as runner:
                    coded = plan.coded(reader.frames(start, job.frames), runner, device, dtype)
                    summary = write_coded(coded, plan.header, params, out.file, recon, progress)
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


@contextlib.contextmanager
def _runner(job: EncodeJob | DecodeJob, weights: Weights, segmented: bool) -> Iterator[Runner | None]:
    """The worker processes or cluster the job asks for, stopped on the way out (at once on an
    error or Ctrl-C); none for a video of one segment, which has nothing to share."""
    if (job.jobs > 1 or job.cluster) and not segmented:
        log.warning("the video is one segment, so it is coded here: --segment splits it for --jobs/--cluster")
    runner = make_runner(job.jobs, job.cluster, weights) if segmented else None
    if runner is None:
        yield None
        return
    try:
        yield runner
    except BaseException:
        runner.close(abort=True)
        raise
    runner.close(abort=False)


@dataclass(frozen=True)
class Placement:
    """The weights a worker codes with (path, SHA-256) and where: the device this process resolved."""

    weights: tuple[str, bytes]
    device: str
    precision: str

    @classmethod
    def of(cls, weights: Weights, device: torch.device, precision: str) -> Placement:
        return cls((weights.path, weights.sha256), device.type, precision)

    def load(self) -> tuple[Weights, torch.device, torch.dtype]:
        """In the worker's task: the weights (loaded once per process), the device and the dtype."""
        use_task_threads()
        device = resolve_device(self.device)
        return worker_weights(*self.weights), device, resolve_precision(self.precision, device)


@dataclass(frozen=True)
class SegmentTask:
    """One segment for a worker to encode."""

    placement: Placement
    params: CodingParams
    info: VideoInfo
    first: int
    frames: list[Frame]
    length_hint: int | None
    keep_recon: bool


Coded = tuple[FrameRecord, FrameReport, Frame | None]  # a frame's record, report, shown picture


def encode_segment(task: SegmentTask) -> list[Coded]:
    """Encode one segment (in a worker process); the shown pictures only if asked for."""
    weights, device, dtype = task.placement.load()
    encoder = SegmentedEncoder(weights, task.params, task.info, device, dtype, task.length_hint, task.first)
    return list(coded_frames(encoder, task.frames, task.keep_recon))


def with_following(frames: Iterable[Frame], horizon: int) -> Iterator[tuple[Frame, int | None]]:
    """Each frame with how many frames follow it when fewer than `horizon` do (None: at least
    that many): what reading `horizon` frames ahead tells, from a pipe as from a file."""
    ahead: deque[Frame] = deque()
    for frame in frames:
        ahead.append(frame)
        if len(ahead) > horizon:
            yield ahead.popleft(), None
    while ahead:
        yield ahead.popleft(), len(ahead)


def coded_frames(encoder: SegmentedEncoder, frames: Iterable[Frame], keep_shown: bool) -> Iterator[Coded]:
    """Each frame's record, report (with its PSNR, and its reconstruction's where that was
    enhanced) and, when kept, shown picture; the encoder reads a schedule's length of frames
    ahead, to know the last ones."""
    for frame, following in with_following(frames, len(encoder.params.qp_offsets)):
        coded = encoder.encode(frame, following)
        picture = coded.picture
        unenhanced = frame_psnr(frame, picture.recon) if picture.enhanced else None
        report = FrameReport.of(coded.plan.index, coded.record, frame_psnr(frame, picture.output), unenhanced)
        yield coded.record, report, picture.output if keep_shown else None


class _SegmentPlan:
    """How a job's frames become coded frames: in this process, or segment by segment elsewhere."""

    def __init__(
        self, weights: Weights, params: CodingParams, info: VideoInfo, job: EncodeJob, hint: int | None
    ):
        self.weights, self.params, self.info, self.job, self.hint = weights, params, info, job, hint
        self.header = segmented_header(weights, params, info)

    def coded(
        self, frames: Iterable[Frame], runner: Runner | None, device: torch.device, dtype: torch.dtype
    ) -> Iterator[Coded]:
        keep_shown = self.job.recon is not None
        if runner is None:
            encoder = SegmentedEncoder(self.weights, self.params, self.info, device, dtype, self.hint)
            yield from coded_frames(encoder, frames, keep_shown)
            return
        placement = Placement.of(self.weights, device, self.job.precision)
        for segment in runner.map_ordered(encode_segment, self._tasks(frames, placement, keep_shown)):
            yield from segment

    def _tasks(
        self, frames: Iterable[Frame], placement: Placement, keep_shown: bool
    ) -> Iterator[SegmentTask]:
        """One task a segment, coded where this process would code it (the same bytes as here,
        whatever each worker has)."""
        for first, batch in split_segments(frames, self.params.intra_period):
            yield SegmentTask(placement, self.params, self.info, first, batch, self.hint, keep_shown)


def write_coded(
    coded: Iterable[Coded],
    header: Header,
    params: CodingParams,
    file: BinaryIO,
    recon: Writer | None = None,
    progress: Progress | None = None,
) -> Summary:
    """Write the header, the coded frames and the segment index; the summary of what was written."""
    writer = BitstreamWriter(file, header)
    summary = Summary(header.width, header.height, header.fps, header_bytes=len(header.pack()))
    if params.rate is not None:
        summary.target_kbps = params.rate.bitrate / 1000
    began = time.perf_counter()
    for record, report, shown in coded:
        writer.write(record)
        if recon:
            recon.write(shown)
        summary.frames.append(report)
        if progress:
            progress(report)
    summary.seconds = time.perf_counter() - began
    if summary.frames:
        summary.index_bytes = writer.finish(len(summary.frames))
    return summary


def decode_video(job: DecodeJob, progress: Progress | None = None) -> DecodeResult:
    """Decode job.input into job.output from frame job.start on; frames that drift from the
    encoder are listed."""
    if job.frames is not None and job.frames < 1:
        raise InputError("--frames must be >= 1")
    check_options(job.jobs, job.cluster)
    _check_outputs([job.output], [job.input], job.force)
    with open_bitstream(job.input) as source:
        reader = BitstreamReader(source)
        header = reader.header
        check_picture_size(header.width, header.height, job.max_size, input_label(job.input))
        start = job.start.frame_at(header.fps)
        if header.frame_count is not None and start >= header.frame_count:
            raise InputError(
                f"--start {job.start} is frame {start}, past the last frame ({header.frame_count - 1})"
            )
        weights = _weights(job.weights)
        device = resolve_device(job.device)
        dtype = resolve_precision(job.precision, device)
        first = reader.seek_segment(start)
        info = header_info(header, job.frames, start)
        if progress:
            progress.begin(info.frame_count)
        segmented = header.intra_period > 0
        with open_writer(job.output, info, job.force) as writer, _runner(job, weights, segmented) as runner:
            if runner is None:
                decoder = Decoder(weights, header, device, dtype, job.enhance)
                shown = _decode_items(_records(reader), decoder, first, start, job.keep_going)
            else:
                placement = Placement.of(weights, device, job.precision)
                shown = _decode_remotely(reader, first, start, job, placement, runner)
            return _write_decoded(shown, header, writer, job, progress)


def header_info(header: Header, frames: int | None, start: int = 0) -> VideoInfo:
    """The video a bitstream holds from frame `start` on, as a writer needs it (at most `frames`
    frames)."""
    count = None if header.frame_count is None else header.frame_count - start
    if frames is not None:
        count = frames if count is None else min(count, frames)
    sar = None if header.sar is None else Fraction(*header.sar)
    return VideoInfo(header.width, header.height, header.fps, count, sar)


@dataclass
class ShownFrame:
    """A decoded (or concealed) frame on its way to the output."""

    index: int
    picture: Frame
    report: FrameReport
    mismatched: bool = False  # differs from the encoder's reconstruction (float drift)
    damaged: str | None = None  # why it was concealed (--keep-going)


Item = FrameRecord | DamagedRecord  # a record, or the error a damaged one raised when read


def _records(reader: BitstreamReader) -> Iterator[Item]:
    """The stream's records in order, damaged ones as their errors; a stream that stops being
    readable raises where it stops."""
    while True:
        try:
            record = reader.read()
        except DamagedRecord as err:
            yield err
            continue
        if record is None:
            return
        yield record


def _decode_items(
    items: Iterable[Item], decoder: Decoder, first: int, start: int, keep_going: bool
) -> Iterator[ShownFrame]:
    """Decode the records numbered from `first`, showing frames from `start` on. Of the records
    before `start` only the current segment's are decoded, once `start` is reached."""
    pending: list[FrameRecord] | None = None
    pending_first, shown = first, None
    for index, item in enumerate(items, first):
        if index < start:
            if isinstance(item, FrameRecord) and item.frame_type == FrameType.INTRA:
                pending, pending_first = [item], index
            elif pending is not None:
                if isinstance(item, DamagedRecord):
                    pending = None
                else:
                    pending.append(item)
            continue
        decoder.index = index
        if pending:
            _catch_up(decoder, pending, pending_first)
            pending = None
        try:
            if isinstance(item, DamagedRecord):
                raise item
            decoded: DecodedFrame = decoder.decode(item)
        except DamagedRecord as err:
            if not keep_going:
                raise
            decoder.skip()
            shown = shown or gray_frame(decoder.width, decoder.height)  # concealed: the last picture
            yield ShownFrame(index, shown, FrameReport(index, "damaged", -1, [], 0), damaged=str(err))
            continue
        shown = decoded.output
        mismatched = not decoded.recon_matches or decoded.output_matches is False
        yield ShownFrame(index, shown, FrameReport.of(index, item), mismatched)


def _catch_up(decoder: Decoder, records: list[FrameRecord], first: int) -> None:
    """Decode the records of the segment before the first frame shown, for their references."""
    decoder.index = first
    try:
        for record in records:
            decoder.decode(record)
    except DamagedRecord:
        decoder.reference = None  # the frames shown next report the lost reference
    decoder.index = first + len(records)


@dataclass(frozen=True)
class DecodeTask:
    """One segment's records for a worker to decode."""

    placement: Placement
    header: Header
    first: int
    start: int
    items: list[Item | BitstreamError]  # a last BitstreamError: where the stream stopped
    enhance: bool
    keep_going: bool


def decode_segment(
    task: DecodeTask,
) -> tuple[list[ShownFrame], BitstreamError | None]:
    """Decode one segment (in a worker process): the frames shown, and the error that stopped it."""
    weights, device, dtype = task.placement.load()
    decoder = Decoder(weights, task.header, device, dtype, task.enhance)
    shown: list[ShownFrame] = []
    try:
        shown.extend(_decode_items(_replay(task.items), decoder, task.first, task.start, task.keep_going))
    except BitstreamError as err:
        return shown, err
    return shown, None


def _replay(items: list[Item | BitstreamError]) -> Iterator[Item]:
    for item in items:
        if isinstance(item, BitstreamError) and not isinstance(item, DamagedRecord):
            raise item
        yield item


def _decode_remotely(
    reader: BitstreamReader, first: int, start: int, job: DecodeJob, placement: Placement, runner: Runner
) -> Iterator[ShownFrame]:
    """Segments decoded by the runner's workers, shown in order."""
    for shown, error in runner.map_ordered(
        decode_segment, _decode_tasks(reader, first, start, job, placement)
    ):
        yield from shown
        if error is not None:
            raise error


def _decode_tasks(
    reader: BitstreamReader, first: int, start: int, job: DecodeJob, placement: Placement
) -> Iterator[DecodeTask]:
    """The records from `first` on, cut into segments at intra frames; segments wholly before
    `start` are dropped, and reading stops once the frames asked for are covered."""
    end = None if job.frames is None else start + job.frames

    def task(begin: int, items: list[Item | BitstreamError]) -> DecodeTask:
        return DecodeTask(placement, reader.header, begin, start, items, job.enhance, job.keep_going)

    begin, items = first, []
    index = first
    records = _records(reader)
    while end is None or index < end:
        try:
            item = next(records, None)
        except BitstreamError as err:
            items.append(err)
            break
        if item is None:
            break
        if isinstance(item, FrameRecord) and item.frame_type == FrameType.INTRA and items:
            if index > start:
                yield task(begin, items)
            begin, items = index, []
        items.append(item)
        index += 1
    if items:
        yield task(begin, items)


def _write_decoded(
    shown: Iterable[ShownFrame], header: Header, writer: Writer, job: DecodeJob, progress: Progress | None
) -> DecodeResult:
    """Write the frames shown; where the stream stops being decodable, keep the frames before it."""
    result = DecodeResult(Summary(header.width, header.height, header.fps, len(header.pack())), [], [])
    began = time.perf_counter()
    try:
        for frame in shown:
            writer.write(frame.picture)
            result.summary.frames.append(frame.report)
            if frame.mismatched:
                result.mismatched.append(frame.index)
            if frame.damaged is not None:
                result.damaged.append((frame.index, frame.damaged))
            if progress:
                progress(frame.report)
            if len(result.summary.frames) == job.frames:
                break
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
    if not result.summary.frames:
        raise InputError(f"--start {job.start}: the stream ends before that frame")
    result.summary.seconds = time.perf_counter() - began
    return result
