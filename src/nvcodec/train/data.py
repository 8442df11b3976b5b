"""The training pack in memory, and the sampler that draws batches of crops and sequences."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from nvcodec.errors import InputError
from nvcodec.frame import Frame
from nvcodec.train.packed import hflip
from nvcodec.train.synthetic import camera_sequence


class Pack:
    """Arrays of a pack built by nvcodec.train.pack (uint8, packed layout)."""

    def __init__(self, path: str | Path) -> None:
        if not Path(path).is_file():
            raise InputError(f"{path}: no training pack (build one with python -m nvcodec.train.pack)")
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files}
        self.manifest = json.loads(arrays.pop("manifest").tobytes())
        self.photos = [arrays[k] for k in sorted(arrays) if k.startswith("photo_")]
        self.crops = [arrays[k] for k in sorted(arrays) if k.startswith("crop_")]
        self.clips = [arrays[k] for k in sorted(arrays) if k.startswith("clip_")]
        self._eval = arrays.get("eval_frames")
        if not (self.photos or self.crops) or not self.clips:
            raise InputError(f"{path}: the pack needs images and clips")

    def summary(self) -> dict:
        """What the pack was built from (paths relative to the data folder), for manifests."""

        def short(path: str) -> str:
            return path.split("/data/", 1)[-1]

        sources = self.manifest.get("sources", {})
        clips = [
            f"{short(c['path'])} from frame {c['start']}, {c['windows']}x{c['length']}"
            for c in sources.get("clips", [])
        ]
        return {
            "counts": self.manifest.get("counts", {}),
            "photos": sorted({short(p).rsplit("/", 1)[0] for p in sources.get("photos", [])}),
            "crops": sorted({short(p).rsplit("/", 1)[0] for p in sources.get("crops", [])}),
            "clips": clips,
            "synthetic_motion": "camera trajectories over the photos (nvcodec.train.synthetic)",
        }

    def eval_frames(self) -> list[Frame]:
        """The evaluation frames (never trained on), as 8-bit frames of their true size."""
        if self._eval is None:
            return []
        info = self.manifest["eval"]
        return [Frame.from_bytes(row.tobytes(), info["width"], info["height"]) for row in self._eval]


def _random_crop(x: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray | None:
    h, w = x.shape[-2:]
    if h < size or w < size:
        return None
    top, left = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
    return x[..., top : top + size, left : left + size]


class Sampler:
    """Batches (B, T, 6, crop/2, crop/2) in [0, 1]: image crops for T = 1, else sequences from the
    real clips or synthetic camera motion, flipped and time-reversed at random."""

    def __init__(
        self, pack: Pack, frames: int, crop: int, batch: int, synthetic_share: float, seed: int
    ) -> None:
        self.pack, self.frames, self.size, self.batch = pack, frames, crop // 2, batch
        self.synthetic_share = synthetic_share
        self.rng = np.random.default_rng(seed)
        self.images = pack.photos + pack.crops

    def _image(self) -> torch.Tensor:
        while True:
            if self.rng.random() < 0.2:
                clip = self.pack.clips[self.rng.integers(len(self.pack.clips))]
                source = clip[self.rng.integers(len(clip))]
            else:
                source = self.images[self.rng.integers(len(self.images))]
            crop = _random_crop(source, self.size, self.rng)
            if crop is not None:
                return torch.from_numpy(np.ascontiguousarray(crop))[None].float() / 255

    def _real_sequence(self) -> torch.Tensor | None:
        clip = self.pack.clips[self.rng.integers(len(self.pack.clips))]
        if len(clip) < self.frames:
            return None
        start = self.rng.integers(0, len(clip) - self.frames + 1)
        crop = _random_crop(clip[start : start + self.frames], self.size, self.rng)
        return None if crop is None else torch.from_numpy(np.ascontiguousarray(crop)).float() / 255

    def _synthetic_sequence(self) -> torch.Tensor:
        photo = (
            self.pack.photos[self.rng.integers(len(self.pack.photos))] if self.pack.photos else self.images[0]
        )
        sprite = self.images[self.rng.integers(len(self.images))]
        photo_t = torch.from_numpy(photo).float() / 255
        return camera_sequence(
            photo_t, self.frames, 2 * self.size, self.rng, torch.from_numpy(sprite).float() / 255
        )

    def _sequence(self) -> torch.Tensor:
        seq = None
        if self.rng.random() >= self.synthetic_share:
            seq = self._real_sequence()
        seq = seq if seq is not None else self._synthetic_sequence()
        if self.rng.random() < 0.5:
            seq = seq.flip(0)  # time reversal
        return seq

    def sample(self) -> torch.Tensor:
        items = []
        for _ in range(self.batch):
            x = self._image() if self.frames == 1 else self._sequence()
            items.append(hflip(x) if self.rng.random() < 0.5 else x)
        return torch.stack(items)
