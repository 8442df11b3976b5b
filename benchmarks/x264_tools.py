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
import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from tqdm import tqdm

from benchmarks.anchors import X264, Anchor
from benchmarks.clips import CLIPS
from benchmarks.rd import measure_anchor
from nvcodec.bdrate import between_points
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


def without(tool: str) -> Anchor:
    """The x264 anchor with one tool turned off."""
    params = X264.options["x264-params"] + ":" + TOOLS[tool][0]
    return replace(X264, name=f"x264-no-{tool}", options={**X264.options, "x264-params": params})


def tool_costs(frames: Sequence[Frame], fps, tools: Sequence[str] = tuple(TOOLS)) -> dict[str, float | None]:
    """BD-rate (%, PSNR-YUV) of x264 without each tool against x264 with all of them, at the
    anchor's qps (None where the curves do not overlap)."""
    base = measure_anchor(X264, frames, fps)
    return {
        tool: between_points(base, measure_anchor(without(tool), frames, fps))
        for tool in tqdm(tools, desc="x264 tools", unit="tool")
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", default="cockatoo", choices=sorted(CLIPS))
    parser.add_argument("--frames", type=int, default=32, help="frames from the start (1: intra only)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    frames, fps = CLIPS[args.clip].read(frames=args.frames)
    costs = tool_costs(frames, fps)
    print(
        f"x264 veryslow on {args.clip}, {len(frames)} frames, QPs {X264.qps[0]}-{X264.qps[-1]}: BD-rate without each tool"
    )
    print("| tool off | BD-rate | what it is |\n| --- | ---: | --- |")
    for tool, cost in sorted(costs.items(), key=lambda kv: math.inf if kv[1] is None else -kv[1]):
        shown = "n/a" if cost is None else f"{cost:+.1f}%"
        print(f"| {tool} | {shown} | {TOOLS[tool][1]} |")
    if args.json:
        record = {"clip": args.clip, "frames": len(frames), "qps": list(X264.qps), "bd_rate": costs}
        write_file(args.json, json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
