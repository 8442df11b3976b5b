"""Rate control on real clips: how close each controller lands to its target, how steady its qp
is, and what it costs in BD-rate against fixed-qp coding of the same frames.

    python -m benchmarks.ratecontrol [--clips foreman,car_traffic,vtest] [--frames 96]
                                     [--weights PATH] [--out benchmarks/results]

For each clip: fixed-qp encodes at FIXED_QPS, then targets at the rates of TARGET_QPS (interpolated
in log-rate, rounded to two significant digits: spread over the model's range), each coded by both controllers. Writes
ratecontrol_<clip>.json with every run's per-frame qp and bits.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np
from tqdm import tqdm

from benchmarks.clips import DATA, RATE_CLIPS
from benchmarks.rd import RESULTS, environment
from nvcodec.bdrate import between_points
from nvcodec.codec.schedule import DEFAULT_QP_OFFSETS, CodingParams, RateTarget
from nvcodec.evaluation import code_sequence
from nvcodec.frame import Frame
from nvcodec.outputs import write_file
from nvcodec.weights import Weights, default_weights_path, load_weights

FIXED_QPS = (22, 27, 32, 37, 42, 47)
TARGET_QPS = (27, 34, 41)
CONTROLLERS = ("model", "baseline")


def run(weights: Weights, frames: Sequence[Frame], fps: Fraction, params: CodingParams) -> dict:
    """One encode: rate, PSNR, and the per-frame qp and bits."""
    began = time.perf_counter()
    s = code_sequence(weights, frames, params, fps)
    qps = [f.qp for f in s.frames]
    return {
        "kbps": s.kbps,
        "psnr_yuv": s.mean_psnr("yuv"),
        "seconds": time.perf_counter() - began,
        "frame_qp": qps,
        "frame_bits": [8 * f.bytes for f in s.frames],
        **steadiness(qps),
    }


def steadiness(qps: Sequence[int]) -> dict:
    """How much the base qp (frame qp less its scheduled offset) moves between P frames."""
    offsets = DEFAULT_QP_OFFSETS
    base = np.array([q - offsets[i % len(offsets)] for i, q in enumerate(qps)][1:])
    return {
        "mean_qp_change": float(np.abs(np.diff(base)).mean()) if len(base) > 1 else 0.0,
        "qp_std": float(base.std()),
        "qp_range": [int(base.min()), int(base.max())],
    }


def nice(kbps: float) -> float:
    """Two significant digits: the kind of target a user types."""
    digits = 1 - math.floor(math.log10(kbps))
    return round(kbps, digits)


def rate_at(fixed: dict[int, dict], qp: int) -> float:
    """The fixed-qp rate at `qp`, interpolated in log-rate between the measured qps."""
    qps = sorted(fixed)
    return float(np.exp(np.interp(qp, qps, [math.log(fixed[q]["kbps"]) for q in qps])))


def measure_clip(name: str, weights: Weights, frames_limit: int | None, data: Path) -> dict:
    frames, fps = RATE_CLIPS[name].read(data, frames_limit)
    fixed = {
        qp: run(weights, frames, fps, CodingParams(qp=qp)) for qp in tqdm(FIXED_QPS, desc=f"{name} fixed")
    }
    targets = [nice(rate_at(fixed, qp)) for qp in TARGET_QPS]
    controlled = {
        c: [run(weights, frames, fps, CodingParams(rate=RateTarget(t * 1000, c))) | {"target_kbps": t}
            for t in tqdm(targets, desc=f"{name} {c}")]
        for c in CONTROLLERS
    }  # fmt: skip
    bd = {c: between_points(list(fixed.values()), runs, rate="kbps") for c, runs in controlled.items()}
    return {
        "clip": name,
        "width": frames[0].width,
        "height": frames[0].height,
        "fps": str(fps),
        "frames": len(frames),
        "fixed_qps": list(FIXED_QPS),
        "target_qps": list(TARGET_QPS),
        "fixed": [{"qp": qp, **fixed[qp]} for qp in FIXED_QPS],
        "controlled": controlled,
        "bd_rate_vs_fixed": bd,
        "environment": environment(weights),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", default=",".join(RATE_CLIPS))
    parser.add_argument("--frames", type=int, help="frames per clip (default: each clip's own count)")
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    weights = load_weights(args.weights or default_weights_path())
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.clips.split(","):
        result = measure_clip(name, weights, args.frames, args.data)
        path = args.out / f"ratecontrol_{name}.json"
        write_file(path, json.dumps(result, indent=1))
        for c, runs in result["controlled"].items():
            errors = ", ".join(f"{100 * (r['kbps'] / r['target_kbps'] - 1):+.2f}%" for r in runs)
            print(
                f"{name} {c}: errors {errors}; BD-rate vs fixed qp {result['bd_rate_vs_fixed'][c]:+.2f}%",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
