"""Release candidate weights as `weights/<config>.safetensors` with their manifest.

    python -m nvcodec.train.release --weights runs/fit.safetensors [--out weights/base.safetensors]
                                    [--rd-dir benchmarks/results] [--force]

The candidate's history (what fitted or trained it) is read from `<candidate>.json` when present.
Without --rd-dir only the weights file is copied (to measure it). With --rd-dir the manifest
records the RD points measured with exactly these weights (the results' SHA-256 must match:
benchmarks.rd's rd_*.json, and benchmarks.intra's kodak.json) and their BD-rates; a release whose
RD is worse than the released weights' is refused unless --force, so the weights in the
repository are never a regression. The released weights' RD is the current manifest's, or with
--against the results of the released weights measured the same way (make bench-quick for both,
say); only curves of the same clip on the same number of frames are compared.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

from nvcodec.bdrate import bd_psnr, bd_rate, between_points
from nvcodec.errors import NvcError, WeightsError
from nvcodec.models.nvc import NvcModel
from nvcodec.outputs import write_file
from nvcodec.weights import REPO_WEIGHTS, load_weights

MANIFEST = "manifest.json"


def candidate(path: Path) -> tuple[bytes, dict, NvcModel]:
    """The candidate's bytes, its history and its model (checked as a decoder would load it)."""
    model = load_weights(path).model
    history = path.with_suffix(".json")
    return path.read_bytes(), json.loads(history.read_text()) if history.is_file() else {}, model


def measured_with(path: Path, sha256: str) -> dict:
    """A benchmark result, refused unless it was measured with the weights of this SHA-256."""
    result = json.loads(path.read_text())
    if result.get("environment", {}).get("weights", {}).get("sha256") != sha256:
        raise WeightsError(f"{path} was measured with other weights; rerun the benchmark with these")
    return result


def rd_summary(rd_dir: Path, sha256: str) -> dict[str, dict]:
    """Per clip: the nvcodec points and BD-rates against each anchor, from results of these
    weights; "kodak" for the still images (their count as its frames) when there is kodak.json."""
    clips = {}
    for path in sorted(rd_dir.glob("rd_*.json")):
        result = measured_with(path, sha256)
        points = [{k: p[k] for k in ("qp", "kbps", "bpp", "psnr_y", "psnr_yuv")} for p in result["nvcodec"]]
        clips[result["clip"]] = {
            "frames": result["frames"],
            "points": points,
            "bd_rate_percent": _against_anchors(result["nvcodec"], result["anchors"], bd_rate),
            "bd_psnr_db": _against_anchors(result["nvcodec"], result["anchors"], bd_psnr),
        }
    if (rd_dir / "kodak.json").is_file():
        kodak = measured_with(rd_dir / "kodak.json", sha256)
        anchors = dict(kodak["codecs"])
        ours = anchors.pop("nvcodec")
        clips["kodak"] = {
            "frames": len(kodak["images"]),
            "points": ours,
            "bd_rate_percent": _against_anchors(ours, anchors, bd_rate, rate="bpp"),
        }
    return clips


def _against_anchors(
    ours: list[dict], anchors: dict[str, list[dict]], measure, rate: str = "bits"
) -> dict[str, float | None]:
    """`measure` (BD-rate or BD-PSNR on PSNR-YUV) of nvcodec's points against each anchor's; None
    without overlap."""
    return {anchor: between_points(pts, ours, measure, rate=rate) for anchor, pts in anchors.items()}


def regression(old: dict, new: dict) -> float | None:
    """Mean BD-rate (%) of the new nvcodec curves against the old ones, over the clips both
    measured on the same number of frames (None when there are none)."""
    same = [c for c in set(old) & set(new) if old[c]["frames"] == new[c]["frames"]]
    values = [between_points(old[c]["points"], new[c]["points"], rate="bpp") for c in same]
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def manifest(sha256: str, history: dict, model: NvcModel, rd: dict, out: Path) -> dict:
    """What the release holds: its identity, the model, how it was made, what it measured."""
    return {
        "file": out.name,
        "sha256": sha256,
        "config": model.config.to_dict(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "history": history,
        "rd": rd,
        "released": time.strftime("%Y-%m-%d"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nvcodec.train.release", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--weights", type=Path, required=True, help="the candidate weights file")
    parser.add_argument("--out", type=Path, default=REPO_WEIGHTS)
    parser.add_argument("--rd-dir", type=Path, help="benchmark results measured with these weights")
    parser.add_argument(
        "--against", type=Path, help="results of the released weights measured as --rd-dir's were"
    )
    parser.add_argument("--force", action="store_true", help="release even if the RD is worse")
    args = parser.parse_args(argv)
    try:
        data, history, model = candidate(args.weights)
        sha = hashlib.sha256(data).hexdigest()
        if args.rd_dir is None:
            write_file(args.out, data)
            print(f"{args.out}: {sha} (measure it, then release with --rd-dir)")
            return 0
        rd = rd_summary(args.rd_dir, sha)
        previous = args.out.parent / MANIFEST
        released = json.loads(previous.read_text()) if previous.is_file() else {}
        if args.against is not None:
            released["rd"] = rd_summary(args.against, released.get("sha256", ""))
        change = regression(released.get("rd", {}), rd)
        if released and change is None and not args.force:
            raise WeightsError("nothing measured as the released weights were: pass --against (or --force)")
        if change is not None and change > 0 and not args.force:
            raise WeightsError(f"RD is {change:+.1f}% BD-rate worse than the released weights (use --force)")
        if change is not None:
            print(f"BD-rate against the released weights: {change:+.2f}%")
        write_file(args.out, data)
        write_file(previous, json.dumps(manifest(sha, history, model, rd, args.out), indent=1) + "\n")
    except NvcError as err:
        print(f"release: error: {err}", file=sys.stderr)
        return err.exit_code
    print(f"{args.out}: {sha}; manifest {previous}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
