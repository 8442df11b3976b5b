"""Segments: what cutting a video into closed segments costs in compression, and what coding the
segments in parallel gains in speed, measured in one run on this machine.

    python -m benchmarks.segments [--parts speed,cost] [--clips foreman:240] [--seconds 1,2,4,8]
                                  [--qps 27,32,37,42] [--speed-clip foreman:100] [--speed-segment 1]
                                  [--weights PATH] [--out benchmarks/results]

Cost: each clip (its first N frames) coded at each qp as one segment and with segments of each
length; BD-rate of each length against one segment, sizes counting the index. Speed: the same
`nvenc` command run serially, with `--jobs 2` and on a local Dask cluster of 2 worker processes
(1 thread each, started beforehand), each in a fresh process, wall time including start-up; the
bitstreams must be byte-identical. Writes segments.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

from tqdm import tqdm

from benchmarks.clips import CLIPS, DATA, RATE_CLIPS
from benchmarks.rd import RESULTS, environment
from nvcodec.bdrate import between_points
from nvcodec.codec.schedule import CodingParams
from nvcodec.codec.segments import SegmentLength
from nvcodec.evaluation import code_sequence
from nvcodec.frame import VideoInfo
from nvcodec.io import open_writer
from nvcodec.outputs import write_file
from nvcodec.weights import Weights, default_weights_path, load_weights

ALL_CLIPS = CLIPS | RATE_CLIPS
NVENC = [sys.executable, "-c", "from nvcodec.cli.launch import nvenc; nvenc()"]


def clip_frames(spec: str, data: Path):
    """`name:N` -> (name, the first N frames, fps)."""
    name, _, count = spec.partition(":")
    frames, fps = ALL_CLIPS[name].read(data, int(count) if count else None)
    return name, frames, fps


def cost(weights: Weights, spec: str, seconds: list[Fraction], qps: list[int], data: Path) -> dict:
    """RD points with one segment and with each segment length, and BD-rate against one segment."""
    name, frames, fps = clip_frames(spec, data)
    lengths = {"one": -1} | {f"{float(s):g}s": SegmentLength(seconds=s).frames_at(fps, None) for s in seconds}
    curves = {}
    for label, period in lengths.items():
        points = []
        for qp in tqdm(qps, desc=f"{name} {label}", leave=False):
            s = code_sequence(weights, frames, CodingParams(qp=qp, intra_period=period), fps)
            points.append(
                {"qp": qp, "kbps": s.kbps, "psnr_yuv": s.mean_psnr("yuv"), "index_bytes": s.index_bytes}
            )
        curves[label] = {"segment_frames": period, "points": points}
    one = curves["one"]["points"]
    bd = {
        label: between_points(one, c["points"], rate="kbps") for label, c in curves.items() if label != "one"
    }
    return {
        "clip": name,
        "frames": len(frames),
        "fps": str(fps),
        "qps": qps,
        "curves": curves,
        "bd_rate_vs_one": bd,
    }


def speed(weights: Weights, spec: str, segment: Fraction, qp: int, data: Path) -> dict:
    """Wall time of one `nvenc` run serially, with 2 worker processes and on a local 2-worker
    cluster (started before, not timed), each run a fresh process as a user's would be."""
    from distributed import LocalCluster

    name, frames, fps = clip_frames(spec, data)
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "source.y4m"
        with open_writer(
            str(source), VideoInfo(frames[0].width, frames[0].height, fps, len(frames))
        ) as writer:
            for f in frames:
                writer.write(f)
        command = [*NVENC, str(source), "--qp", str(qp), "--segment", str(segment), "--weights", weights.path,
                   "--device", "cpu", "-q", "-y"]  # fmt: skip
        runs = {"serial": _timed(command, Path(tmp) / "serial.nvc"),
                "jobs 2": _timed([*command, "--jobs", "2"], Path(tmp) / "jobs.nvc")}  # fmt: skip
        with LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster:
            runs["cluster 2 workers"] = _timed(
                [*command, "--cluster", cluster.scheduler_address], Path(tmp) / "c.nvc"
            )
        serial = runs["serial"]
        for r in runs.values():
            r["fps"] = len(frames) / r["seconds"]
            r["speed_up"] = serial["seconds"] / r["seconds"]
            r["identical"] = r["bytes"] == serial["bytes"]
        for r in runs.values():
            del r["bytes"]
    return {"clip": name, "frames": len(frames), "segment_seconds": float(segment), "qp": qp, "runs": runs}


def _timed(command: list[str], out: Path) -> dict:
    began = time.perf_counter()
    subprocess.run([*command, "-o", str(out)], check=True)
    return {"seconds": time.perf_counter() - began, "bytes": out.read_bytes()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", default="foreman:240", help="name:frames,... for the BD-rate cost")
    parser.add_argument("--seconds", default="1,2,4,8")
    parser.add_argument("--qps", default="27,32,37,42")
    parser.add_argument("--speed-clip", default="foreman:100")
    parser.add_argument("--speed-segment", type=Fraction, default=Fraction(1))
    parser.add_argument("--parts", default="speed,cost", help="speed (on an idle machine), cost, or both")
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    weights = load_weights(args.weights or default_weights_path())
    seconds = [Fraction(s) for s in args.seconds.split(",")]
    qps = [int(q) for q in args.qps.split(",")]
    path = args.out / "segments.json"
    result = json.loads(path.read_text()) if path.is_file() else {}  # a part not run keeps its figures
    parts = args.parts.split(",")
    if "speed" in parts:
        result["speed"] = speed(weights, args.speed_clip, args.speed_segment, 32, args.data)
    if "cost" in parts:
        result["cost"] = [cost(weights, spec, seconds, qps, args.data) for spec in args.clips.split(",")]
    result["environment"] = environment(weights)
    args.out.mkdir(parents=True, exist_ok=True)
    write_file(path, json.dumps(result, indent=1))
    for label, r in result.get("speed", {}).get("runs", {}).items():
        print(f"{label}: {r['fps']:.2f} fps, x{r['speed_up']:.2f}, identical {r['identical']}", flush=True)
    for c in result.get("cost", []):
        print(
            c["clip"],
            {k: None if v is None else round(v, 2) for k, v in c["bd_rate_vs_one"].items()},
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
