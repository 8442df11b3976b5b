"""The nvenc / nvdec / nvinfo tools end to end: round trips, inputs and outputs, statistics,
nvinfo's report, error exits, outputs that never appear half written, and container fuzzing.

Everything runs on the CPU with the tiny random-initialised model on small synthetic videos.
Most calls go through each tool's in-process `main(argv) -> int`; the standard-stream tests run
the installed console scripts in a subprocess.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import signal
import stat
import struct
import subprocess
import sys
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import av
import pytest
import torch

from nvcodec import __version__
from nvcodec.bitstream import MAGIC, read_info
from nvcodec.bitstream.container import record_spans
from nvcodec.bitstream.record import read_varint, varint
from nvcodec.cli import nvdec, nvenc, nvinfo
from nvcodec.codec.encoder import Encoder
from nvcodec.frame import Frame
from nvcodec.io import open_reader
from nvcodec.io.writers import to_av_frame
from nvcodec.limits import check_picture_size
from nvcodec.metrics import frame_psnr
from nvcodec.models.config import TINY
from nvcodec.weights import random_model, save_weights

GROUP = (3, 2, 3, 1, 3, 2, 3)  # the default hierarchical qp offsets after each group's finest frame
OFFSETS = (-3, *GROUP, 0, *GROUP)
# the P frames after each position before one as fine
SERVED = (15, 0, 1, 0, 3, 0, 1, 0, 7, 0, 1, 0, 3, 0, 1, 0)
INTRA_OFFSET = -3  # intra frames are coded 3 qp finer than the base
DEFAULT_QP = 32
FRAMES = 6
HEADER_LEN_OFFSET = 6  # u16 header_len after magic and version
FIELD = {"width": 8, "height": 10, "fps_num": 12, "fps_den": 16, "frame_count": 20}


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Code with one thread in-process (and in the subprocesses, see run_script).

    The tiny model gains nothing from more, and when the cores are shared with other jobs,
    torch's waiting worker threads make a 2-thread encode 30 to 80 times slower.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --- helpers ----------------------------------------------------------------------------------


@dataclass
class Result:
    code: int
    out: str
    err: str


class Cli:
    """Calls the tools in-process, capturing their standard streams; nvenc/nvdec get the tiny weights."""

    def __init__(self, capsys: pytest.CaptureFixture[str], weights: str) -> None:
        self.capsys, self.weights = capsys, weights

    def _call(self, tool, args) -> Result:
        self.capsys.readouterr()
        code = tool.main([str(a) for a in args])
        out, err = self.capsys.readouterr()
        assert isinstance(code, int)
        return Result(code, out, err)

    def enc(self, *args: object, weights: str | None = None) -> Result:
        return self._call(nvenc, [*args, "--weights", weights or self.weights, "-q"])

    def dec(self, *args: object, weights: str | None = None) -> Result:
        return self._call(nvdec, [*args, "--weights", weights or self.weights, "-q"])

    def info(self, *args: object) -> Result:
        return self._call(nvinfo, args)

    def info_json(self, path: Path) -> dict:
        res = self.info(path, "--json")
        assert res.code == 0, res.err
        return json.loads(res.out)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], tiny_weights: str):
    """A Cli; afterwards the 'nvcodec' logger the tools configured (handler on the captured
    stderr, no propagation) is put back as it was, so that other tests see library logs."""
    logger = logging.getLogger("nvcodec")
    handlers, level, propagate = logger.handlers[:], logger.level, logger.propagate
    yield Cli(capsys, tiny_weights)
    logger.handlers[:] = handlers
    logger.setLevel(level)
    logger.propagate = propagate


def read_frames(path: Path | str, **kwargs: object) -> list[Frame]:
    with open_reader(str(path), **kwargs) as reader:
        return list(reader.frames())


def frame_crc(frame: Frame) -> int:
    return zlib.crc32(frame.tobytes())


def assert_error(res: Result, code: int, fragment: str = "") -> str:
    """Exit `code` with exactly one line on stderr (containing `fragment`) and no traceback."""
    assert res.code == code, f"exit {res.code}, stderr: {res.err!r}"
    assert "Traceback" not in res.err
    lines = [line for line in res.err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {res.err!r}"
    assert fragment.lower() in lines[0].lower(), lines[0]
    return lines[0]


def hidden_files(folder: Path) -> list[str]:
    """Names of leftover temporary files (AtomicOutput and the PNG writer use '.NAME...' names)."""
    return sorted(p.name for p in folder.rglob(".*"))


def header_bytes(data: bytes) -> int:
    (header_len,) = struct.unpack_from("<H", data, HEADER_LEN_OFFSET)
    return 8 + header_len + 4


def fix_header_crc(data: bytearray) -> bytearray:
    n = header_bytes(data) - 4
    struct.pack_into("<I", data, n, zlib.crc32(bytes(data[:n])))
    return data


def expected_qp(index: int, qp: int, intra_period: int, count: int) -> tuple[str, int]:
    """Type and qp of frame `index` of `count`: intra at base - 3, P at base + offset[position % 16],
    clamped; a P frame followed by fewer frames of its segment than its offset serves takes the
    finest offset that serves no more (the last frame the coarsest)."""
    position = index if intra_period <= 0 else index % intra_period
    if position == 0:
        return "I", min(63, max(0, qp + INTRA_OFFSET))
    following = (
        count - 1 - index if intra_period <= 0 else min(count - 1 - index, intra_period - 1 - position)
    )
    offset = OFFSETS[position % len(OFFSETS)]
    if following < SERVED[position % len(OFFSETS)]:
        offset = max(offset, min(o for o, s in zip(OFFSETS, SERVED) if s <= following))
    return "P", min(63, max(0, qp + offset))


def console_script(name: str) -> list[str]:
    """The installed console script next to the interpreter (or an equivalent -c command)."""
    found = shutil.which(name, path=str(Path(sys.executable).parent))
    if found:
        return [found]
    return [sys.executable, "-c", f"from nvcodec.cli.launch import {name}; {name}()"]


# --- shared coded stream ----------------------------------------------------------------------


@dataclass
class Coded:
    folder: Path
    source: Path
    frames: list[Frame]
    nvc: Path
    recon: Path
    stats: Path


@pytest.fixture(scope="module")
def coded(tmp_path_factory: pytest.TempPathFactory, tiny_weights: str, make_video) -> Coded:
    """A 6-frame 96x64 Y4M source coded with default options, with its --recon and --stats."""
    folder = tmp_path_factory.mktemp("coded")
    source = folder / "src.y4m"
    frames = make_video(source)
    nvc, recon, stats = folder / "a.nvc", folder / "rec.y4m", folder / "stats.json"
    args = [source, "-o", nvc, "--recon", recon, "--stats", stats, "--weights", tiny_weights, "-q"]
    assert nvenc.main([str(a) for a in args]) == 0
    return Coded(folder, source, frames, nvc, recon, stats)


@pytest.fixture(scope="module")
def other_weights(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Tiny weights from another seed: a different hash than the stream's."""
    path = tmp_path_factory.mktemp("other") / "tiny-seed1.safetensors"
    save_weights(random_model(TINY, 1), path)
    return str(path)


