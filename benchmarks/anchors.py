"""The classic encoders as anchors, run through PyAV in this process on the very same frames.

x264 and x265: preset veryslow, tune psnr, no B-frames, one intra frame (infinite GOP, no scene
cuts), constant QP. SVT-AV1: low-delay prediction structure, constant QP, one intra frame. Every
encoder runs on one thread, so results are reproducible and runs do not compete for cores.
Rates come from the coded packets (the elementary stream, no container), quality from decoding
those packets and comparing with the source frames.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import av

from benchmarks.environment import encoder_version
from nvcodec.frame import Frame
from nvcodec.io import frame_from_av, to_av_frame
from nvcodec.metrics import frame_psnr

os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1: errors only (it prints its configuration at level 3)


@dataclass(frozen=True)
class Anchor:
    """An encoder configuration; `options` are PyAV codec options with {qp} filled in."""

    name: str
    codec: str
    decoder: str
    options: dict[str, str]
    qps: tuple[int, ...]

    def options_for(self, qp: int) -> dict[str, str]:
        return {k: v.format(qp=qp) for k, v in self.options.items()}

    def command_line(self, qp: int) -> str:
        """The equivalent ffmpeg command line, for the report."""
        opts = " ".join(f"-{k} {v}" for k, v in self.options_for(qp).items())
        return f"ffmpeg -i in.y4m -c:v {self.codec} {opts} out"


X264 = Anchor(
    "x264",
    "libx264",
    "h264",
    {
        "preset": "veryslow",
        "tune": "psnr",
        "threads": "1",
        "x264-params": "qp={qp}:bframes=0:keyint=infinite:scenecut=0",
    },
    (22, 27, 32, 37, 42),
)
X265 = Anchor(
    "x265",
    "libx265",
    "hevc",
    {
        "preset": "veryslow",
        "tune": "psnr",
        "x265-params": "qp={qp}:bframes=0:keyint=-1:scenecut=0:pools=1:frame-threads=1:log-level=error",
    },
    (22, 27, 32, 37, 42),
)
SVTAV1 = Anchor(
    "svt-av1",
    "libsvtav1",
    "libdav1d",
    {"preset": "8", "qp": "{qp}", "svtav1-params": "pred-struct=1:rc=0:keyint=-1:enable-tpl-la=0:lp=1"},
    (28, 36, 44, 52, 60),
)
ANCHORS = {a.name: a for a in (X264, X265, SVTAV1)}


@dataclass
class AnchorRun:
    """One anchor at one QP: per-frame bits and PSNR, and the total bits of the packets."""

    anchor: str
    qp: int
    frame_bits: list[int] = field(default_factory=list)
    psnr: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    version: str | None = None  # the encoder's own version string, where it writes one

    @property
    def bits(self) -> int:
        return sum(self.frame_bits)


def round_trip(
    codec: str, decoder: str, options: dict[str, str], frames: Sequence[Frame], fps: Fraction
) -> tuple[list[bytes], list[Frame]]:
    """Encode the frames with a PyAV encoder and decode its packets: (the packets in decoding
    order, the decoded frames)."""
    fps = Fraction(fps)
    enc = av.CodecContext.create(codec, "w")
    enc.width, enc.height, enc.pix_fmt = frames[0].width, frames[0].height, "yuv420p"
    enc.time_base, enc.framerate, enc.options = 1 / fps, fps, options
    packets = []
    for i, frame in enumerate(frames):
        picture = to_av_frame(frame)
        picture.pts = i
        packets += enc.encode(picture)
    packets += enc.encode(None)
    dec = av.CodecContext.create(decoder, "r")
    decoded = [frame_from_av(p) for packet in [*packets, None] for p in dec.decode(packet)]
    if len(decoded) != len(frames):
        raise RuntimeError(f"{codec}: {len(decoded)} frames decoded from {len(frames)}")
    return [bytes(p) for p in packets], decoded


def encode(anchor: Anchor, frames: Sequence[Frame], qp: int, fps: Fraction = Fraction(25)) -> AnchorRun:
    """Encode and decode the frames; returns per-frame bits (in decoding order) and PSNR."""
    began = time.perf_counter()
    packets, decoded = round_trip(anchor.codec, anchor.decoder, anchor.options_for(qp), frames, fps)
    run = AnchorRun(anchor.name, qp, [8 * len(p) for p in packets], version=encoder_version(packets[0]))
    for source, out in zip(frames, decoded):
        p = frame_psnr(source, out)
        run.psnr.append({"y": p.y, "u": p.u, "v": p.v, "yuv": p.yuv})
    run.seconds = time.perf_counter() - began
    return run
