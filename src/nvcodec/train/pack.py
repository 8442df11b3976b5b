"""The training pack: photos, crops and short clips in the packed uint8 layout, one .npz file.

    python -m nvcodec.train.pack [--data ../shared/data] [--out packs/train.npz] [--budget-mib 40]

The development benchmark frames (the first 96 of Foreman, Cockatoo and Cactus, the people clip,
Kodak) never enter the training arrays; eight Foreman frames are stored apart, as I420, for the
short evaluations at the end of each training chunk.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from nvcodec.errors import InputError, NvcError
from nvcodec.io import open_reader
from nvcodec.outputs import AtomicOutput
from nvcodec.train.packed import half_size, pack_frame

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[3]
DEFAULT_DATA = REPO.parent / "shared" / "data"
DEFAULT_PACK = REPO / "packs" / "train.npz"
BENCHMARK_FRAMES = 96  # frames 0..95 of the benchmark clips are for evaluation only


@dataclass(frozen=True)
class ClipSource:
    """Windows of consecutive frames from one video, optionally cropped (full-size pixels)."""

    path: str
    start: int = 0
    windows: int = 2
    length: int = 8
    crop: tuple[int, int] | None = None  # (width, height)
    size: tuple[int, int] | None = None  # for raw .yuv


@dataclass(frozen=True)
class PackSources:
    photos: list[str] = field(default_factory=list)  # kept whole (halved when wider than 900)
    crops: list[str] = field(default_factory=list)  # one centred 256x256 crop each
    clips: list[ClipSource] = field(default_factory=list)
    eval_clip: ClipSource | None = None  # stored as I420 for evaluation, never trained on


def default_sources(data: Path) -> PackSources:
    """The selection from ../shared/data (see its README) that fits in ~40 MiB."""
    images, video = data / "images", data / "video"
    if not images.is_dir() or not video.is_dir():
        raise InputError(f"{data}: not the shared data folder (no images/ or video/)")
    crop = (384, 256)
    clips = [
        ClipSource(str(video / "foreman_352x288_25fps.h264"), start=BENCHMARK_FRAMES, windows=3),
        ClipSource(str(video / "cockatoo_1280x720_yuv420.mp4"), start=BENCHMARK_FRAMES, windows=3, crop=crop),
        ClipSource(str(video / "cactus_1280x720_25fps.h264"), start=BENCHMARK_FRAMES, windows=3, crop=crop),
        ClipSource(str(video / "street_1920x1080_25fps.h264"), windows=3, crop=crop),
        ClipSource(str(video / "vtest_480x360.avi"), windows=3, crop=crop),
        ClipSource(str(video / "car_traffic_640x360.mp4"), windows=3, crop=crop),
    ]
    clips += [
        ClipSource(str(d / "im%d.png"), windows=1, length=7)
        for d in sorted(video.glob("vimeo_septuplet/*/*"))
    ]
    return PackSources(
        photos=[str(p) for p in sorted((images / "wiki").glob("*.png"))[:40]],
        crops=[str(p) for p in sorted((images / "bsds200").glob("*.png"))[:100]],
        clips=clips,
        eval_clip=ClipSource(str(video / "foreman_352x288_25fps.h264"), windows=1, length=8),
    )


def _first_frame(path: str):
    with open_reader(path) as reader:
        return next(reader.frames())


def _crop(packed: np.ndarray, crop: tuple[int, int] | None, rng: np.random.Generator) -> np.ndarray:
    """A crop at even full-size coordinates (any position of the packed grid)."""
    if crop is None:
        return packed
    cw, ch = crop[0] // 2, crop[1] // 2
    h, w = packed.shape[-2:]
    if ch > h or cw > w:
        return packed
    top, left = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    return packed[..., top : top + ch, left : left + cw]


def _window_starts(total: int | None, source: ClipSource) -> list[int]:
    """Window starts spread evenly over the usable frames."""
    usable_end = (total or source.start + source.windows * source.length) - source.length
    if usable_end < source.start:
        return [source.start]
    step = max(1, (usable_end - source.start) // max(1, source.windows))
    return [source.start + i * step for i in range(source.windows)]


def _clip_windows(source: ClipSource, rng: np.random.Generator) -> list[np.ndarray]:
    windows = []
    with open_reader(source.path, source.size) as reader:
        starts = _window_starts(reader.info.frame_count, source)
    for start in starts:
        with open_reader(source.path, source.size) as reader:
            frames = [pack_frame(f) for f in reader.frames(start, source.length)]
        if len(frames) == source.length:
            windows.append(_crop(np.stack(frames), source.crop, np.random.default_rng(rng.integers(1 << 31))))
    return windows


def _eval_frames(source: ClipSource) -> tuple[np.ndarray, dict]:
    with open_reader(source.path, source.size) as reader:
        frames = list(reader.frames(source.start, source.length))
    info = {"name": Path(source.path).name, "width": frames[0].width, "height": frames[0].height}
    return np.stack([np.frombuffer(f.tobytes(), np.uint8) for f in frames]), info


def collect(sources: PackSources, seed: int = 0, quiet: bool = False) -> tuple[dict[str, np.ndarray], dict]:
    """Read every source into named arrays, and a manifest of what went in."""
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    items = [("photo", p) for p in sources.photos] + [("crop", p) for p in sources.crops]
    items += [("clip", c) for c in sources.clips]
    for kind, item in tqdm(items, desc="pack", unit="source", disable=quiet):
        if kind == "clip":
            for window in _clip_windows(item, rng):
                arrays[f"clip_{len(arrays):04d}"] = window
            continue
        packed = pack_frame(_first_frame(item))
        if kind == "photo":
            while packed.shape[-1] > 450:  # half-size width 450 = 900 pixels
                packed = half_size(packed)
        else:
            packed = _crop(packed, (256, 256), rng)
        arrays[f"{kind}_{len(arrays):04d}"] = packed
    manifest = {"sources": asdict(sources), "seed": seed, "counts": {}}
    for prefix in ("photo", "crop", "clip"):
        manifest["counts"][prefix] = sum(k.startswith(prefix) for k in arrays)
    if sources.eval_clip is not None:
        arrays["eval_frames"], manifest["eval"] = _eval_frames(sources.eval_clip)
    return arrays, manifest


def write_pack(arrays: dict[str, np.ndarray], manifest: dict, out: Path, budget_mib: float) -> int:
    """Write the compressed pack atomically; refuses to exceed the budget. Returns its size."""
    buf = io.BytesIO()
    np.savez_compressed(buf, manifest=np.frombuffer(json.dumps(manifest).encode(), np.uint8), **arrays)
    size = buf.tell()
    if size > budget_mib * 2**20:
        raise InputError(f"pack would be {size / 2**20:.1f} MiB, over the budget of {budget_mib} MiB")
    out.parent.mkdir(parents=True, exist_ok=True)
    with AtomicOutput(out, force=True) as f:
        f.file.write(buf.getvalue())
    return size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nvcodec.train.pack", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=DEFAULT_PACK)
    parser.add_argument("--budget-mib", type=float, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="pack: %(message)s")
    logging.getLogger("nvcodec.io").setLevel(logging.ERROR)  # every PNG is RGB: no notice each
    try:
        arrays, manifest = collect(default_sources(args.data), args.seed)
        size = write_pack(arrays, manifest, args.out, args.budget_mib)
    except NvcError as err:
        print(f"pack: error: {err}", file=sys.stderr)
        return err.exit_code
    counts = manifest["counts"]
    print(
        f"{args.out}: {size / 2**20:.1f} MiB, {counts['photo']} photos, {counts['crop']} crops, {counts['clip']} clips"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
