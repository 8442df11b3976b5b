"""The training pack in memory."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from nvcodec.errors import InputError
from nvcodec.frame import Frame


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
        }

    def eval_frames(self) -> list[Frame]:
        """The evaluation frames (never trained on), as 8-bit frames of their true size."""
        if self._eval is None:
            return []
        info = self.manifest["eval"]
        return [Frame.from_bytes(row.tobytes(), info["width"], info["height"]) for row in self._eval]
