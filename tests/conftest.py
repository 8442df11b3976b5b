"""Shared, generic fixtures for the test suite.

Session-scoped and cheap; anything specific to one test module belongs in that module.

- `tiny_weights`: path (str) to a weights file of the `tiny` configuration, random-initialised
  from seed 0, written once per session. Pass it as `--weights` to the tools or to
  `nvcodec.weights.load_weights`. Treat the file as read-only.
- `make_video(path, width=96, height=64, frames=6, *, fps=25, seed=0, force=False)`: write
  synthetic frames (`nvcodec.sample.synthetic_frames`) to `path` with `nvcodec.io.open_writer`
  (the format follows the name: .y4m, .yuv, .mkv, .mp4, a %d.png pattern) and return the list
  of frames written. The same arguments always give the same frames.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import pytest

from nvcodec.frame import Frame, VideoInfo
from nvcodec.io import open_writer
from nvcodec.models.config import TINY
from nvcodec.sample import synthetic_frames
from nvcodec.weights import random_model, save_weights

TINY_WEIGHTS_SEED = 0

MakeVideo = Callable[..., list[Frame]]


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A random-initialised `tiny` weights file (seed 0), made once per session."""
    path = tmp_path_factory.mktemp("weights") / "tiny-seed0.safetensors"
    save_weights(random_model(TINY, TINY_WEIGHTS_SEED), path)
    return str(path)


def _make_video(
    path: str | Path,
    width: int = 96,
    height: int = 64,
    frames: int = 6,
    *,
    fps: Fraction | int = 25,
    seed: int = 0,
    force: bool = False,
) -> list[Frame]:
    pictures = list(synthetic_frames(width, height, frames, seed=seed))
    info = VideoInfo(width, height, Fraction(fps), frames)
    with open_writer(str(path), info, force=force) as writer:
        for picture in pictures:
            writer.write(picture)
    return pictures


@pytest.fixture(scope="session")
def make_video() -> MakeVideo:
    """Factory: write a synthetic video to a path (any format open_writer knows); returns its frames."""
    return _make_video
