"""Still images: nvcodec's intra coder against JPEG, WebP and AV1 intra (the coding AVIF uses),
all through PyAV, in YUV 4:2:0 on the Kodak set (rates from the coded bytes).

    python -m benchmarks.intra [--images N] [--weights PATH] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from tqdm import tqdm

from benchmarks.anchors import round_trip
from benchmarks.clips import DATA, kodak_images
from benchmarks.environment import library_versions
from benchmarks.rd import environment
from nvcodec.codec.schedule import CodingParams
from nvcodec.evaluation import code_sequence
from nvcodec.frame import Frame
from nvcodec.metrics import frame_psnr
from nvcodec.outputs import write_file
from nvcodec.weights import Weights, default_weights_path, load_weights

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class StillCodec:
    name: str
    encoder: str
    decoder: str
    setting: str  # the option swept
    values: tuple[int, ...]
    fixed: dict[str, str]

    def options(self, value: int) -> dict[str, str]:
        opts = dict(self.fixed)
        for key in self.setting.split("+"):
            opts[key] = str(value)
        return opts


STILL_CODECS = (
    StillCodec("jpeg", "mjpeg", "mjpeg", "qmin+qmax", (2, 3, 5, 8, 12, 20), {"strict": "-1"}),
    StillCodec("webp", "libwebp", "webp", "quality", (10, 30, 50, 70, 85, 95), {}),
    StillCodec("av1-intra", "libsvtav1", "libdav1d", "qp", (20, 28, 36, 44, 52, 60), {"preset": "6"}),
)


def code_still(codec: StillCodec, frame: Frame, value: int) -> tuple[int, float]:
    """(bits, PSNR-YUV) of one image coded by one of the classic codecs."""
    packets, decoded = round_trip(codec.encoder, codec.decoder, codec.options(value), [frame], Fraction(25))
    return 8 * sum(map(len, packets)), frame_psnr(frame, decoded[0]).yuv


def curve(points: Sequence[tuple[int, float]], images: Sequence[Frame], setting: int) -> dict:
    """Mean bpp and mean PSNR-YUV over the images at one setting."""
    bpp = [bits / (f.width * f.height) for (bits, _), f in zip(points, images)]
    return {
        "setting": setting,
        "bpp": sum(bpp) / len(bpp),
        "psnr_yuv": sum(p for _, p in points) / len(points),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, help="use only the first N images")
    parser.add_argument("--qps", default="0,12,17,22,27,32,37,42,63")
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    weights: Weights = load_weights(args.weights or default_weights_path())
    named = kodak_images(args.data, args.images)
    images = [f for _, f in named]
    result = {"images": [n for n, _ in named], "codecs": {}, "versions": library_versions()}
    result["environment"] = environment(weights)
    nv = []
    for qp in tqdm([int(q) for q in args.qps.split(",")], desc="nvcodec", unit="qp"):
        coded = [code_sequence(weights, [f], CodingParams(qp=qp)) for f in images]
        nv.append(curve([(8 * s.total_bytes, s.frames[0].psnr.yuv) for s in coded], images, qp))
    result["codecs"]["nvcodec"] = nv
    for codec in STILL_CODECS:
        rows = []
        for value in tqdm(codec.values, desc=codec.name, unit="setting"):
            rows.append(curve([code_still(codec, f, value) for f in images], images, value))
        result["codecs"][codec.name] = rows
        result.setdefault("settings", {})[codec.name] = {"sweep": codec.setting, "fixed": codec.fixed}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "kodak.json"
    write_file(path, json.dumps(result, indent=1))
    print(f"kodak: {len(images)} images -> {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
