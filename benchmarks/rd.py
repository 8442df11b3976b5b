"""Rate-distortion of nvcodec and the anchors on the development clips, measured in one run.

    python -m benchmarks.rd [--clips foreman,cockatoo,cactus,people] [--frames N] [--qps 0,22,27,32,37,42,63]
                            [--anchors x264,x265,svt-av1] [--weights PATH] [--out benchmarks/results]
                            [--large-blocks auto|on|off] [--flat-blocks auto|off] [--table-shifts auto|off]
                            [--split-blocks auto|off] [--six-tap auto|on|off]

Writes one JSON per clip (every point with its per-frame bits and PSNR). Conditions: low delay,
one intra frame, YUV 4:2:0 8-bit, PSNR-YUV 6:1:1, rates from the real bitstream sizes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

from tqdm import tqdm

from benchmarks.anchors import ANCHORS, Anchor, encode
from benchmarks.clips import CLIPS, DATA
from benchmarks.environment import library_versions, machine
from nvcodec.codec.encoder import header_for
from nvcodec.codec.schedule import CodingParams, ToolMode
from nvcodec.evaluation import code_sequence
from nvcodec.frame import Frame, VideoInfo
from nvcodec.outputs import write_file
from nvcodec.weights import Weights, default_weights_path, load_weights

RESULTS = Path(__file__).resolve().parent / "results"
NVCODEC_QPS = (0, 22, 27, 32, 37, 42, 63)  # the whole range, and the anchors' QPs for BD-rate
DECIDED = ("auto", "off")  # tools the encoder decides for each frame or block
# nvenc's coding tools as CodingParams fields, with the modes nvenc takes, in the order the results
# record them (benchmarks.report writes the nvenc command line from that record)
TOOL_MODES = {
    "large_blocks": ("auto", "on", "off"),
    "flat_blocks": DECIDED,
    "table_shifts": DECIDED,
    "split_blocks": DECIDED,
    "six_tap": ("auto", "on", "off"),
    "skip_edges": DECIDED,
    "prediction_offsets": DECIDED,
    "adaptive_tables": DECIDED,
    "compact_records": DECIDED,
    "intra_blocks": DECIDED,
    "deep_references": DECIDED,
    "pixel_dc": DECIDED,
    "block_modes": DECIDED,
    "sample_offsets": DECIDED,
    "half_pel": DECIDED,
    "neighbour_levels": DECIDED,
}


def point(qp: int, frame_bits: Sequence[int], psnr: Sequence[dict], frames: Sequence[Frame], fps: Fraction,
          seconds: float, extra_bits: int = 0) -> dict:  # fmt: skip
    """One RD point: totals and the per-frame traces."""
    bits = sum(frame_bits) + extra_bits
    n, pixels = len(frames), frames[0].width * frames[0].height
    mean = {p: sum(f[p] for f in psnr) / n for p in ("y", "u", "v", "yuv")}
    return {
        "qp": qp,
        "bits": bits,
        "bpp": bits / (n * pixels),
        "kbps": bits * float(fps) / n / 1000,
        **{f"psnr_{p}": v for p, v in mean.items()},
        "seconds": seconds,
        "frame_bits": list(frame_bits),
        "frame_psnr_yuv": [f["yuv"] for f in psnr],
        "frame_psnr_y": [f["y"] for f in psnr],
    }


def run_nvcodec(
    weights: Weights, frames: Sequence[Frame], fps: Fraction, qps: Sequence[int], params: CodingParams
) -> list[dict]:
    """nvcodec's points at each qp, with the other coding parameters of `params`."""
    points = []
    for qp in tqdm(qps, desc="nvcodec", unit="qp", leave=False):
        began = time.perf_counter()
        s = code_sequence(weights, frames, replace(params, qp=qp), fps)
        psnr = [{"y": f.psnr.y, "u": f.psnr.u, "v": f.psnr.v, "yuv": f.psnr.yuv} for f in s.frames]
        seconds = time.perf_counter() - began
        points.append(
            point(qp, [8 * f.bytes for f in s.frames], psnr, frames, fps, seconds, 8 * s.header_bytes)
        )
        points[-1]["frame_psnr_yuv_unenhanced"] = [f.unenhanced_psnr.yuv for f in s.frames]
        points[-1]["frame_types"] = [f.type for f in s.frames]
        points[-1]["frame_flags"] = [f.flags for f in s.frames]
    return points


def stream_version(weights: Weights, params: CodingParams, qps: Sequence[int], info: VideoInfo) -> str:
    """The bitstream version of the streams coded at `qps` (the highest, should it depend on the qp)."""
    major, minor = max(header_for(weights, replace(params, qp=qp), info).version for qp in qps)
    return f"{major}.{minor}"


