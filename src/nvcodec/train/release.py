"""Release candidate weights as `weights/<config>.safetensors` with their manifest.

    python -m nvcodec.train.release --weights runs/fit.safetensors [--out weights/base.safetensors]
                                    [--rd-dir benchmarks/results] [--force]

The candidate's history (what fitted or trained it) is read from `<candidate>.json` when present.
Without --rd-dir only the weights file is copied (to measure it). With --rd-dir the manifest
records the RD points measured with exactly these weights (the results' SHA-256 must match) and
their BD-rates; a release whose RD is worse than the current manifest's is refused unless --force,
so the weights in the repository are never a regression.
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


def rd_summary(rd_dir: Path, sha256: str) -> dict[str, dict]:
    """Per clip: the nvcodec points and BD-rates against each anchor, from results of these weights."""
    clips = {}
    for path in sorted(rd_dir.glob("rd_*.json")):
        result = json.loads(path.read_text())
        if result["environment"]["weights"]["sha256"] != sha256:
            raise WeightsError(f"{path} was measured with other weights; rerun the benchmark with these")
        points = [{k: p[k] for k in ("qp", "kbps", "bpp", "psnr_y", "psnr_yuv")} for p in result["nvcodec"]]
        clips[result["clip"]] = {
            "frames": result["frames"],
            "points": points,
            "bd_rate_percent": _against_anchors(result, bd_rate),
            "bd_psnr_db": _against_anchors(result, bd_psnr),
        }
    return clips


def _against_anchors(result: dict, measure) -> dict[str, float | None]:
    """`measure` (BD-rate or BD-PSNR on PSNR-YUV) of nvcodec against each anchor; None without overlap."""
    return {
        anchor: between_points(pts, result["nvcodec"], measure) for anchor, pts in result["anchors"].items()
    }


def regression(old: dict, new: dict) -> float | None:
    """Mean BD-rate (%) of the new nvcodec curves against the old ones over their common clips."""
    values = [between_points(old[c]["points"], new[c]["points"], rate="bpp") for c in set(old) & set(new)]
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
        if previous.is_file() and not args.force:
            change = regression(json.loads(previous.read_text()).get("rd", {}), rd)
            if change is not None and change > 0:
                raise WeightsError(
                    f"RD is {change:+.1f}% BD-rate worse than the released weights (use --force)"
                )
        write_file(args.out, data)
        write_file(previous, json.dumps(manifest(sha, history, model, rd, args.out), indent=1) + "\n")
    except NvcError as err:
        print(f"release: error: {err}", file=sys.stderr)
        return err.exit_code
    print(f"{args.out}: {sha}; manifest {previous}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
