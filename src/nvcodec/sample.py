"""Synthetic test videos: textured content under a smooth camera pan with a moving object.

Used by the tests and by `make demo`, so that nothing depends on third-party media.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from nvcodec.frame import Frame, chroma_size


def _texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A smooth random texture in [0, 1] (sum of a few low-frequency cosines plus fine noise)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    img = np.zeros((height, width))
    for _ in range(6):
        fx, fy = rng.uniform(0.005, 0.06, size=2)
        phase = rng.uniform(0, 2 * np.pi)
        img += rng.uniform(0.3, 1.0) * np.cos(2 * np.pi * (fx * xx + fy * yy) + phase)
    img = (img - img.min()) / max(np.ptp(img), 1e-9)
    return 0.85 * img + 0.15 * rng.random((height, width))


def synthetic_frames(
    width: int, height: int, count: int, seed: int = 0, speed: float = 1.5
) -> Iterator[Frame]:
    """Frames of a textured scene panned by `speed` pixels per frame, with a bright square moving."""
    rng = np.random.default_rng(seed)
    margin = int(abs(speed) * count) + 8
    scene = [_texture(rng, height + margin, width + margin) for _ in range(3)]
    cw, ch = chroma_size(width, height)
    for t in range(count):
        off = int(round(speed * t))
        y = scene[0][off : off + height, off // 2 : off // 2 + width] * 219 + 16
        side = max(2, min(width, height) // 5)
        px = int((width - side) * (0.5 + 0.4 * np.sin(0.3 * t)))
        py = int((height - side) * (0.5 + 0.4 * np.cos(0.2 * t)))
        y[py : py + side, px : px + side] = 230
        u = scene[1][off : off + 2 * ch : 2, : 2 * cw : 2] * 120 + 68
        v = scene[2][: 2 * ch : 2, off : off + 2 * cw : 2] * 120 + 68
        yield Frame(*(np.clip(np.rint(p), 0, 255).astype(np.uint8) for p in (y, u, v)))


def main(argv: list[str] | None = None) -> int:
    """`python -m nvcodec.sample OUT.y4m [--size WxH] [--frames N]`: write a synthetic clip."""
    import argparse
    from fractions import Fraction

    from nvcodec.frame import VideoInfo
    from nvcodec.io import open_writer

    parser = argparse.ArgumentParser(prog="python -m nvcodec.sample", description=main.__doc__)
    parser.add_argument("output")
    parser.add_argument("--size", default="352x288")
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    info = VideoInfo(width, height, Fraction(25), args.frames)
    with open_writer(args.output, info, force=True) as writer:
        for frame in synthetic_frames(width, height, args.frames, seed=args.seed):
            writer.write(frame)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
