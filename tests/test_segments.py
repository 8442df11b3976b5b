"""Segments, the segment index, seeking, cutting, and segment-parallel coding (--jobs, --cluster)."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import pytest

from nvcodec.bitstream import BitstreamReader, read_info
from nvcodec.bitstream.index import read_index_from_end
from nvcodec.cli import nvenc
from nvcodec.codec.segments import SegmentLength
from nvcodec.errors import InputError
from nvcodec.io import open_reader
from nvcodec.parallel import ProcessRunner, WorkerLost
from nvcodec.positions import Position
from test_cli import Cli, assert_error

TOOL = [
    sys.executable,
    "-c",
    "import sys; from nvcodec.cli import launch; getattr(launch, sys.argv.pop(1))()",
]
FRAMES = 11
PERIOD = 4  # segments start at frames 0, 4, 8


def frames_of(path: Path) -> list[bytes]:
    with open_reader(str(path)) as reader:
        return [f.tobytes() for f in reader.frames()]


@pytest.fixture(scope="module")
def segmented(tmp_path_factory: pytest.TempPathFactory, tiny_weights: str, make_video) -> dict:
    """An 11-frame source coded in segments of 4 frames, and its full decode."""
    folder = tmp_path_factory.mktemp("segmented")
    source, nvc, out = folder / "src.y4m", folder / "seg.nvc", folder / "full.y4m"
    make_video(source, frames=FRAMES)
    from nvcodec.cli import nvdec, nvenc

    common = ["--weights", tiny_weights, "-q", "--device", "cpu"]
    assert nvenc.main([str(source), "-o", str(nvc), "--segment-frames", str(PERIOD), *common]) == 0
    assert nvdec.main([str(nvc), "-o", str(out), *common]) == 0
    return {"folder": folder, "source": source, "nvc": nvc, "frames": frames_of(out)}


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], tiny_weights: str) -> Cli:
    return Cli(capsys, tiny_weights)


# --- choosing segments -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "fps", "total", "expected"),
    [
        (SegmentLength(), 25, 96, -1),  # short: one segment, as before
        (SegmentLength(), 25, 500, -1),  # 20 s: still one
        (SegmentLength(), 25, 501, 250),  # longer: 10 s segments
        (SegmentLength(), 25, None, 250),  # unknown length (a pipe): 10 s segments
        (SegmentLength(seconds=Fraction(2)), 25, 96, 50),
        (SegmentLength(seconds=Fraction(1, 10)), Fraction(30000, 1001), 96, 3),
        (SegmentLength(frames=7), 25, 96, 7),
        (SegmentLength(frames=96), 25, 96, -1),  # a segment as long as the video: one segment
        (SegmentLength(frames=100), 25, None, 100),
    ],
)
def test_segment_length(length: SegmentLength, fps, total: int | None, expected: int) -> None:
    assert length.frames_at(Fraction(fps), total) == expected


def test_segment_length_refusals() -> None:
    with pytest.raises(InputError, match="exclude each other"):
        SegmentLength(Fraction(1), 3)
    with pytest.raises(InputError, match="positive"):
        SegmentLength(seconds=Fraction(0))


@pytest.mark.parametrize(
    ("text", "frame"),
    [
        ("130", 130),
        ("5.2s", 130),
        ("5.21s", 131),
        ("1500ms", 38),
        ("00:01:10", 1750),
        ("01:10.5", 1763),
        ("0", 0),
    ],
)
def test_positions_as_ffmpeg_reads_them(text: str, frame: int) -> None:
    assert Position.parse(text).frame_at(Fraction(25)) == frame


@pytest.mark.parametrize("text", ["-3", "5.2", "1:2:3:4", "00:61:00", "x", "5 s", ""])
def test_bad_positions_are_refused(text: str) -> None:
    with pytest.raises(InputError, match="position|below 60"):
        Position.parse(text)


# --- the stream and its index ------------------------------------------------------------------


def test_segments_start_with_intra_frames_and_the_index_points_at_them(segmented: dict) -> None:
    nvc = segmented["nvc"]
    info = read_info(nvc)
    assert info.error is None and info.header.version == (2, 19) and info.header.intra_period == PERIOD
    assert [f.frame_type for f in info.frames] == [0 if i % PERIOD == 0 else 1 for i in range(FRAMES)]
    starts, offset = [], info.header_bytes
    for f in info.frames:
        if f.frame_type == 0:
            starts.append((f.index, offset))
        offset += f.record_bytes
    assert [(s.first_frame, s.offset) for s in info.index.segments] == starts
    assert [first for first, _ in starts] == [0, 4, 8]
    assert info.index.frame_count == FRAMES
    with open(nvc, "rb") as file:
        header = BitstreamReader(file).header
        assert read_index_from_end(file, len(header.pack())) == info.index
    data = nvc.read_bytes()
    assert data[-4:] == b"NVIX" and struct.unpack_from("<I", data, len(data) - 8)[0] == 28 + 12 * 3
    assert offset + 28 + 12 * 3 == len(data) == info.file_bytes


def test_nvinfo_shows_the_segments(cli: Cli, segmented: dict) -> None:
    res = cli.info(segmented["nvc"])
    assert res.code == 0
    assert "segments      3 (an intra frame every 4 frames; indexed): start at frames 0 4 8" in res.out
    data = cli.info_json(segmented["nvc"])
    assert data["indexed"] and [s["first_frame"] for s in data["segments"]] == [0, 4, 8]


def test_a_stream_cut_short_loses_only_its_index(cli: Cli, segmented: dict, tmp_path: Path) -> None:
    """Without the index (the last bytes lost), the frames decode as before and seeking scans."""
    data = segmented["nvc"].read_bytes()
    short = tmp_path / "short.nvc"
    short.write_bytes(data[: -(28 + 12 * 3)])
    out = tmp_path / "out.y4m"
    assert cli.dec(short, "-o", out).code == 0
    assert frames_of(out) == segmented["frames"]
    assert cli.dec(short, "-o", out, "--start", "6", "-y").code == 0
    assert frames_of(out) == segmented["frames"][6:]
    assert "index missing (found by scanning)" in cli.info(short).out


def test_a_damaged_index_is_reported_after_every_frame(cli: Cli, segmented: dict, tmp_path: Path) -> None:
    data = bytearray(segmented["nvc"].read_bytes())
    data[-20] ^= 4  # inside the entries: the index CRC fails
    bad, out = tmp_path / "bad.nvc", tmp_path / "out.y4m"
    bad.write_bytes(bytes(data))
    assert_error(cli.dec(bad, "-o", out), 4, f"the {FRAMES} frames before it are in")
    assert frames_of(out) == segmented["frames"]
    assert cli.dec(bad, "-o", out, "--start", "5", "--frames", "2", "-y").code == 0  # seeking scans
    assert frames_of(out) == segmented["frames"][5:7]


# --- seeking -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "count"), [("0", 3), ("3", 2), ("4", 4), ("5", None), ("10", None), ("0.28s", 2)]
)
def test_seeking_outputs_exactly_the_frames_asked_for(
    cli: Cli, segmented: dict, tmp_path: Path, start: str, count: int | None
) -> None:
    out = tmp_path / "part.y4m"
    args = ["--start", start] + (["--frames", str(count)] if count else [])
    assert cli.dec(segmented["nvc"], "-o", out, *args).code == 0
    first = Position.parse(start).frame_at(Fraction(25))
    assert frames_of(out) == segmented["frames"][first : None if count is None else first + count]


def test_seeking_in_a_pipe_scans(segmented: dict, tiny_weights: str, tmp_path: Path) -> None:
    out = tmp_path / "piped.y4m"
    with subprocess.Popen(["cat", str(segmented["nvc"])], stdout=subprocess.PIPE) as cat:
        done = subprocess.run(
            [*TOOL, "nvdec", "-", "-o", str(out), "--start", "5", "--frames", "4",
             "--weights", tiny_weights, "-q"],
            stdin=cat.stdout, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert frames_of(out) == segmented["frames"][5:9]


def test_one_segment_is_coded_here_whatever_jobs_says(cli: Cli, segmented: dict, tmp_path: Path) -> None:
    nvc = tmp_path / "one.nvc"
    res = cli._call(
        nvenc, [segmented["source"], "-o", nvc, "--jobs", "2", "--weights", cli.weights]
    )  # not quiet
    assert res.code == 0 and "the video is one segment, so it is coded here" in res.err
    info = read_info(nvc)
    assert (
        info.header.version == (2, 19) and info.index is None
    )  # intra blocks (and compact records), no index


def test_seeking_past_the_end_is_refused(cli: Cli, segmented: dict, tmp_path: Path) -> None:
    assert_error(
        cli.dec(segmented["nvc"], "-o", tmp_path / "o.y4m", "--start", "11"), 2, "past the last frame (10)"
    )
    assert_error(cli.dec(segmented["nvc"], "-o", tmp_path / "o.y4m", "--start", "5x"), 2, "not a position")
    assert not (tmp_path / "o.y4m").exists()


# --- cutting -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "first", "last"), [("5", "7", 4, 7), ("3", "9", 0, 10), ("8", None, 8, 10)]
)
def test_cutting_copies_whole_segments(
    cli: Cli, segmented: dict, tmp_path: Path, start: str, end: str | None, first: int, last: int
) -> None:
    from nvcodec.cli import nvcut

    cut, out = tmp_path / "cut.nvc", tmp_path / "cut.y4m"
    args = [str(segmented["nvc"]), "-o", str(cut), "--start", start, "-q"] + (["--end", end] if end else [])
    assert nvcut.main(args) == 0
    info = read_info(cut)
    assert info.error is None and info.header.frame_count == last - first + 1
    assert info.header.tools == read_info(segmented["nvc"]).header.tools  # with the six taps' bit 7:
    assert (
        info.header.version == (2, 19) and info.header.prediction_offsets and info.header.adaptive_tables
    )  # the cut's records are compact and its P frames skip edges, offset and adapt as the input's
    assert (info.index is not None) == (len(info.segment_starts) > 1)
    assert cli.dec(cut, "-o", out).code == 0
    assert frames_of(out) == segmented["frames"][first : last + 1]


def test_cutting_refusals(segmented: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from nvcodec.cli import nvcut

    nvc = str(segmented["nvc"])
    assert nvcut.main([nvc, "-o", str(tmp_path / "c.nvc"), "--start", "5", "--end", "5"]) == 2
    assert nvcut.main([nvc, "-o", nvc, "--start", "5", "-y"]) == 2
    assert "must come after" in capsys.readouterr().err
    assert not (tmp_path / "c.nvc").exists()


# --- parallel coding ---------------------------------------------------------------------------


def encode_args(segmented: dict, out: Path, recon: Path, *extra: str) -> list[object]:
    return [
        segmented["source"],
        "-o",
        out,
        "--segment-frames",
        str(PERIOD),
        "--recon",
        recon,
        "--device",
        "cpu",
        *extra,
    ]


def test_jobs_encode_and_decode_are_byte_identical_to_serial(
    cli: Cli, segmented: dict, tmp_path: Path
) -> None:
    nvc, recon = tmp_path / "jobs.nvc", tmp_path / "jobs_recon.y4m"
    assert cli.enc(*encode_args(segmented, nvc, recon, "--jobs", "2")).code == 0
    assert nvc.read_bytes() == segmented["nvc"].read_bytes()
    assert frames_of(recon) == segmented["frames"]
    out = tmp_path / "jobs.y4m"
    assert cli.dec(nvc, "-o", out, "--jobs", "2", "--start", "2", "--device", "cpu").code == 0
    assert frames_of(out) == segmented["frames"][2:]


def test_rate_control_restarts_in_each_segment(cli: Cli, segmented: dict, tmp_path: Path) -> None:
    """With a target bitrate the segments are still independent: --jobs 2 gives the same bytes."""
    serial, parallel = tmp_path / "serial.nvc", tmp_path / "parallel.nvc"
    common = ["--bitrate", "300k", "--segment-frames", str(PERIOD), "--device", "cpu"]
    assert cli.enc(segmented["source"], "-o", serial, *common).code == 0
    assert cli.enc(segmented["source"], "-o", parallel, *common, "--jobs", "2").code == 0
    assert serial.read_bytes() == parallel.read_bytes()


def _double_or_die(task: tuple[str, int]) -> int:
    """A job whose worker dies the first time it runs each task."""
    marker, value = task
    if not os.path.exists(f"{marker}.{value}"):
        Path(f"{marker}.{value}").touch()
        os._exit(1)
    return 2 * value


def test_a_killed_worker_process_is_retried(tmp_path: Path) -> None:
    runner = ProcessRunner(2)
    try:
        marker = str(tmp_path / "ran")
        assert list(runner.map_ordered(_double_or_die, [(marker, v) for v in range(5)])) == [0, 2, 4, 6, 8]
    finally:
        runner.close(abort=False)


def _always_die(task: int) -> int:
    os._exit(1)


def test_a_worker_that_always_dies_stops_the_job() -> None:
    runner = ProcessRunner(1)
    try:
        with pytest.raises(WorkerLost):
            list(runner.map_ordered(_always_die, [1]))
    finally:
        runner.close(abort=True)


def test_ctrl_c_stops_the_workers_and_leaves_nothing(
    segmented: dict, tiny_weights: str, tmp_path: Path, make_video
) -> None:
    psutil = pytest.importorskip("psutil")
    source, nvc = tmp_path / "long.y4m", tmp_path / "long.nvc"
    make_video(source, frames=300)
    command = [*TOOL, "nvenc", str(source), "-o", str(nvc), "--segment-frames", "2",
               "--jobs", "2", "--weights", tiny_weights, "-q", "--device", "cpu"]  # fmt: skip
    proc = subprocess.Popen(command, start_new_session=True, stderr=subprocess.PIPE, text=True)
    parent = psutil.Process(proc.pid)
    deadline = time.monotonic() + 60
    workers: list = []
    while time.monotonic() < deadline and len(workers) < 2:
        workers = [p for p in parent.children(recursive=True) if "spawn_main" in " ".join(p.cmdline())]
        time.sleep(0.2)
    assert len(workers) == 2, "the worker processes did not start"
    time.sleep(0.5)  # they are still importing torch: far from done with 300 frames
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole process group
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert not nvc.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    psutil.wait_procs(workers, timeout=10)
    assert not [w for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE]


# --- a Dask cluster ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=50
    ) as cluster:
        yield cluster


def test_a_local_dask_cluster_encodes_the_same_bytes(
    cli: Cli, segmented: dict, tmp_path: Path, local_cluster
) -> None:
    nvc, recon = tmp_path / "cluster.nvc", tmp_path / "cluster_recon.y4m"
    res = cli.enc(*encode_args(segmented, nvc, recon, "--cluster", local_cluster.scheduler_address))
    assert res.code == 0, res.err
    assert nvc.read_bytes() == segmented["nvc"].read_bytes()
    assert frames_of(recon) == segmented["frames"]
    out = tmp_path / "cluster.y4m"
    assert cli.dec(nvc, "-o", out, "--cluster", local_cluster.scheduler_address).code == 0
    assert frames_of(out) == segmented["frames"]


def test_a_killed_dask_worker_is_retried(local_cluster, tmp_path: Path, tiny_weights: str) -> None:
    """The worker running job 1 dies in the middle of it: the job runs again on another or a
    restarted worker, which has the weights too, and the results come back complete, in order."""
    from nvcodec.parallel import DaskRunner, worker_weights
    from nvcodec.weights import load_weights

    weights = load_weights(tiny_weights)
    runner = DaskRunner(local_cluster.scheduler_address, weights)
    marker = str(tmp_path / "ran")

    def double_or_die(task: tuple[str, int]) -> int:
        if task[1] == 1 and not os.path.exists(task[0]):
            Path(task[0]).touch()
            os._exit(1)  # the worker process dies in the middle of the job
        loaded = worker_weights("not/a/file", weights.sha256)  # in the worker's cache already
        return 2 * task[1] + (loaded.sha256 == weights.sha256)

    try:
        assert list(runner.map_ordered(double_or_die, [(marker, v) for v in range(4)])) == [1, 3, 5, 7]
    finally:
        runner.close(abort=False)


def test_an_unreachable_cluster_is_one_line(cli: Cli, segmented: dict, tmp_path: Path) -> None:
    args = ["--segment-frames", str(PERIOD), "--cluster", "tcp://127.0.0.1:9"]
    res = cli.enc(segmented["source"], "-o", tmp_path / "x.nvc", *args)
    assert_error(res, 2, "no Dask scheduler answered")
    assert not (tmp_path / "x.nvc").exists()


def test_an_encode_to_a_pipe_ends_with_its_index(segmented: dict, tiny_weights: str, tmp_path: Path) -> None:
    """From a pipe to a pipe, the header cannot learn the frame count, but the index still comes
    last and counts the frames; read from a pipe, every frame decodes."""
    common = ["--weights", tiny_weights, "-q", "--device", "cpu"]
    args = [*TOOL, "nvenc", "-", "-o", "-", "--segment-frames", str(PERIOD), *common]
    piped = subprocess.run(args, input=segmented["source"].read_bytes(), capture_output=True, timeout=120)
    assert piped.returncode == 0, piped.stderr
    nvc = tmp_path / "piped.nvc"
    nvc.write_bytes(piped.stdout)
    info = read_info(nvc)
    assert info.error is None and info.header.frame_count is None
    assert info.index is not None and info.index.frame_count == FRAMES and len(info.frames) == FRAMES
    out = tmp_path / "out.y4m"
    decode = [*TOOL, "nvdec", "-", "-o", str(out), *common]
    assert subprocess.run(decode, input=piped.stdout, capture_output=True, timeout=120).returncode == 0
    assert frames_of(out) == segmented["frames"]


def test_keep_going_with_jobs_conceals_as_serial_does(cli: Cli, segmented: dict, tmp_path: Path) -> None:
    info = read_info(segmented["nvc"])
    offset = info.header_bytes + sum(f.record_bytes for f in info.frames[:5]) + 30  # inside frame 5
    data = bytearray(segmented["nvc"].read_bytes())
    data[offset] ^= 0x10
    bad = tmp_path / "bad.nvc"
    bad.write_bytes(bytes(data))
    outputs = {}
    for label, extra in (("serial", []), ("jobs", ["--jobs", "2"])):
        out = tmp_path / f"{label}.y4m"
        res = cli.dec(bad, "-o", out, "--keep-going", "--device", "cpu", *extra)
        assert res.code == 4 and "3 of 11 frames could not be decoded" in res.err, res.err
        outputs[label] = frames_of(out)
    assert outputs["serial"] == outputs["jobs"]
    expected = segmented["frames"]
    assert outputs["serial"] == expected[:5] + [expected[4]] * 3 + expected[8:]


def test_jobs_and_cluster_together_are_refused_before_any_work(
    cli: Cli, segmented: dict, tmp_path: Path
) -> None:
    both = ["--jobs", "2", "--cluster", "tcp://127.0.0.1:9"]
    assert_error(cli.enc(segmented["source"], "-o", tmp_path / "x.nvc", *both), 2, "exclude each other")
    assert_error(cli.dec(segmented["nvc"], "-o", tmp_path / "x.y4m", *both), 2, "exclude each other")
    assert not list(tmp_path.iterdir())
