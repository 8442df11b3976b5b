"""What each of x264's tools is worth on a clip: the BD-rate of the x264 anchor (veryslow, tune
psnr, constant QP, low delay) with one tool turned off, against the anchor itself. It maps where
a codec can lose to x264: a tool that is worth 40% on a clip is a place to look when nvcodec
loses there.

    python -m benchmarks.x264_tools [--clip cockatoo] [--frames 32] [--json PATH]

With --frames 1 the clip's first frame alone is coded: x264's intra tools.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from tqdm import tqdm

from benchmarks.anchors import X264, Anchor, encode
from benchmarks.clips import CLIPS, DATA
from nvcodec.bdrate import bd_rate
from nvcodec.frame import Frame
from nvcodec.outputs import write_file

# The tools, each with the x264 parameter that turns it off.
TOOLS = {
    "cabac": ("cabac=0", "context-adaptive arithmetic coding (CAVLC instead)"),
    "deblock": ("no-deblock=1", "the in-loop deblocking filter"),
    "8x8dct": ("8x8dct=0", "the 8x8 transform and 8x8 intra prediction (4x4 only)"),
    "subme": ("subme=5", "rate-distortion mode decisions and refinement (subme 10 -> 5)"),
    "partitions": ("partitions=none", "motion partitions smaller than 16x16"),
    "refs": ("ref=1", "16 reference frames (one instead)"),
    "me": ("me=dia", "the uneven multi-hexagon motion search (a diamond instead)"),
    "trellis": ("trellis=0", "trellis quantisation"),
    "weightp": ("weightp=0", "weighted prediction"),
}
QPS = (22, 27, 32, 37, 42)  # the bench's BD-rate range


def without(tool: str) -> Anchor:
    """The x264 anchor with one tool turned off."""
    params = X264.options["x264-params"] + ":" + TOOLS[tool][0]
    return replace(X264, name=f"x264-no-{tool}", options={**X264.options, "x264-params": params})


def curve(anchor: Anchor, frames: Sequence[Frame], fps) -> list[tuple[float, float]]:
    """(bits per pixel, mean PSNR-YUV) at each of QPS."""
    pixels = frames[0].width * frames[0].height * len(frames)
    points = []
    for qp in QPS:
        run = encode(anchor, frames, qp, fps)
        points.append((run.bits / pixels, sum(p["yuv"] for p in run.psnr) / len(run.psnr)))
    return points


def tool_costs(frames: Sequence[Frame], fps, tools: Sequence[str] = tuple(TOOLS)) -> dict[str, float]:
    """BD-rate (%, PSNR-YUV) of x264 without each tool against x264 with all of them."""
    base = curve(X264, frames, fps)
    costs = {}
    for tool in tqdm(tools, desc="x264 tools", unit="tool"):
        test = curve(without(tool), frames, fps)
        costs[tool] = bd_rate(
            [r for r, _ in base], [p for _, p in base], [r for r, _ in test], [p for _, p in test]
        )
    return costs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", default="cockatoo", choices=sorted(CLIPS))
    parser.add_argument("--frames", type=int, default=32, help="frames from the start (1: intra only)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    frames, fps = CLIPS[args.clip].read(DATA, args.frames)
    costs = tool_costs(frames, fps)
    print(
        f"x264 veryslow on {args.clip}, {len(frames)} frames, QPs {QPS[0]}-{QPS[-1]}: BD-rate without each tool"
    )
    print("| tool off | BD-rate | what it is |\n| --- | ---: | --- |")
    for tool, cost in sorted(costs.items(), key=lambda kv: -kv[1]):
        print(f"| {tool} | {cost:+.1f}% | {TOOLS[tool][1]} |")
    if args.json:
        record = {"clip": args.clip, "frames": len(frames), "qps": list(QPS), "bd_rate": costs}
        write_file(args.json, json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