@pytest.fixture(scope="module")
def tool_weights(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Tiny weights whose contextual filter and enhancement are not the identity.

    A random-initialised refiner has a zero last convolution (it starts as the identity), so
    with the plain tiny weights an enhanced picture equals the reconstruction.
    """
    model = random_model(TINY, 0)
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for refiner in (model.context_filter, model.enhancer):
            weight = refiner.tail.weight
            weight.copy_(0.05 * torch.randn(weight.shape, generator=generator))
    path = tmp_path_factory.mktemp("tools") / "tiny-tools.safetensors"
    save_weights(model, path)
    return str(path)


# --- round trips ------------------------------------------------------------------------------


def round_trip(cli: Cli, folder: Path, make_video, size=(96, 64), frames=FRAMES, args=()) -> dict:
    """Encode (with --recon), decode, check the two videos are byte-identical; returns nvinfo --json."""
    source, nvc, recon, out = folder / "src.y4m", folder / "a.nvc", folder / "rec.y4m", folder / "out.y4m"
    make_video(source, *size, frames)
    res = cli.enc(source, "-o", nvc, "--recon", recon, *args)
    assert res.code == 0, res.err
    assert res.out == ""
    res = cli.dec(nvc, "-o", out)
    assert res.code == 0, res.err
    assert res.out == "" and "warning" not in res.err, res.err
    assert out.read_bytes() == recon.read_bytes()
    info = cli.info_json(nvc)
    assert (info["width"], info["height"], info["frame_count"]) == (*size, frames)
    assert len(info["frames"]) == frames and info["error"] is None
    return info


@pytest.mark.parametrize("controller", ["model", "baseline"])
def test_bitrate_round_trip_reports_target_and_qps(cli: Cli, tmp_path: Path, make_video, controller) -> None:
    stats = tmp_path / "stats.json"
    info = round_trip(cli, tmp_path, make_video, frames=10, args=["--bitrate", "300k", "--rc", controller,
                                                                  "--stats", stats])  # fmt: skip
    summary = json.loads(stats.read_text())
    assert summary["target_kbps"] == 300.0
    assert [f["qp"] for f in summary["per_frame"]] == [f["qp"] for f in info["frames"]]
    fixed = [expected_qp(i, DEFAULT_QP, -1, 10)[1] for i in range(10)]
    assert [f["qp"] for f in info["frames"]] != fixed  # qps chosen per frame, not the fixed schedule


def test_bitrate_summary_line_shows_target(capsys: pytest.CaptureFixture[str], tiny_weights: str,
                                           tmp_path: Path, make_video) -> None:  # fmt: skip
    source = tmp_path / "src.y4m"
    make_video(source, 96, 64, 4)
    assert nvenc.main([str(source), "-o", str(tmp_path / "a.nvc"), "--bitrate", "200k",
                       "--weights", tiny_weights]) == 0  # fmt: skip
    assert "(target 200.0, " in capsys.readouterr().err


@pytest.mark.parametrize("size", [(96, 64), (70, 45)], ids=["96x64", "70x45"])
def test_round_trip_recon_equals_decoded(cli: Cli, tmp_path: Path, make_video, size) -> None:
    info = round_trip(cli, tmp_path, make_video, size)
    assert [f["type"] for f in info["frames"]] == ["I"] + ["P"] * (FRAMES - 1)


def test_round_trip_intra_and_refresh_periods(cli: Cli, tmp_path: Path, make_video) -> None:
    info = round_trip(cli, tmp_path, make_video, args=["--segment-frames", "3", "--refresh-period", "2"])
    assert (info["intra_period"], info["refresh_period"]) == (3, 2)
    assert [f["type"] for f in info["frames"]] == ["I", "P", "P", "I", "P", "P"]
    # refresh on P frames whose distance to the last intra frame is a multiple of 2
    assert ["refresh" in f["flags"] for f in info["frames"]] == [False, False, True, False, False, True]
    # The qp offsets restart at each intra frame (position = frames since the intra frame).
    assert [f["qp"] for f in info["frames"]] == [
        expected_qp(i, DEFAULT_QP, 3, FRAMES)[1] for i in range(FRAMES)
    ]


def test_tools_forced_on_and_no_enhance(cli: Cli, tmp_path: Path, make_video, tool_weights: str) -> None:
    cli.weights = tool_weights
    info = round_trip(cli, tmp_path, make_video, args=["--filter", "on", "--enhance", "on"])
    assert info["tools"] == 255  # every tool: the two forced on, the others' auto
    for f in info["frames"]:
        expected = ["enhance"] if f["type"] == "I" else ["filter", "enhance"]
        chosen = (
            "large_blocks",
            "flat_blocks",
            "table_shifts",
            "split_blocks",
            "six_tap",
        )  # the encoder's choices, frame by frame
        assert [name for name in f["flags"] if name not in chosen] == expected, f
    enhanced = read_frames(tmp_path / "out.y4m")

    plain_path = tmp_path / "plain.y4m"
    res = cli.dec(tmp_path / "a.nvc", "-o", plain_path, "--no-enhance")
    assert res.code == 0 and "warning" not in res.err, res.err
    plain = read_frames(plain_path)
    records = read_info(tmp_path / "a.nvc").frames
    assert len(plain) == len(records) == FRAMES
    # --no-enhance shows the in-loop reconstruction (crc_recon), not the enhanced picture (crc_output: 16 bits)
    assert [frame_crc(f) for f in plain] == [r.crc_recon for r in records]
    assert [frame_crc(f) & 0xFFFF for f in enhanced] == [r.crc_output for r in records]
    assert any(p != e for p, e in zip(plain, enhanced))


# Every coding tool but the contextual filter off: streams of version 2.0 (the filter's bit is 2.0's)
OTHER_TOOLS_OFF = (
    "--enhance",
    "off",
    "--large-blocks",
    "off",
    "--flat-blocks",
    "off",
    "--table-shifts",
    "off",
    "--split-blocks",
    "off",
    "--six-tap",
    "off",
    "--intra-prediction",
    "off",
    "--skip-edges",
    "off",
    "--prediction-offsets",
    "off",
    "--adaptive-tables",
    "off",
)


def test_tools_off_no_enhance_changes_nothing(cli: Cli, tmp_path: Path, make_video) -> None:
    info = round_trip(cli, tmp_path, make_video, args=["--filter", "off", *OTHER_TOOLS_OFF])
    assert info["tools"] == 0 and info["version"] == [2, 0]
    assert all(f["flags"] == [] for f in info["frames"])
    res = cli.dec(tmp_path / "a.nvc", "-o", tmp_path / "plain.y4m", "--no-enhance")
    assert res.code == 0, res.err
    assert (tmp_path / "plain.y4m").read_bytes() == (tmp_path / "rec.y4m").read_bytes()


def test_prediction_offsets_off_writes_a_stream_that_2_9_decoders_read(
    cli: Cli, tmp_path: Path, make_video
) -> None:
    info = round_trip(cli, tmp_path, make_video, frames=4, args=["--prediction-offsets", "off", "--qp", "40"])
    assert info["version"] == [2, 9] and info["skip_edges"] and not info["prediction_offsets"]


def test_adaptive_tables_off_writes_a_stream_that_2_10_decoders_read(
    cli: Cli, tmp_path: Path, make_video
) -> None:
    info = round_trip(cli, tmp_path, make_video, frames=4, args=["--adaptive-tables", "off", "--qp", "40"])
    assert info["version"] == [2, 10] and info["prediction_offsets"] and not info["adaptive_tables"]


@pytest.mark.parametrize(
    ("option", "version", "before"),
    [("pixel-dc", [2, 14], "deep_references"), ("block-modes", [2, 15], "pixel_dc"),
     ("sample-offsets", [2, 16], "block_modes"), ("half-pel", [2, 17], "sample_offsets"),
     ("neighbour-levels", [2, 18], "half_pel")],
)  # fmt: skip
def test_a_decided_tool_off_writes_a_stream_that_the_version_before_reads(
    cli: Cli, tmp_path: Path, make_video, option: str, version: list[int], before: str
) -> None:
    """Each of these tools is `auto` or `off`: off, the stream is the version before, with the
    tool before it still on; `on` is refused."""
    info = round_trip(cli, tmp_path, make_video, frames=4, args=[f"--{option}", "off", "--qp", "40"])
    assert info["version"] == version and info[before] and not info[option.replace("-", "_")]
    assert_error(cli.enc(tmp_path / "src.y4m", "-o", tmp_path / "b.nvc", f"--{option}", "on"), 2, option)


def test_nvdec_frames_limit(cli: Cli, coded: Coded, tmp_path: Path) -> None:
    out = tmp_path / "three.y4m"
    res = cli.dec(coded.nvc, "-o", out, "--frames", "3")
    assert res.code == 0, res.err
    assert read_frames(out) == read_frames(coded.recon)[:3]


# --- inputs -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["yuv", "mkv", "mp4", "png"])
def test_input_formats(cli: Cli, tmp_path: Path, make_video, kind: str) -> None:
    if kind == "png":
        (tmp_path / "png").mkdir()
        source = tmp_path / "png" / "%03d.png"
        extra = ["--fps", "10"]
        fps = "10/1"
    elif kind == "yuv":
        source = tmp_path / "src.yuv"
        extra = ["--size", "96x64", "--fps", "30000/1001"]
        fps = "30000/1001"
    else:
        source = tmp_path / f"src.{kind}"
        extra, fps = [], "25/1"
    frames = make_video(source)
    nvc, recon, stats, out = (tmp_path / n for n in ("a.nvc", "rec.y4m", "s.json", "out.y4m"))
    res = cli.enc(source, "-o", nvc, "--recon", recon, "--stats", stats, *extra)
    assert res.code == 0, res.err
    assert cli.dec(nvc, "-o", out).code == 0
    assert out.read_bytes() == recon.read_bytes()
    info = cli.info_json(nvc)
    assert (info["width"], info["height"], info["fps"]) == (96, 64, fps)
    assert info["frame_count"] == FRAMES and len(info["frames"]) == FRAMES
    if kind != "png":  # lossless inputs: the encoder saw exactly the frames written
        rec = read_frames(recon)
        per_frame = json.loads(stats.read_text())["per_frame"]
        for src, r, entry in zip(frames, rec, per_frame):
            assert entry["psnr_y"] == pytest.approx(frame_psnr(src, r).y, abs=1e-9)


def test_raw_yuv_frame_count_follows_size(cli: Cli, tmp_path: Path, make_video) -> None:
    source = tmp_path / "src.yuv"
    make_video(source)
    # 6 frames of 96x64 I420 are 55296 bytes, which is also 12 frames of 64x48: raw video is trusted
    res = cli.enc(source, "-o", tmp_path / "a.nvc", "--size", "64x48")
    assert res.code == 0, res.err
    assert cli.info_json(tmp_path / "a.nvc")["frame_count"] == 12


def run_script(name: str, args: list[object], stdin: bytes, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*console_script(name), *map(str, args)],
        input=stdin,
        capture_output=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        cwd=cwd,
        timeout=120,
        check=False,
    )


def test_stdin_y4m_to_stdout_nvc(cli: Cli, coded: Coded, tmp_path: Path, tiny_weights: str) -> None:
    recon = tmp_path / "rec.y4m"
    proc = run_script(
        "nvenc",
        ["-", "-o", "-", "--recon", recon, "--weights", tiny_weights, "-q"],
        coded.source.read_bytes(),
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stderr == b""
    assert proc.stdout.startswith(MAGIC)
    nvc = tmp_path / "piped.nvc"
    nvc.write_bytes(proc.stdout)
    info = cli.info_json(nvc)
    # a pipe cannot be rewound: the frame count stays "unknown"
    assert info["frame_count"] is None and len(info["frames"]) == FRAMES and info["error"] is None
    res = cli.dec(nvc, "-o", tmp_path / "out.y4m")
    assert res.code == 0 and "warning" not in res.err, res.err
    assert (tmp_path / "out.y4m").read_bytes() == recon.read_bytes()
    assert len(read_frames(recon)) == FRAMES


def test_stdin_nvc_to_stdout_y4m(coded: Coded, tmp_path: Path, tiny_weights: str) -> None:
    proc = run_script(
        "nvdec", ["-", "-o", "-", "--weights", tiny_weights, "-q"], coded.nvc.read_bytes(), tmp_path
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stderr == b""
    assert proc.stdout == coded.recon.read_bytes()


@pytest.mark.parametrize("tool", ["nvdec", "nvenc"])
def test_broken_pipe_ends_quietly(coded: Coded, tmp_path: Path, tiny_weights: str, tool: str) -> None:
    """`nvdec x.nvc -o - | head -c 100`: no message, the status of a tool that SIGPIPE ended."""
    source = coded.nvc if tool == "nvdec" else coded.source
    proc = subprocess.Popen(
        [*console_script(tool), str(source), "-o", "-", "--weights", tiny_weights, "-q"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        cwd=tmp_path,
    )
    assert len(proc.stdout.read(100)) == 100
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141, err
    assert err == ""


def test_console_script_error_is_one_line(tmp_path: Path, tiny_weights: str) -> None:
    junk = tmp_path / "junk.nvc"
    junk.write_bytes(b"YUV4MPEG2 W8 H8\n" + bytes(200))
    proc = run_script("nvdec", [junk, "-o", "out.y4m", "--weights", tiny_weights], b"", tmp_path)
    err = proc.stderr.decode()
    assert proc.returncode == 4, err
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert err.startswith("nvdec: error: not an nvcodec bitstream (bad magic)")
    assert not (tmp_path / "out.y4m").exists()


# --- statistics and frame selection -----------------------------------------------------------


def test_stats_json(cli: Cli, coded: Coded) -> None:
    stats = json.loads(coded.stats.read_text())
    info = cli.info_json(coded.nvc)
    rec = read_frames(coded.recon)
    assert stats["frames"] == FRAMES == len(stats["per_frame"])
    assert (stats["width"], stats["height"], stats["fps"]) == (96, 64, "25")
    assert stats["bytes"] == coded.nvc.stat().st_size == info["file_bytes"]
    header = header_bytes(coded.nvc.read_bytes())
    assert stats["bytes"] == header + sum(f["bytes"] for f in stats["per_frame"])
    assert stats["bpp"] == pytest.approx(8 * stats["bytes"] / (FRAMES * 96 * 64))
    assert stats["kbps"] == pytest.approx(8 * stats["bytes"] * 25 / FRAMES / 1000)
    for i, (entry, shown) in enumerate(zip(stats["per_frame"], info["frames"])):
        assert entry["index"] == i
        assert (entry["type"], entry["qp"], entry["flags"], entry["bytes"]) == (
            shown["type"],
            shown["qp"],
            shown["flags"],
            shown["bytes"],
        )
        psnr = frame_psnr(coded.frames[i], rec[i])
        for plane in ("y", "u", "v", "yuv"):
            assert entry[f"psnr_{plane}"] == pytest.approx(getattr(psnr, plane), abs=1e-9)
    for plane in ("y", "u", "v", "yuv"):
        mean = sum(e[f"psnr_{plane}"] for e in stats["per_frame"]) / FRAMES
        assert stats[f"psnr_{plane}"] == pytest.approx(mean)


def test_start_and_frames_select_frames(cli: Cli, coded: Coded, tmp_path: Path) -> None:
    nvc, recon, stats = tmp_path / "a.nvc", tmp_path / "rec.y4m", tmp_path / "s.json"
    res = cli.enc(coded.source, "-o", nvc, "--start", 2, "--frames", 3, "--recon", recon, "--stats", stats)
    assert res.code == 0, res.err
    rec = read_frames(recon)
    per_frame = json.loads(stats.read_text())["per_frame"]
    assert len(rec) == len(per_frame) == 3
    for i, (r, entry) in enumerate(zip(rec, per_frame)):
        # the PSNR the encoder reports is against source frame 2 + i, and the reconstruction is sane
        assert entry["psnr_y"] == pytest.approx(frame_psnr(coded.frames[2 + i], r).y, abs=1e-9)
        assert 0 < entry["psnr_y"] < 100
    assert [frame_psnr(coded.frames[2 + i], r).y for i, r in enumerate(rec)] != [
        frame_psnr(coded.frames[i], r).y for i, r in enumerate(rec)
    ]
    info = cli.info_json(nvc)
    assert info["frame_count"] == 3 and len(info["frames"]) == 3
    assert [f["type"] for f in info["frames"]] == ["I", "P", "P"]


def test_start_near_the_end(cli: Cli, coded: Coded, tmp_path: Path) -> None:
    res = cli.enc(coded.source, "-o", tmp_path / "a.nvc", "--start", 5, "--frames", 3)
    assert res.code == 0, res.err
    assert cli.info_json(tmp_path / "a.nvc")["frame_count"] == 1
    assert cli.enc(coded.source, "-o", tmp_path / "t.nvc", "--start", "0.2s").code == 0  # frame 5 at 25 fps
    assert (tmp_path / "t.nvc").read_bytes() == (tmp_path / "a.nvc").read_bytes()
    res = cli.enc(coded.source, "-o", tmp_path / "b.nvc", "--start", FRAMES)
    assert_error(res, 2, "no frames to encode")
    assert not (tmp_path / "b.nvc").exists() and hidden_files(tmp_path) == []


# --- nvinfo -----------------------------------------------------------------------------------


def test_nvinfo_header_and_frames(cli: Cli, coded: Coded, tiny_weights: str) -> None:
    info = cli.info_json(coded.nvc)
    weights_id = hashlib.sha256(Path(tiny_weights).read_bytes()).hexdigest()[:16]
    assert info["version"] == [2, 19] and info["skip_edges"] and info["prediction_offsets"]  # auto
    assert info["adaptive_tables"] and info["compact_records"] and info["intra_blocks"]
    assert (info["width"], info["height"], info["fps"], info["frame_count"]) == (96, 64, "25/1", FRAMES)
    assert (info["model"], info["weights"]) == ("tiny", weights_id)
    assert (info["intra_period"], info["refresh_period"], info["tools"]) == (-1, 32, 255)
    assert info["qp_offsets"] == list(OFFSETS)
    assert info["error"] is None
    for i, f in enumerate(info["frames"]):
        assert f["index"] == i
        assert (f["type"], f["qp"]) == expected_qp(i, DEFAULT_QP, -1, FRAMES)
        assert len(f["substreams"]) == (1 if f["type"] == "I" else 2)  # (latent,) or (motion, latent)
        sizes = f["substreams"]  # a compact record (2.12): varint lengths, the last size implied
        record_len = 15 + sum(len(varint(size // 4)) for size in sizes[:-1]) + sum(sizes)
        assert f["bytes"] == len(varint(record_len)) + record_len

    res = cli.info(coded.nvc, "--frames")
    assert res.code == 0 and res.err == ""
    lines = res.out.splitlines()
    fields = {line[:13].strip(): line[13:].strip() for line in lines if line and line[0].isalpha()}
    assert fields["format"] == "nvcodec bitstream 2.19" and fields["tools"].endswith(
        "deep_references, pixel_dc, block_modes, sample_offsets, half_pel, neighbour_levels"
    )
    assert fields["picture"].startswith("96x64, 4:2:0, 8-bit, 25 fps")
    assert fields["frames"] == f"{FRAMES} announced, {FRAMES} readable"
    assert fields["model"] == f"tiny, weights {weights_id}"
    assert fields["segments"] == "1 (one intra frame; no index (one segment)): start at frames 0"
    assert fields["refresh"] == "32"
    assert fields["qp offsets"] == " ".join(map(str, OFFSETS))
    assert fields["size"].startswith(f"{info['file_bytes']} bytes")
    table = lines[lines.index("") + 2 :]
    assert len(table) == FRAMES
    for row, f in zip(table, info["frames"]):
        index, kind, qp, flags, size, *subs = row.split()
        assert (int(index), kind, int(qp), int(size)) == (f["index"], f["type"], f["qp"], f["bytes"])
        assert flags == (",".join(f["flags"]) or "-")
        assert list(map(int, subs)) == f["substreams"]

    res = cli.info(coded.nvc)  # without --frames: no table
    assert res.code == 0 and len(res.out.splitlines()) == len(fields)


def test_nvinfo_qp_schedule_clamps(cli: Cli, tmp_path: Path, make_video) -> None:
    source = tmp_path / "src.y4m"
    make_video(source, frames=17)  # position 8 wraps to offset 0; the last frames end a group early
    res = cli.enc(source, "-o", tmp_path / "a.nvc", "--qp", 60, "--filter", "off", "--enhance", "off")
    assert res.code == 0, res.err
    info = cli.info_json(tmp_path / "a.nvc")
    got = [(f["type"], f["qp"]) for f in info["frames"]]
    assert got == [expected_qp(i, 60, -1, 17) for i in range(17)]
    assert got[0] == ("I", 57) and got[1:9] == [("P", q) for q in (63, 62, 63, 61, 63, 62, 63, 60)]
    assert got[16] == ("P", 63)  # position 16, offset 0, but no frame follows


def test_nvinfo_on_truncated_file(cli: Cli, coded: Coded, tmp_path: Path) -> None:
    data = coded.nvc.read_bytes()
    start, end = record_spans(data)[3]
    cut = tmp_path / "cut.nvc"
    cut.write_bytes(data[: (start + end) // 2])
    res = cli.info(cut, "--json")
    assert res.code == 4
    info = json.loads(res.out)
    assert len(info["frames"]) == 3 and "truncated record at frame 3" in info["error"]
    assert_error(res, 4, "truncated record at frame 3")


@pytest.mark.parametrize("tool", [nvenc, nvdec, nvinfo], ids=lambda t: t.__name__.split(".")[-1])
def test_help(capsys: pytest.CaptureFixture[str], tool) -> None:
    assert tool.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Usage:") and "--help" in out


def test_console_script_help(tmp_path: Path) -> None:
    proc = run_script("nvinfo", ["--help"], b"", tmp_path)  # nvinfo does not import torch: fast
    assert proc.returncode == 0 and proc.stdout.startswith(b"Usage: nvinfo")


# --- errors -----------------------------------------------------------------------------------


def test_missing_input(cli: Cli, tmp_path: Path) -> None:
    assert_error(cli.enc(tmp_path / "nope.y4m", "-o", tmp_path / "a.nvc"), 2, "no such file")
    assert_error(cli.dec(tmp_path / "nope.nvc", "-o", tmp_path / "a.y4m"), 2, "no such file")
    assert_error(cli.info(tmp_path / "nope.nvc"), 2, "no such file")
    assert hidden_files(tmp_path) == [] and list(tmp_path.iterdir()) == []


def test_unknown_input_format(cli: Cli, tmp_path: Path) -> None:
    junk = tmp_path / "junk.txt"
    junk.write_text("this is not a video\n" * 20)
    assert_error(cli.enc(junk, "-o", tmp_path / "a.nvc"), 2, "junk.txt")
    assert not (tmp_path / "a.nvc").exists()


def test_raw_yuv_needs_size(cli: Cli, tmp_path: Path, make_video) -> None:
    source = tmp_path / "src.yuv"
    make_video(source)
    assert_error(cli.enc(source, "-o", tmp_path / "a.nvc"), 2, "needs its frame size: --size WxH")


@pytest.mark.parametrize("size", ["0x0", "10x", "abc", "9000x10", "10x-4", "x"])
def test_bad_size(cli: Cli, coded: Coded, tmp_path: Path, size: str) -> None:
    assert_error(cli.enc(coded.source, "-o", tmp_path / "a.nvc", "--size", size), 2, "--size")
    assert not (tmp_path / "a.nvc").exists()


def test_yuv_not_a_multiple_of_the_frame_size(cli: Cli, tmp_path: Path, make_video) -> None:
    source = tmp_path / "src.yuv"
    make_video(source)
    with source.open("ab") as f:
        f.write(b"\x80" * 100)
    assert_error(cli.enc(source, "-o", tmp_path / "a.nvc", "--size", "96x64"), 2, "not a multiple")
    assert not (tmp_path / "a.nvc").exists()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--qp", "64"], "--qp"),
        (["--qp", "-1"], "--qp"),
        (["--segment-frames", "0"], "--segment-frames"),
        (["--refresh-period", "70000"], "--refresh-period"),
        (["--frames", "0"], "--frames"),
        (["--fps", "0"], "--fps"),
        (["--filter", "maybe"], "--filter"),
        (["--bogus"], "--bogus"),
        (["--bitrate", "fast"], "--bitrate"),
        (["--bitrate", "1M", "--qp", "30"], "--qp and --bitrate"),
        (["--rc", "baseline"], "--rc needs --bitrate"),
        (["--bitrate", "1M", "--rc", "pid"], "--rc"),
        (["--bitrate", "1M", "--maxrate", "2M"], "go together"),
        (["--bitrate", "1M", "--maxrate", "500k", "--bufsize", "1M"], "at least"),
        (["--bitrate", "1M", "--rc", "baseline", "--maxrate", "2M", "--bufsize", "1M"], "--rc model"),
        (["--bitrate", "1M", "--maxrate", "2M", "--bufsize", "big"], "size in bits"),
        (["--bitrate", "1M", "--maxrate", "2M", "--bufsize", "10k"], "less than one frame"),
    ],
)
def test_usage_errors(cli: Cli, coded: Coded, tmp_path: Path, args: list[str], fragment: str) -> None:
    assert_error(cli.enc(coded.source, "-o", tmp_path / "a.nvc", *args), 2, fragment)
    assert not (tmp_path / "a.nvc").exists()


def test_missing_output_option(cli: Cli, coded: Coded) -> None:
    assert_error(cli.enc(coded.source), 2, "-o")
    assert_error(cli.dec(coded.nvc), 2, "-o")


def test_refuse_overwrite_then_force(cli: Cli, coded: Coded, tmp_path: Path) -> None:
    nvc = tmp_path / "a.nvc"
    nvc.write_bytes(b"precious")
    assert_error(cli.enc(coded.source, "-o", nvc), 3, "exists")
    assert nvc.read_bytes() == b"precious"
    assert cli.enc(coded.source, "-o", nvc, "-y").code == 0
    assert nvc.read_bytes() == coded.nvc.read_bytes()

    out = tmp_path / "out.y4m"
    out.write_bytes(b"precious")
    assert_error(cli.dec(nvc, "-o", out), 3, "exists")
    assert out.read_bytes() == b"precious"
    assert cli.dec(nvc, "-o", out, "--force").code == 0
    assert out.read_bytes() == coded.recon.read_bytes()
    assert hidden_files(tmp_path) == []


@pytest.mark.parametrize("name", ["out.y4m", "out.yuv", "out.nvc"])
def test_force_writes_into_a_fifo_in_place(cli: Cli, coded: Coded, tmp_path: Path, name: str) -> None:
    """`mkfifo v.y4m; ffplay v.y4m & nvdec x.nvc -o v.y4m -y`: the FIFO stays a FIFO and its reader
    gets the video."""
    fifo = tmp_path / name
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    if name.endswith(".nvc"):
        res = cli.enc(coded.source, "-o", fifo, "-y")
        expected = None
    else:
        res = cli.dec(coded.nvc, "-o", fifo, "-y")
        expected = (coded.recon.read_bytes() if name.endswith(".y4m") else
                    b"".join(f.tobytes() for f in read_frames(coded.recon)))  # fmt: skip
    reader.join(timeout=60)
    assert res.code == 0, res.err
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and hidden_files(tmp_path) == []
    if expected is None:
        assert got[0].startswith(MAGIC) and len(got[0]) > 100
    else:
        assert got[0] == expected


def test_a_failed_commit_leaves_no_part_file(
    cli: Cli, coded: Coded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(src: str, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("nvcodec.outputs.os.replace", full)
    line = assert_error(cli.dec(coded.nvc, "-o", tmp_path / "out.y4m"), 3, "no space left on device")
    assert line.count("cannot write") == 1 and str(tmp_path / "out.y4m") in line
    assert list(tmp_path.iterdir()) == []


def write_h264(path: Path, frames: list[Frame]) -> None:
    """A raw H.264 stream: no container, so no frame count."""
    with av.open(str(path), "w", format="h264") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = frames[0].width, frames[0].height, "yuv420p"
        for frame in frames:
            out.mux(stream.encode(to_av_frame(frame)))
        out.mux(stream.encode(None))


def test_a_fifo_input_is_read_once(cli: Cli, tmp_path: Path, make_video) -> None:
    """An input of unknown length is not scanned for its frame count when it is a pipe: a second
    reader would take the frames from the encoder."""
    video = tmp_path / "src.mkv"  # Matroska stores no frame count
    frames = make_video(video, width=160, height=96, frames=24)
    assert video.stat().st_size > 1 << 16  # more than a pipe's buffer holds
    fifo = tmp_path / "in.mkv"
    os.mkfifo(fifo)
    feeder = threading.Thread(target=lambda: fifo.write_bytes(video.read_bytes()), daemon=True)
    feeder.start()
    nvc = tmp_path / "a.nvc"
    assert cli.enc(fifo, "-o", nvc).code == 0
    feeder.join(timeout=60)
    assert len(read_info(nvc).frames) == len(frames)


def test_force_through_a_symlink_replaces_its_target(cli: Cli, coded: Coded, tmp_path: Path) -> None:
    real = tmp_path / "videos" / "real.y4m"
    real.parent.mkdir()
    real.write_bytes(b"old")
    link = tmp_path / "link.y4m"
    link.symlink_to(real)
    assert_error(cli.dec(coded.nvc, "-o", link), 3, "exists")
    assert cli.dec(coded.nvc, "-o", link, "-y").code == 0
    assert link.is_symlink() and real.read_bytes() == coded.recon.read_bytes()
    assert hidden_files(tmp_path) == []


def test_y4m_output_keeps_the_sample_aspect_ratio(cli: Cli, coded: Coded, tmp_path: Path) -> None:
    """A10:11 in, A10:11 out (decoded and --recon), carried by a version 2.1 header (2.3 with the
    large motion blocks tool, 2.4 with flat blocks); square inputs carry none."""
    body = coded.source.read_bytes().split(b"\n", 1)[1]
    source = tmp_path / "ntsc.y4m"
    source.write_bytes(b"YUV4MPEG2 W96 H64 F25:1 Ip A10:11 C420jpeg\n" + body)
    nvc, recon, out = tmp_path / "a.nvc", tmp_path / "rec.y4m", tmp_path / "out.y4m"
    args = OTHER_TOOLS_OFF[2:]  # all but the enhancement's option
    assert cli.enc(source, "-o", nvc, "--recon", recon, *args).code == 0
    info = cli.info_json(nvc)
    assert info["sar"] == [10, 11] and info["version"] == [2, 1]
    assert cli.dec(nvc, "-o", out).code == 0
    for video in (out, recon):
        assert b" A10:11 " in video.read_bytes().split(b"\n", 1)[0]
    assert out.read_bytes() == recon.read_bytes()
    assert cli.info_json(coded.nvc)["sar"] is None
    assert b" A0:0 " in coded.recon.read_bytes().split(b"\n", 1)[0]  # unknown, as Y4M spells it


def test_messages_name_the_flag_or_the_file(cli: Cli, coded: Coded, tmp_path: Path) -> None:
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"junk")
    assert_error(cli.enc(coded.source, "-o", tmp_path / "a.nvc", weights=str(junk)), 5, str(junk))
    assert_error(cli.enc(coded.source, "-o", tmp_path / "a.nvc", "--qp", "abc"), 2, "--qp")
    assert_error(cli.enc(coded.source, "-o", tmp_path / "a.mp4"), 2, "nvenc writes .nvc bitstreams")
    assert not (tmp_path / "a.mp4").exists()


def test_unwritable_folder_is_named_not_the_temporary_file(
    cli: Cli, coded: Coded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(prefix: str, suffix: str, dir: str) -> None:
        raise PermissionError(13, "Permission denied", os.path.join(dir, prefix + "x1y2" + suffix))

    monkeypatch.setattr("tempfile.mkstemp", refuse)
    line = assert_error(cli.dec(coded.nvc, "-o", tmp_path / "out.y4m"), 3, "permission denied")
    assert line.startswith(f"nvdec: error: {tmp_path / 'out.y4m'}: cannot write") and ".part" not in line


def test_nvinfo_reads_standard_input(coded: Coded, tmp_path: Path) -> None:
    proc = run_script("nvinfo", ["-", "--json"], coded.nvc.read_bytes(), tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    info = json.loads(proc.stdout)
    assert info["file_bytes"] == coded.nvc.stat().st_size and len(info["frames"]) == FRAMES


def test_progress_total_of_a_stream_without_a_count(tmp_path: Path, make_video) -> None:
    """A raw H.264 stream says no frame count: its packets are counted for the progress bar."""
    frames = make_video(tmp_path / "a.y4m", frames=5)
    raw = tmp_path / "a.h264"
    write_h264(raw, frames)
    with open_reader(str(raw)) as reader:
        assert reader.info.frame_count is None and reader.estimated_count() == 5


def test_existing_recon_refused_before_anything_is_written(cli: Cli, coded: Coded, tmp_path: Path) -> None:
    recon = tmp_path / "rec.y4m"
    recon.write_bytes(b"precious")
    res = cli.enc(coded.source, "-o", tmp_path / "a.nvc", "--recon", recon, "--stats", tmp_path / "s.json")
    assert_error(res, 3, "exists")
    assert recon.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec.y4m"]


def test_output_equal_to_input(cli: Cli, coded: Coded, tmp_path: Path) -> None:
    copy = tmp_path / "src.y4m"
    shutil.copy(coded.source, copy)
    assert_error(cli.enc(copy, "-o", copy, "-y"), 2, "overwrite the input")
    assert copy.read_bytes() == coded.source.read_bytes()
    assert_error(cli.enc(copy, "-o", tmp_path / "a.nvc", "--recon", copy, "-y"), 2, "overwrite the input")
    nvc = tmp_path / "a.nvc"
    shutil.copy(coded.nvc, nvc)
    assert_error(cli.dec(nvc, "-o", nvc, "-y"), 2, "overwrite the input")
    assert nvc.read_bytes() == coded.nvc.read_bytes()
    res = cli.enc(copy, "-o", tmp_path / "b.nvc", "--recon", tmp_path / "b.nvc")
    assert_error(res, 2, "two outputs")


def test_unknown_output_extension(cli: Cli, coded: Coded, tmp_path: Path) -> None:
    assert_error(cli.dec(coded.nvc, "-o", tmp_path / "out.foo"), 3, "unknown output format")
    assert_error(cli.enc(coded.source, "-o", tmp_path / "a.nvc", "--recon", tmp_path / "r.foo"), 3, ".foo")
    assert list(tmp_path.iterdir()) == []


def test_wrong_weights(cli: Cli, coded: Coded, tmp_path: Path, other_weights: str) -> None:
    line = assert_error(cli.dec(coded.nvc, "-o", tmp_path / "out.y4m", weights=other_weights), 5, "weights")
    assert "tiny" in line
    assert list(tmp_path.iterdir()) == []


def test_bad_weights_files(cli: Cli, coded: Coded, tmp_path: Path) -> None:
    assert_error(cli.dec(coded.nvc, "-o", tmp_path / "o.y4m", weights=str(tmp_path / "none")), 5, "weights")
    not_weights = tmp_path / "w.safetensors"
    not_weights.write_bytes(b"\x10" + bytes(40))
    assert_error(cli.enc(coded.source, "-o", tmp_path / "a.nvc", weights=str(not_weights)), 5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.safetensors"]


def test_not_a_bitstream(cli: Cli, coded: Coded, tmp_path: Path) -> None:
    assert_error(cli.dec(coded.source, "-o", tmp_path / "out.y4m"), 4, "bad magic")
    empty = tmp_path / "empty.nvc"
    empty.write_bytes(b"")
    assert_error(cli.dec(empty, "-o", tmp_path / "out.y4m"), 4, "empty file")
    assert_error(cli.info(empty), 4, "empty file")
    assert not (tmp_path / "out.y4m").exists()


@pytest.mark.parametrize(("major", "minor"), [(2, 20), (3, 0)])
def test_newer_version(cli: Cli, coded: Coded, tmp_path: Path, major: int, minor: int) -> None:
    data = bytearray(coded.nvc.read_bytes())
    data[4:6] = bytes([major, minor])  # the version is checked before the header CRC
    nvc = tmp_path / "new.nvc"
    nvc.write_bytes(data)
    assert_error(cli.dec(nvc, "-o", tmp_path / "out.y4m"), 4, f"version {major}.{minor} is newer")
    assert_error(cli.info(nvc), 4, "newer")
    assert not (tmp_path / "out.y4m").exists()


def test_version_1_streams_are_refused_with_a_pointer(cli: Cli, coded: Coded, tmp_path: Path) -> None:
    data = bytearray(coded.nvc.read_bytes())
    data[4:6] = bytes([1, 0])
    nvc = tmp_path / "v1.nvc"
    nvc.write_bytes(data)
    assert_error(cli.dec(nvc, "-o", tmp_path / "out.y4m"), 4, "decode it with nvcodec 0.1")
    assert not (tmp_path / "out.y4m").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_unavailable(cli: Cli, coded: Coded, tmp_path: Path) -> None:
    assert_error(cli.enc(coded.source, "-o", tmp_path / "a.nvc", "--device", "cuda"), 2, "cuda")
    assert_error(cli.dec(coded.nvc, "-o", tmp_path / "o.y4m", "--device", "cuda"), 2, "cuda")
    assert list(tmp_path.iterdir()) == []


def test_fp16_on_cpu(cli: Cli, coded: Coded, tmp_path: Path) -> None:
    res = cli.enc(coded.source, "-o", tmp_path / "a.nvc", "--device", "cpu", "--precision", "fp16")
    assert_error(res, 2, "fp16")
    res = cli.dec(coded.nvc, "-o", tmp_path / "o.y4m", "--device", "cpu", "--precision", "fp16")
    assert_error(res, 2, "fp16")
    assert list(tmp_path.iterdir()) == []


# --- no partial outputs -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["out.y4m", "out.yuv", "out.mkv", "png/%03d.png"])
def test_truncated_bitstream_keeps_the_frames_before_it(
    cli: Cli, coded: Coded, tmp_path: Path, name: str
) -> None:
    """The frames before a decoding error are valid (bitstream_spec.md, 7.13): they stay, complete."""
    data = coded.nvc.read_bytes()
    start, end = record_spans(data)[3]
    bitstream_dir = tmp_path / "in"
    bitstream_dir.mkdir()
    cut = bitstream_dir / "cut.nvc"
    cut.write_bytes(data[: (start + end) // 2])
    out_dir = tmp_path / "out"
    (out_dir / "png").mkdir(parents=True)
    res = cli.dec(cut, "-o", out_dir / name)
    line = assert_error(res, 4, "truncated record at frame 3")
    assert "the 3 frames before it are in" in line
    size = {"size": (96, 64)} if name.endswith(".yuv") else {}
    kept = read_frames(out_dir / name, **size)
    assert len(kept) == 3
    if not name.endswith(".png"):  # PNG goes through RGB
        assert [frame_crc(f) for f in kept] == [frame_crc(f) for f in read_frames(coded.recon)[:3]]
    assert hidden_files(tmp_path) == []


def test_nothing_decoded_leaves_no_output(cli: Cli, coded: Coded, tmp_path: Path) -> None:
    data = coded.nvc.read_bytes()
    start, end = record_spans(data)[0]
    cut = tmp_path / "cut.nvc"
    cut.write_bytes(data[: (start + end) // 2])
    assert_error(cli.dec(cut, "-o", tmp_path / "out.y4m"), 4, "truncated record at frame 0")
    assert not (tmp_path / "out.y4m").exists() and hidden_files(tmp_path) == []


def damage_record(data: bytes, index: int) -> bytes:
    """The stream with one byte of record `index`'s payload flipped (its CRC now fails)."""
    start, end = record_spans(data)[index]
    out = bytearray(data)
    out[(start + end) // 2] ^= 0x5A
    return bytes(out)


def test_damaged_record_stops_decoding_and_names_keep_going(cli: Cli, coded: Coded, tmp_path: Path) -> None:
    bad = tmp_path / "bad.nvc"
    bad.write_bytes(damage_record(coded.nvc.read_bytes(), 2))
    line = assert_error(cli.dec(bad, "-o", tmp_path / "out.y4m"), 4, "frame 2: record crc mismatch")
    assert "--keep-going" in line and "the 2 frames before it" in line
    assert len(read_frames(tmp_path / "out.y4m")) == 2


def test_tampering_behind_recomputed_crcs_is_damage_not_drift(cli: Cli, coded: Coded, tmp_path: Path) -> None:
    """A record whose qp was changed and its CRC recomputed decodes to another picture: the
    signature tells it from drift, so nvdec stops there and keeps the frames before it."""
    data = bytearray(coded.nvc.read_bytes())
    start, end = record_spans(bytes(data))[2]
    _, body = read_varint(data, start, end, "record_len")  # frame_type, qp, flags follow
    data[body + 1] += 24  # the qp of frame 2: steps four times as large
    struct.pack_into("<I", data, end - 4, zlib.crc32(bytes(data[body : end - 4])))
    bad = tmp_path / "tampered.nvc"
    bad.write_bytes(bytes(data))
    line = assert_error(
        cli.dec(bad, "-o", tmp_path / "out.y4m"), 4, "frame 2: its picture is not the encoder's"
    )
    assert "the 2 frames before it" in line
    assert len(read_frames(tmp_path / "out.y4m")) == 2


def test_a_changed_width_is_damage_not_drift(cli: Cli, coded: Coded, tmp_path: Path) -> None:
    """96 -> 90 keeps the padded size, so every symbol parses; the pictures differ from frame 0."""
    data = bytearray(coded.nvc.read_bytes())
    struct.pack_into("<H", data, FIELD["width"], 90)
    bad = tmp_path / "narrower.nvc"
    bad.write_bytes(bytes(fix_header_crc(data)))
    assert_error(cli.dec(bad, "-o", tmp_path / "out.y4m"), 4, "frame 0: its picture is not the encoder's")
    assert not (tmp_path / "out.y4m").exists()


def test_keep_going_conceals_until_the_next_intra_frame(cli: Cli, tmp_path: Path, make_video) -> None:
    """Frame 2 damaged, intra period 3: frame 2 shows frame 1 again; frame 3 (intra) and the rest
    decode as the encoder made them; every frame is in the output, and the exit status says 4."""
    source, nvc, recon = tmp_path / "src.y4m", tmp_path / "a.nvc", tmp_path / "rec.y4m"
    make_video(source, frames=6)
    assert cli.enc(source, "-o", nvc, "--segment-frames", "3", "--recon", recon).code == 0
    bad = tmp_path / "bad.nvc"
    bad.write_bytes(damage_record(nvc.read_bytes(), 2))
    res = cli.dec(bad, "-o", tmp_path / "out.y4m", "--keep-going")
    assert_error(res, 4, "1 of 6 frames could not be decoded")
    out, ref = read_frames(tmp_path / "out.y4m"), read_frames(recon)
    assert [frame_crc(f) for f in out] == [frame_crc(ref[i]) for i in (0, 1, 1, 3, 4, 5)]


def test_keep_going_loses_the_p_frames_after_damage(cli: Cli, coded: Coded, tmp_path: Path) -> None:
    """One intra frame: P frames parse with the previous frame's symbols, so after a damaged frame
    the rest show the last good picture."""
    bad = tmp_path / "bad.nvc"
    bad.write_bytes(damage_record(coded.nvc.read_bytes(), 3))
    assert_error(cli.dec(bad, "-o", tmp_path / "out.y4m", "--keep-going"), 4, "3 of 6 frames")
    out, ref = read_frames(tmp_path / "out.y4m"), read_frames(coded.recon)
    assert [frame_crc(f) for f in out] == [frame_crc(ref[i]) for i in (0, 1, 2, 2, 2, 2)]


def test_interrupted_encode_leaves_nothing(
    cli: Cli, coded: Coded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_encode = Encoder.encode
    calls = []

    def encode(self, frame, following=None):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_encode(self, frame, following)

    monkeypatch.setattr(Encoder, "encode", encode)
    nvc, recon, stats = tmp_path / "a.nvc", tmp_path / "rec.y4m", tmp_path / "s.json"
    res = cli.enc(coded.source, "-o", nvc, "--recon", recon, "--stats", stats)
    assert res.code == 130
    assert "Traceback" not in res.err and "interrupted" in res.err
    assert len(calls) == 3
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_terminated_encode_leaves_nothing(
    cli: Cli, coded: Coded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, signum: int
) -> None:
    """SIGTERM or SIGHUP in the middle of an encode: the outputs' hidden .part files are removed,
    one line says why, and the status is 128 + the signal."""
    real_encode = Encoder.encode

    def encode(self, frame, following=None):
        if self.index == 2:
            assert hidden_files(tmp_path)  # the .part files exist by now
            os.kill(os.getpid(), signum)
        return real_encode(self, frame, following)

    monkeypatch.setattr(Encoder, "encode", encode)
    res = cli.enc(coded.source, "-o", tmp_path / "a.nvc", "--recon", tmp_path / "rec.y4m")
    assert_error(res, 128 + signum, f"stopped by {signal.Signals(signum).name}")
    assert list(tmp_path.iterdir()) == []


def test_signals_during_start_up_end_without_a_traceback(
    coded: Coded, tmp_path: Path, tiny_weights: str
) -> None:
    """Ctrl-C while torch is being imported (it takes a second or more): one line, status 130."""
    proc = subprocess.Popen(
        [*console_script("nvenc"), str(coded.source), "-o", "a.nvc", "--weights", tiny_weights],
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    maps = Path(f"/proc/{proc.pid}/maps")
    deadline = time.monotonic() + 30
    while (
        time.monotonic() < deadline and maps.exists() and "libtorch" not in maps.read_text(errors="replace")
    ):
        time.sleep(0.005)  # until torch's libraries are being loaded: the import is under way
    proc.send_signal(signal.SIGINT)
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 130, err
    assert "Traceback" not in err and err.strip().endswith(("interrupted", "no output was left behind")), err
    assert list(tmp_path.iterdir()) == []


def test_version_and_help_answer_without_importing_torch() -> None:
    code = (
        "import sys\n"
        "from nvcodec.cli import nvdec, nvenc, nvinfo\n"
        "for tool in (nvenc, nvdec, nvinfo):\n"
        "    assert tool.main(['--version']) == 0 and tool.main(['--help']) == 0\n"
        "assert nvdec.main(['x.nvc']) == 2  # a usage error: -o missing\n"
        "assert not {'torch', 'av', 'numpy'} & set(sys.modules), sorted(sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"nvenc (nvcodec) {__version__}, bitstream 2.19" in done.stdout


# --- container fuzzing through nvdec ----------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def decode_case(cli: Cli, folder: Path, data: bytes, name: str) -> tuple[Result, float]:
    case = folder / name
    case.mkdir()
    nvc, out = case / "f.nvc", case / "out.y4m"
    nvc.write_bytes(data)
    began = time.perf_counter()
    try:
        res = cli.dec(nvc, "-o", out)
    except BaseException as exc:  # pragma: no cover - the point of the test
        pytest.fail(f"exception escaped nvdec.main: {exc!r}")
    elapsed = time.perf_counter() - began
    assert res.code != 70, res.err
    assert "Traceback" not in res.err
    if res.code != 0 and out.exists():  # what was decoded before the error, and said so
        kept = len(read_frames(out))
        assert f"the {kept} frames before it are in" in res.err, res.err
    assert hidden_files(case) == []
    return res, elapsed


CRAFTED = [
    ("width", "<H", 0),
    ("width", "<H", 97),
    ("width", "<H", 8192),
    ("height", "<H", 1),
    ("height", "<H", 8192),
    ("frame_count", "<I", 1),
    ("frame_count", "<I", 5),
    ("frame_count", "<I", 7),
    ("frame_count", "<I", 2**31 - 1),
    ("frame_count", "<I", 0xFFFFFFFF),
    ("fps_num", "<I", 1001 * 1000 + 1),
    ("fps_den", "<I", 0),
]


@pytest.mark.parametrize(("name", "fmt", "value"), CRAFTED, ids=[f"{n}={v}" for n, _, v in CRAFTED])
def test_fuzz_crafted_header_with_valid_crc(
    cli: Cli, coded: Coded, fuzz_dir: Path, name: str, fmt: str, value: int, request: pytest.FixtureRequest
) -> None:
    """Hostile header values with a recomputed CRC: refused (4; 2 for a picture over the size
    limit) or decoded (0), never a crash."""
    data = bytearray(coded.nvc.read_bytes())
    struct.pack_into(fmt, data, FIELD[name], value)
    res, elapsed = decode_case(
        cli, fuzz_dir, bytes(fix_header_crc(data)), "crafted-" + request.node.callspec.id
    )
    assert res.code in (0, 4) or (value == 8192 and "--max-size" in res.err), res.err
    assert elapsed < 10
    if name == "frame_count":
        assert res.code == (0 if value in (FRAMES, 0xFFFFFFFF) else 4), res.err
    if name in ("fps_den", "fps_num") or value == 0:
        assert res.code == 4


def test_fuzz_crafted_weights_hash(cli: Cli, coded: Coded, fuzz_dir: Path) -> None:
    data = bytearray(coded.nvc.read_bytes())
    name_len = data[26]
    data[27 + name_len] ^= 0x01  # first byte of weights_hash
    res, _ = decode_case(cli, fuzz_dir, bytes(fix_header_crc(data)), "crafted-hash")
    assert_error(res, 5, "weights")


def crafted_size(coded: Coded, folder: Path, width: int, height: int) -> Path:
    """The coded stream with its header claiming another picture size (CRC recomputed)."""
    data = bytearray(coded.nvc.read_bytes())
    struct.pack_into("<H", data, FIELD["width"], width)
    struct.pack_into("<H", data, FIELD["height"], height)
    path = folder / f"claims-{width}x{height}.nvc"
    path.write_bytes(bytes(fix_header_crc(data)))
    return path


def test_decompression_bomb_is_refused_before_allocating(cli: Cli, coded: Coded, tmp_path: Path) -> None:
    """A header that claims 8192x8192 is refused from the header alone; --max-size lifts the
    limit, and the memory estimate still refuses what the machine cannot hold."""
    bomb = crafted_size(coded, tmp_path, 8192, 8192)
    out = tmp_path / "out.y4m"
    assert_error(cli.dec(bomb, "-o", out), 2, "8192x8192 pictures are larger than the 3840x2160 limit")
    with mock.patch("nvcodec.limits.available_memory", return_value=8 << 30):
        assert_error(cli.dec(bomb, "-o", out, "--max-size", "8192x8192"), 2, "need about 40.4 gib")
    assert not out.exists() and hidden_files(tmp_path) == []


def test_max_size_is_an_area(cli: Cli, coded: Coded, tmp_path: Path) -> None:
    """Portrait 2160x3840 fits the default 3840x2160 area; 97x64 does not fit --max-size 96x64."""
    check_picture_size(2160, 3840, None, "portrait")
    assert_error(cli.dec(coded.nvc, "-o", tmp_path / "a.y4m", "--max-size", "95x64"), 2, "96x64 pictures")
    assert cli.dec(coded.nvc, "-o", tmp_path / "b.y4m", "--max-size", "64x96").code == 0


def test_hostile_y4m_header_is_refused_by_nvenc(cli: Cli, tmp_path: Path) -> None:
    source = tmp_path / "bomb.y4m"
    source.write_bytes(b"YUV4MPEG2 W8192 H8192 F25:1 Ip A1:1 C420jpeg\nFRAME\n" + bytes(1000))
    assert_error(cli.enc(source, "-o", tmp_path / "a.nvc"), 2, "larger than the 3840x2160 limit")
    assert not (tmp_path / "a.nvc").exists()


def test_crafted_stream_with_tools_the_header_forbids(cli: Cli, tmp_path: Path, make_video) -> None:
    source, nvc = tmp_path / "src.y4m", tmp_path / "a.nvc"
    make_video(source, frames=3)
    assert cli.enc(source, "-o", nvc, "--filter", "on", *OTHER_TOOLS_OFF).code == 0
    data = bytearray(nvc.read_bytes())
    tools_at = header_bytes(data) - 4 - len(OFFSETS) - 2  # ... tools u8, n u8, offsets, header_crc
    assert data[tools_at] == 1
    data[tools_at] = 0
    res, _ = decode_case(cli, tmp_path, bytes(fix_header_crc(data)), "case")
    assert_error(res, 4, "frame 1: contextual filter flag set but the header's tools do not allow it")