def anchor_key(name: str, frames: Sequence[Frame], fps: Fraction) -> str:
    """What an anchor's points depend on: its settings, the libraries and the exact frames."""
    digest = hashlib.sha256()
    for frame in frames:
        digest.update(frame.tobytes())
    anchor = ANCHORS[name]
    parts = [
        name,
        str(fps),
        json.dumps([anchor.options, anchor.qps]),
        json.dumps(library_versions()),
        digest.hexdigest(),
    ]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def run_anchor(name: str, frames: Sequence[Frame], fps: Fraction, cache: Path | None = None) -> list[dict]:
    """The anchor's points; reused from `cache` when measured before on the same frames and libraries
    (the encoders are deterministic), so a new release of the weights only recodes nvcodec."""
    key = anchor_key(name, frames, fps)
    path = cache / f"{name}-{key[:16]}.json" if cache else None
    if path and path.is_file():
        return json.loads(path.read_text())
    points = measure_anchor(ANCHORS[name], frames, fps)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_file(path, json.dumps(points))
    return points


def measure_anchor(anchor: Anchor, frames: Sequence[Frame], fps: Fraction) -> list[dict]:
    """The anchor's RD points at its qps, coded now."""
    points = []
    for qp in tqdm(anchor.qps, desc=anchor.name, unit="qp", leave=False):
        run = encode(anchor, frames, qp, fps)
        points.append(point(qp, run.frame_bits, run.psnr, frames, fps, run.seconds))
        points[-1]["encoder_version"] = run.version
    return points


def measure_clip(name: str, frames_limit: int | None, weights: Weights | None, qps: Sequence[int],
                 anchors: Sequence[str], data: Path, cache: Path | None, params: CodingParams) -> dict:  # fmt: skip
    clip = CLIPS[name]
    frames, fps = clip.read(data, frames_limit)
    result = {
        "clip": name,
        "width": frames[0].width,
        "height": frames[0].height,
        "fps": str(fps),
        "frames": len(frames),
        "anchors": {a: run_anchor(a, frames, fps, cache) for a in anchors},
        "nvcodec": run_nvcodec(weights, frames, fps, qps, params) if weights else [],
    }
    result["settings"] = {a: {"qps": list(ANCHORS[a].qps), "command": ANCHORS[a].command_line(ANCHORS[a].qps[0])}
                          for a in anchors}  # fmt: skip
    result["nvcodec_settings"] = {
        "qps": list(qps),
        **{name: getattr(params, name).value for name in TOOL_MODES},
    }
    if weights:
        info = VideoInfo(frames[0].width, frames[0].height, fps, len(frames))
        result["nvcodec_settings"]["bitstream"] = stream_version(weights, params, qps, info)
    return result


def environment(weights: Weights) -> dict:
    return {
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
        "weights": {"path": weights.path, "sha256": weights.sha256.hex(), "config": weights.config.name},
        "versions": library_versions(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", default=",".join(CLIPS))
    parser.add_argument("--frames", type=int, help="frames per clip (default: each clip's own count)")
    parser.add_argument("--qps", default=",".join(map(str, NVCODEC_QPS)))
    parser.add_argument("--anchors", default=",".join(ANCHORS))
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--anchor-cache",
        type=Path,
        default=RESULTS / "anchors",
        help="reuse anchor points measured on the same frames (none: always encode)",
    )
    parser.add_argument("--anchors-only", action="store_true", help="measure (and cache) only the anchors")
    for name, modes in TOOL_MODES.items():
        parser.add_argument(
            "--" + name.replace("_", "-"), choices=modes, default="auto", help="as nvenc's option"
        )
    args = parser.parse_args(argv)
    weights = None if args.anchors_only else load_weights(args.weights or default_weights_path())
    cache = None if str(args.anchor_cache) == "none" else args.anchor_cache
    qps = [int(q) for q in args.qps.split(",")]
    anchors = [a for a in args.anchors.split(",") if a]
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.clips.split(","):
        params = CodingParams(**{name: ToolMode(getattr(args, name)) for name in TOOL_MODES})
        result = measure_clip(name, args.frames, weights, qps, anchors, args.data, cache, params)
        if weights is None:
            print(f"{name}: anchors {', '.join(anchors)} measured", flush=True)
            continue
        result["environment"] = environment(weights)
        path = args.out / f"rd_{name}.json"
        write_file(path, json.dumps(result, indent=1))
        best = max(result["nvcodec"], key=lambda p: p["psnr_yuv"])
        print(f"{name}: {len(result['nvcodec'])} nvcodec points (best {best['psnr_yuv']:.2f} dB at "
              f"{best['kbps']:.0f} kbit/s), anchors {', '.join(anchors)} -> {path}", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
