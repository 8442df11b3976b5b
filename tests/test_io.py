"""Tests of nvcodec.io: round trips through every output format, standard streams, errors."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from nvcodec.errors import InputError, OutputError
from nvcodec.frame import Frame, VideoInfo, frame_bytes
from nvcodec.io import open_reader, open_writer
from nvcodec.io.writers import to_av_frame
from nvcodec.metrics import frame_psnr
from nvcodec.sample import synthetic_frames

SRC = str(Path(__file__).resolve().parents[1] / "src")
NTSC = Fraction(30000, 1001)


def make_frames(width: int = 32, height: int = 24, count: int = 6) -> list[Frame]:
    """A few synthetic frames."""
    return list(synthetic_frames(width, height, count, seed=3))


def write_all(path: Path | str, frames: list[Frame], fps: Fraction = NTSC, force: bool = False) -> None:
    """Write frames with open_writer."""
    info = VideoInfo(frames[0].width, frames[0].height, fps)
    with open_writer(str(path), info, force=force) as writer:
        for frame in frames:
            writer.write(frame)


def read_all(path: Path | str, **kwargs: object) -> tuple[VideoInfo, list[Frame]]:
    """Info and every frame of an input."""
    with open_reader(str(path), **kwargs) as reader:
        return reader.info, list(reader.frames())


def fake_stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    """Make sys.stdin.buffer read `data`."""
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


ROUND_TRIPS = [(ext, size) for ext in ("y4m", "yuv", "mkv", "mp4") for size in ((32, 24), (33, 17))]


@pytest.mark.parametrize(("ext", "size"), [c for c in ROUND_TRIPS if c != ("mp4", (33, 17))])  # odd: refused
def test_round_trip_bit_exact(tmp_path: Path, ext: str, size: tuple[int, int]) -> None:
    frames = make_frames(*size)
    path = tmp_path / f"v.{ext}"
    write_all(path, frames)
    info, got = read_all(path, size=size if ext == "yuv" else None)
    assert (info.width, info.height) == size
    assert info.fps == (Fraction(25) if ext == "yuv" else NTSC)
    assert info.frame_count in (len(frames), None)
    if ext in ("y4m", "yuv", "mp4"):
        assert info.frame_count == len(frames)
    assert len(got) == len(frames)
    assert all(a == b for a, b in zip(frames, got))
    assert all(p.flags.owndata for f in got for p in f.planes)
    assert os.listdir(tmp_path) == [path.name]


def test_frames_start_count(tmp_path: Path) -> None:
    frames = make_frames(count=8)
    path = tmp_path / "v.y4m"
    write_all(path, frames)
    with open_reader(str(path)) as reader:
        assert list(reader.frames(2, 3)) == frames[2:5]
        assert list(reader.frames(5)) == frames[5:]
        assert list(reader.frames(0, 0)) == []
        assert list(reader.frames(20, 2)) == []
        assert list(reader.frames()) == frames


def test_png_sequence_round_trip(tmp_path: Path) -> None:
    frames = make_frames(33, 17, 4)
    write_all(tmp_path / "%04d.png", frames)
    assert sorted(os.listdir(tmp_path)) == [f"{i:04d}.png" for i in range(1, 5)]
    info, got = read_all(tmp_path / "%04d.png", fps=Fraction(24))
    assert (info.width, info.height, info.fps, info.frame_count) == (33, 17, 24, 4)
    assert all(frame_psnr(a, b).y > 35 for a, b in zip(frames, got))
    for i in range(1, 5):  # a sequence numbered from 0 reads too
        os.rename(tmp_path / f"{i:04d}.png", tmp_path / f"{i - 1:04d}.png")
    assert len(read_all(tmp_path / "%04d.png")[1]) == 4


def test_png_abort_removes_everything(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        with open_writer(str(tmp_path / "f%03d.png"), VideoInfo(16, 16, Fraction(25))) as writer:
            for frame in make_frames(16, 16, 3):
                writer.write(frame)
            raise RuntimeError("interrupted")
    assert os.listdir(tmp_path) == []


def test_stdin_to_stdout_subprocess(tmp_path: Path) -> None:
    frames = make_frames(33, 17, 5)
    write_all(tmp_path / "in.y4m", frames)
    code = (
        "from nvcodec.io import open_reader, open_writer\n"
        "with open_reader('-') as r, open_writer('-', r.info) as w:\n"
        "    for f in r.frames(): w.write(f)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")]))}
    data = (tmp_path / "in.y4m").read_bytes()
    done = subprocess.run([sys.executable, "-c", code], input=data, capture_output=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stderr == b""
    (tmp_path / "out.y4m").write_bytes(done.stdout)
    info, got = read_all(tmp_path / "out.y4m")
    assert info.fps == NTSC and got == frames


def test_raw_stdin_with_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    frames = make_frames(33, 17, 3)
    fake_stdin(monkeypatch, b"".join(f.tobytes() for f in frames))
    info, got = read_all("-", size=(33, 17), fps=Fraction(50))
    assert (info.fps, info.frame_count) == (50, None) and got == frames


def test_raw_stdin_partial_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    data = b"".join(f.tobytes() for f in make_frames(33, 17, 2))
    fake_stdin(monkeypatch, data[:-10])
    with open_reader("-", size=(33, 17)) as reader, pytest.raises(InputError, match="truncated"):
        list(reader.frames())


def test_truncated_y4m_stdin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_all(tmp_path / "v.y4m", make_frames(count=3))
    fake_stdin(monkeypatch, (tmp_path / "v.y4m").read_bytes()[:-7])
    with open_reader("-") as reader, pytest.raises(InputError, match="truncated"):
        list(reader.frames())


def test_truncated_y4m_file(tmp_path: Path) -> None:
    frames = make_frames(count=3)
    path = tmp_path / "v.y4m"
    write_all(path, frames)
    path.write_bytes(path.read_bytes()[:-100])
    got = []
    with open_reader(str(path)) as reader, pytest.raises(InputError, match="truncated"):
        for frame in reader.frames():
            got.append(frame)
    assert got == frames[:2]


def test_corrupt_y4m(tmp_path: Path) -> None:
    path = tmp_path / "v.y4m"
    write_all(path, make_frames(count=3))
    path.write_bytes(path.read_bytes().replace(b"FRAME", b"FRAXE"))
    with pytest.raises(InputError):
        read_all(path)


@pytest.mark.parametrize(
    "header", [b"YUV4MPEG2 W99999 H99999 F25:1\n", b"YUV4MPEG2 W0 H16\n", b"YUV4MPEG2 F25:1\n"]
)
def test_hostile_y4m_header(tmp_path: Path, header: bytes) -> None:
    path = tmp_path / "h.y4m"
    path.write_bytes(header + b"FRAME\n" + bytes(64))
    with pytest.raises(InputError, match="size|W and H"):
        open_reader(str(path))


def test_non_420_converted_with_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    frames = make_frames(33, 17, 3)
    path = tmp_path / "v444.mkv"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = 33, 17, "yuv444p10le"
        for i, frame in enumerate(frames):
            picture = to_av_frame(frame).reformat(format="yuv444p10le", threads=1)
            picture.pts = i
            out.mux(stream.encode(picture))
        out.mux(stream.encode(None))
    with caplog.at_level(logging.WARNING, logger="nvcodec.io"):
        _, got = read_all(path)
    notices = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(notices) == 1 and "converting yuv444p10le to 8-bit 4:2:0" in notices[0]
    assert len(got) == 3
    assert all(frame_psnr(a, b).y > 45 and frame_psnr(a, b).u > 30 for a, b in zip(frames, got))


def test_missing_directory_and_unknown_inputs(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        open_reader(str(tmp_path / "nope.y4m"))
    with pytest.raises(InputError, match="is a directory"):
        open_reader(str(tmp_path))
    (tmp_path / "x.foo").write_bytes(b"this is not a video at all\n" * 20)
    with pytest.raises(InputError, match="cannot open .*x.foo as video"):
        open_reader(str(tmp_path / "x.foo"))
    with pytest.raises(InputError, match="no file matches"):
        open_reader(str(tmp_path / "%04d.png"))


def test_no_video_stream(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=8000)
        audio = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        audio.sample_rate = 8000
        out.mux(stream.encode(audio))
        out.mux(stream.encode(None))
    with pytest.raises(InputError, match="no video stream"):
        open_reader(str(path))


def test_raw_yuv_errors(tmp_path: Path) -> None:
    path = tmp_path / "v.yuv"
    path.write_bytes(bytes(frame_bytes(33, 17) * 2 + 5))
    with pytest.raises(InputError, match="needs its frame size: --size"):
        open_reader(str(path))
    with pytest.raises(
        InputError, match=f"{frame_bytes(33, 17) * 2 + 5} bytes .* {frame_bytes(33, 17)} bytes"
    ):
        open_reader(str(path), size=(33, 17))
    for size in [(0, 17), (-2, 4), (8193, 16)]:
        with pytest.raises(InputError, match="invalid frame size"):
            open_reader(str(path), size=size)


def test_size_mismatch(tmp_path: Path) -> None:
    write_all(tmp_path / "v.y4m", make_frames(count=1))
    with pytest.raises(InputError, match="given, but the video is 32x24"):
        open_reader(str(tmp_path / "v.y4m"), size=(16, 16))


def test_unknown_output_format(tmp_path: Path) -> None:
    info = VideoInfo(16, 16, Fraction(25))
    for name in ["out.foo", "out.png", "out%d.jpg", "noext"]:
        with pytest.raises(OutputError, match="unknown output format"):
            open_writer(str(tmp_path / name), info)
    assert os.listdir(tmp_path) == []


def test_odd_mp4_refused(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="even"):
        open_writer(str(tmp_path / "v.mp4"), VideoInfo(33, 17, Fraction(25)))
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("name", ["v.y4m", "v.yuv", "v.mkv", "v.mp4", "0001.png"])
def test_refuse_overwrite(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_bytes(b"precious")
    target = "%04d.png" if name.endswith(".png") else name
    with pytest.raises(OutputError, match="exists"):
        open_writer(str(tmp_path / target), VideoInfo(16, 16, Fraction(25)))
    assert (tmp_path / name).read_bytes() == b"precious"
    assert os.listdir(tmp_path) == [name]
    write_all(tmp_path / target, make_frames(16, 16, 1), force=True)
    assert (tmp_path / name).read_bytes() != b"precious"


@pytest.mark.parametrize("ext", ["y4m", "yuv", "mkv", "mp4"])
@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_abort_leaves_nothing(tmp_path: Path, ext: str, error: type[BaseException]) -> None:
    (tmp_path / "other.txt").write_text("x")
    with pytest.raises(error):
        with open_writer(str(tmp_path / f"v.{ext}"), VideoInfo(16, 16, Fraction(25))) as writer:
            for frame in make_frames(16, 16, 3):
                writer.write(frame)
            raise error()
    assert os.listdir(tmp_path) == ["other.txt"]
