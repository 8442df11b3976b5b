"""Fuzzing nvdec: mutated streams, each decoded in a child forked from one pre-imported process.

    python -m benchmarks.fuzz [--cases 5000] [--seed 1] [--json benchmarks/results/fuzz.json]

The base streams are coded with the tiny random model (a few frames of 96x64, one with periodic
intra frames and every tool's flag, large motion blocks on every P frame; flat-block maps and table
shifts where the encoder chose them, which must be somewhere). Each case mutates one
of them: bit flips, truncation, inserted or deleted bytes anywhere, and hostile values in header
and record fields with the CRCs recomputed, so that the checks behind the CRCs (field rules, the
entropy decoder's end checks, picture sizes) are reached too. A case passes when nvdec ends in one
of these ways:

- decoded (exit 0): every record gave a frame;
- refused (exit 2, 4 or 5, one line on stderr): no output, or the frames decoded before the
  error, as many as the message says, equal to the unmutated stream's frames when the mutation
  lies after them;

and fails on a traceback or internal error, another exit status or signal, a hang over the time
limit, a child above the memory limit, or a hidden partial file left behind.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import re
import resource
import signal
import struct
import sys
import tempfile
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import torch
from tqdm import tqdm

from nvcodec.bitstream import BitstreamReader, FrameFlags, FrameType, Tools
from nvcodec.bitstream.container import record_spans
from nvcodec.bitstream.record import read_varint, varint
from nvcodec.cli import nvdec
from nvcodec.codec.schedule import CodingParams, ToolMode
from nvcodec.codec.segments import SegmentLength
from nvcodec.frame import VideoInfo
from nvcodec.io import open_reader, open_writer
from nvcodec.models.config import TINY
from nvcodec.pipeline import DecodeJob, EncodeJob, decode_video, encode_video
from nvcodec.sample import synthetic_frames
from nvcodec.weights import random_model, save_weights

TIME_LIMIT = 60.0  # seconds per case
MEMORY_LIMIT = 2 << 30  # bytes of peak resident memory per case
REFUSALS = (2, 4, 5)
HEADER_FIELDS = {  # name: (offset, struct format) of the fixed-position header fields (spec 3.1)
    "width": (8, "<H"),
    "height": (10, "<H"),
    "fps_num": (12, "<I"),
    "fps_den": (16, "<I"),
    "frame_count": (20, "<I"),
    "chroma_format": (24, "<B"),
    "bit_depth": (25, "<B"),
    "name_len": (26, "<B"),
}
NAMED_FIELDS = {  # name: (offset after the model name's name_len bytes, format)
    "model_name": (27, "<B"),
    "weights_hash": (27 + 7, "<B"),
    "intra_period": (35, "<i"),
    "refresh_period": (39, "<H"),
    "tools": (41, "<B"),
    "qp_offset_count": (42, "<B"),
    "qp_offset": (43, "<b"),
}
# name: (offset after a compact record's record_len field, format); crc_recon follows the size varint
RECORD_FIELDS = {"frame_type": (0, "<B"), "qp": (1, "<B"), "flags": (2, "<B")}
HOSTILE = (0, 1, 2, 3, 7, 8, 63, 64, 96, 127, 128, 255, 256, 4095, 8191, 8192, 8193, 65535,
           2**31 - 1, 2**31, 2**32 - 1, -1, -2**31)  # fmt: skip


@dataclass
class Base:
    """A valid stream and what nvdec makes of it."""

    name: str
    data: bytes
    frames: list[bytes]  # each decoded frame's I420 bytes
    header_len: int  # bytes of the header, CRC included
    spans: list[tuple[int, int]]  # (start, end) of each record, record_len included

    @property
    def index_start(self) -> int:
        """Where the segment index after the records starts (the file's end when there is none)."""
        return self.spans[-1][1]


@dataclass
class Outcome:
    kind: str  # decoded, refused, prefix (refused, frames kept) or a failure: crash, hang, ...
    code: int
    seconds: float
    max_rss: int
    detail: str = ""


@dataclass
class Tally:
    counts: Counter = field(default_factory=Counter)
    failures: list[dict] = field(default_factory=list)
    slowest: float = 0.0
    peak_rss: int = 0

    def add(self, mutation: str, outcome: Outcome) -> None:
        self.counts[outcome.kind] += 1
        self.slowest = max(self.slowest, outcome.seconds)
        self.peak_rss = max(self.peak_rss, outcome.max_rss)
        if outcome.kind not in ("decoded", "refused", "prefix"):
            self.failures.append({"mutation": mutation, "kind": outcome.kind, "code": outcome.code,
                                  "detail": outcome.detail[-500:]})  # fmt: skip


def fix_header_crc(data: bytearray) -> None:
    (header_len,) = struct.unpack_from("<H", data, 6)
    end = 8 + header_len
    if end + 4 <= len(data):
        struct.pack_into("<I", data, end, zlib.crc32(bytes(data[:end])))


@dataclass(frozen=True)
class RecordLayout:
    """Where the fields of one compact record (bitstream 2.12, spec 4.1) lie in a stream."""

    start: int  # its record_len field
    body: int  # frame_type, just after record_len
    checks: int  # crc_recon, after the substream sizes
    end: int  # just after record_crc

    @classmethod
    def of(cls, data: bytes | bytearray, span: tuple[int, int]) -> RecordLayout:
        start, end = span
        _, body = read_varint(data, start, end, "record_len")
        checks = body + 3
        if data[body] == FrameType.INTER:
            _, checks = read_varint(data, checks, end, "the motion substream's size")
        return cls(start, body, checks, end)


def fix_record_crc(data: bytearray, layout: RecordLayout) -> None:
    struct.pack_into("<I", data, layout.end - 4, zlib.crc32(bytes(data[layout.body : layout.end - 4])))


def with_motion_size(data: bytearray, layout: RecordLayout, words: int) -> bytearray:
    """The stream with an inter record's motion size replaced, its record_len and CRC made to agree."""
    body = data[layout.body : layout.body + 3] + varint(words) + data[layout.checks : layout.end - 4]
    record = varint(len(body) + 4) + body + struct.pack("<I", zlib.crc32(bytes(body)))
    return data[: layout.start] + record + data[layout.end :]


def _pack(fmt: str, value: int) -> bytes:
    bits = 8 * struct.calcsize(fmt)
    signed = fmt[-1].islower()
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    return struct.pack(fmt, min(hi, max(lo, value)))


def mutate(base: Base, rng: random.Random) -> tuple[str, bytes, int]:
    """(description, mutated bytes, offset of the first byte that differs from the base).
    Descriptions of mutations whose CRCs were recomputed start with 'header' or 'record'."""
    data = bytearray(base.data)
    kinds = ["flip", "flip", "truncate", "insert", "delete", "header", "record", "payload", "index"]
    kind = rng.choice(kinds)
    if kind == "index" and base.index_start < len(data):
        spots = sorted(rng.randrange(base.index_start, len(data)) for _ in range(rng.randint(1, 3)))
        for at in spots:
            data[at] ^= 1 << rng.randrange(8)
        return f"index flip {spots}", bytes(data), spots[0]
    if kind in ("flip", "index"):
        spots = sorted(rng.randrange(len(data)) for _ in range(rng.randint(1, 8)))
        for at in spots:
            data[at] ^= 1 << rng.randrange(8)
        return f"flip {spots}", bytes(data), spots[0]
    if kind == "truncate":
        at = rng.randrange(len(data))
        return f"truncate at {at}", bytes(data[:at]), at
    if kind == "insert":
        at, extra = rng.randrange(len(data) + 1), rng.randbytes(rng.randint(1, 64))
        return f"insert {len(extra)} at {at}", bytes(data[:at] + extra + data[at:]), at
    if kind == "delete":
        at = rng.randrange(len(data))
        n = rng.randint(1, 64)
        return f"delete {n} at {at}", bytes(data[:at] + data[at + n :]), at
    if kind == "header":
        name = rng.choice([*HEADER_FIELDS, *NAMED_FIELDS])
        offset, fmt = HEADER_FIELDS.get(name) or NAMED_FIELDS[name]
        if name in NAMED_FIELDS:
            offset += base.data[26]
        value = rng.choice(HOSTILE)
        data[offset : offset + struct.calcsize(fmt)] = _pack(fmt, value)
        fix_header_crc(data)
        return f"header {name}={value}", bytes(data), offset
    index = rng.randrange(len(base.spans))
    layout = RecordLayout.of(data, base.spans[index])
    if kind == "record":
        inter = data[layout.body] == FrameType.INTER
        name = rng.choice([*RECORD_FIELDS, "crc_recon", *(["size"] if inter else [])])
        value = rng.choice(HOSTILE)
        if name == "size":
            return (
                f"record {index} size={value}",
                bytes(with_motion_size(data, layout, abs(value))),
                layout.start,
            )
        if name == "crc_recon":
            offset, fmt = layout.checks, "<I"
        else:
            offset, fmt = layout.body + RECORD_FIELDS[name][0], RECORD_FIELDS[name][1]
        data[offset : offset + struct.calcsize(fmt)] = _pack(fmt, value)
        fix_record_crc(data, layout)
        return f"record {index} {name}={value}", bytes(data), offset
    payload = layout.checks + 8
    if payload >= layout.end - 4:
        return f"record {index} (empty payload) untouched", bytes(data), len(data)
    spots = sorted(rng.randrange(payload, layout.end - 4) for _ in range(rng.randint(1, 4)))
    for at in spots:
        data[at] ^= 1 << rng.randrange(8)
    fix_record_crc(data, layout)
    return f"record {index} payload flip {spots}", bytes(data), spots[0]


def make_bases(folder: Path, weights: str) -> list[Base]:
    """The streams the cases start from, and their decoded frames."""
    source = folder / "source.y4m"
    frames = list(synthetic_frames(96, 64, 6, seed=3))
    with open_writer(str(source), VideoInfo(96, 64, Fraction(25), len(frames))) as writer:
        for f in frames:
            writer.write(f)
    settings = {
        "one-intra": CodingParams(qp=30),
        "periodic-tools": CodingParams(
            qp=36, filter=ToolMode.ON, enhance=ToolMode.ON, large_blocks=ToolMode.ON, six_tap=ToolMode.ON
        ),
        # eight taps, no split blocks, no intra prediction: where this clip has flat blocks
        "unsplit": CodingParams(
            qp=30, split_blocks=ToolMode.OFF, six_tap=ToolMode.OFF, intra_prediction=ToolMode.OFF
        ),
    }
    segments = {
        "one-intra": SegmentLength(),
        "periodic-tools": SegmentLength(frames=2),
        "unsplit": SegmentLength(),
    }
    bases = []
    for name, params in settings.items():
        nvc, out = folder / f"{name}.nvc", folder / f"{name}.y4m"
        job = EncodeJob(str(source), str(nvc), params, weights=weights, device="cpu", force=True)
        encode_video(replace(job, segment=segments[name]))
        decode_video(DecodeJob(str(nvc), str(out), weights=weights, device="cpu", force=True))
        with open_reader(str(out)) as reader:
            decoded = [f.tobytes() for f in reader.frames()]
        data = nvc.read_bytes()
        (header_body,) = struct.unpack_from("<H", data, 6)
        header_len = 8 + header_body + 4
        bases.append(Base(name, data, decoded, header_len, record_spans(data)))
    for flag, what in (
        (FrameFlags.FLAT_BLOCKS, "a flat-block map"),
        (FrameFlags.TABLE_SHIFTS, "table shifts"),
        (FrameFlags.SPLIT_BLOCKS, "split blocks"),
        (FrameFlags.SIX_TAP, "six-tap filters"),
    ):
        if not any(has_flag(b.data, flag) for b in bases):
            raise RuntimeError(f"no base stream has {what}: the fuzz would not reach its parser")
    if not any(BitstreamReader(io.BytesIO(b.data)).header.tools & Tools.INTRA_PREDICTION for b in bases):
        raise RuntimeError("no base stream has intra mode maps: the fuzz would not reach their parser")
    return bases


def has_flag(data: bytes, flag: FrameFlags) -> bool:
    """Whether some record of a stream has this flag."""
    return any(r.flags & flag for r in BitstreamReader(io.BytesIO(data)))


def _child(case: Path, out: Path, weights: str) -> None:
    """In the forked child: nvdec on the case, its output streams to files; never returns."""
    torch.set_num_threads(1)
    try:
        for fd, name in ((1, "stdout"), (2, "stderr")):
            f = os.open(case.parent / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(f, fd)
        sys.stderr = open(2, "w", closefd=False)
        code = nvdec.main([str(case), "-o", str(out), "--weights", weights, "--device", "cpu", "-q"])
        sys.stderr.flush()
    except BaseException:
        import traceback

        traceback.print_exc()
        sys.stderr.flush()
        code = 99
    os._exit(code)


def _wait(pid: int, limit: float) -> tuple[int | None, int, float]:
    """(exit status or None when killed for time, peak RSS in bytes, seconds) of a child."""
    began = time.perf_counter()
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        elapsed = time.perf_counter() - began
        if done:
            code = os.waitstatus_to_exitcode(status)
            return code, usage.ru_maxrss * 1024, elapsed
        if elapsed > limit:
            os.kill(pid, signal.SIGKILL)
            _, _, usage = os.wait4(pid, 0)
            return None, usage.ru_maxrss * 1024, elapsed
        time.sleep(0.002)


def run_case(base: Base, data: bytes, first_change: int, folder: Path, weights: str, forged: bool,
             limit: float = TIME_LIMIT) -> Outcome:  # fmt: skip
    """Decode one mutated stream in a forked child and judge what it did. Unless the mutation
    `forged` the CRCs, every change must be refused: every byte is covered by a CRC, a length or
    the announced frame count."""
    folder.mkdir()
    case, out = folder / "case.nvc", folder / "out.y4m"
    case.write_bytes(data)
    pid = os.fork()
    if pid == 0:
        _child(case, out, weights)
    code, rss, seconds = _wait(pid, limit)
    err = (folder / "stderr").read_text(errors="replace")
    kind, detail = (
        ("memory", err) if rss > MEMORY_LIMIT else _judge(base, first_change, folder, out, code, err)
    )
    if kind == "decoded" and not forged:
        kind = "undetected"
    return Outcome(kind, -1 if code is None else code, seconds, rss, detail)


def _judge(
    base: Base, first_change: int, folder: Path, out: Path, code: int | None, err: str
) -> tuple[str, str]:
    if code is None:
        return "hang", err
    leftovers = [p.name for p in folder.iterdir() if p.name.startswith(".")]
    if leftovers:
        return "partial-file", f"{leftovers} {err}"
    if "Traceback" in err or code in (70, 99) or code < 0:
        return "crash", err
    lines = [line for line in err.splitlines() if line.strip()]
    if code == 0:
        count = _frames_in(out)
        return ("decoded", "") if count is not None else ("bad-output", err)
    if code not in REFUSALS or not lines or not any("error" in line for line in lines):
        return "unexpected-exit", err
    if not out.exists():
        return "refused", ""
    kept = re.search(r"the (\d+) frames before it are in", err)
    frames = _frames_in(out, whole=True)
    if kept is None or frames is None or len(frames) != int(kept.group(1)):
        return "bad-prefix", err
    untouched = [i for i, (_, end) in enumerate(base.spans) if end <= first_change]
    if first_change >= base.header_len and len(frames) <= len(untouched):
        if frames != base.frames[: len(frames)]:
            return "wrong-prefix", err
    return "prefix", ""


def _frames_in(out: Path, whole: bool = False):
    """The Y4M output's frame count (or frames' bytes with `whole`), None when unreadable."""
    try:
        with open_reader(str(out)) as reader:
            frames = [f.tobytes() for f in reader.frames()]
    except Exception:
        return None
    return frames if whole else len(frames)


def fuzz(cases: int, seed: int, folder: Path, progress: bool = True) -> dict:
    """Run `cases` mutations; returns the tally as a dict (counts, failures, limits)."""
    torch.set_num_threads(1)  # no OpenMP pool in the parent: forked children cannot inherit one
    folder.mkdir(parents=True, exist_ok=True)
    weights = str(folder / "tiny.safetensors")
    save_weights(random_model(TINY, 0), weights)
    bases = make_bases(folder, weights)
    rng = random.Random(seed)
    tally = Tally()
    began = time.perf_counter()
    for i in tqdm(range(cases), desc="fuzz", unit="case", disable=not progress, leave=False):
        base = bases[i % len(bases)]
        what, data, first = mutate(base, rng)
        if data == base.data:
            tally.counts["unchanged"] += 1
            continue
        forged = what.startswith(("header", "record"))
        tally.add(f"{base.name}: {what}", run_case(base, data, first, folder / f"case{i}", weights, forged))
    failures = len(tally.failures)
    return {
        "cases": cases,
        "seed": seed,
        "seconds": round(time.perf_counter() - began, 1),
        "counts": dict(tally.counts),
        "failures": failures,
        "failure_examples": tally.failures[:20],
        "slowest_case_s": round(tally.slowest, 2),
        "peak_rss_mib": round(tally.peak_rss / 2**20, 1),
        "limits": {"seconds": TIME_LIMIT, "rss_mib": MEMORY_LIMIT / 2**20},
        "bases": [{"name": b.name, "bytes": len(b.data), "frames": len(b.frames)} for b in bases],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", help="also write the tally to this file")
    args = parser.parse_args()
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    with tempfile.TemporaryDirectory(prefix="nvfuzz-") as tmp:
        result = fuzz(args.cases, args.seed, Path(tmp))
    print(json.dumps({k: v for k, v in result.items() if k != "failure_examples"}, indent=1))
    for example in result["failure_examples"]:
        print(example, file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    sys.exit(1 if result["failures"] else 0)


if __name__ == "__main__":
    main()
