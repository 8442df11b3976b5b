"""The development benchmark set (../shared/data): which frames of which clips, read as Frames."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from nvcodec.frame import Frame
from nvcodec.io import open_reader

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@dataclass(frozen=True)
class Clip:
    name: str
    path: str  # relative to the data folder
    frames: int
    size: tuple[int, int] | None = None  # raw .yuv only
    fps: Fraction | None = None

    def read(self, data: Path = DATA, frames: int | None = None) -> tuple[list[Frame], Fraction]:
        """The first `frames` (default: the clip's count) frames and the frame rate."""
        with open_reader(str(data / self.path), self.size, self.fps) as reader:
            return list(reader.frames(0, frames or self.frames)), reader.info.fps


CLIPS = {
    c.name: c
    for c in (
        Clip("foreman", "video/foreman_352x288_25fps.h264", 96),
        Clip("cockatoo", "video/cockatoo_1280x720_yuv420.mp4", 96),
        Clip("cactus", "video/cactus_1280x720_25fps.h264", 96),
        Clip("people", "video/people_320x192_12fps_i420.yuv", 9, (320, 192), Fraction(12)),
    )
}


# Rate control's clips (issue 12): Foreman and two clips outside the RD set, 96 frames each.
RATE_CLIPS = {
    c.name: c
    for c in (
        CLIPS["foreman"],
        Clip("car_traffic", "video/car_traffic_640x360.mp4", 96),
        Clip("vtest", "video/vtest_480x360.avi", 96),
    )
}


def kodak_images(data: Path = DATA, count: int | None = None) -> list[tuple[str, Frame]]:
    """The first `count` (default: all 24) Kodak images as 4:2:0 frames (BT.709), for the intra
    comparison."""
    images = []
    for path in sorted((data / "images" / "kodak").glob("*.png"))[:count]:
        with open_reader(str(path)) as reader:
            images.append((path.stem, next(reader.frames())))
    return images
