"""Short evaluations with the real codec: real bitstream sizes and PSNR of the decoded pictures."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch

from nvcodec.codec.schedule import CodingParams
from nvcodec.evaluation import code_sequence
from nvcodec.frame import Frame
from nvcodec.models.nvc import NvcModel
from nvcodec.weights import Weights


def frozen_copy(model: NvcModel) -> Weights:
    """A CPU copy of a model in training, with its integer parts exported, ready to code."""
    clone = copy.deepcopy(model).to("cpu").eval()
    clone.export()
    return Weights(clone, bytes(32), "<model in training>")


@torch.no_grad()
def rd_points(model: NvcModel, frames: Sequence[Frame], qps: Sequence[int]) -> list[dict]:
    """One rate-distortion point per qp over the frames (intra period -1)."""
    weights = frozen_copy(model)
    points = []
    for qp in qps:
        s = code_sequence(weights, frames, CodingParams(qp=qp))
        points.append({"qp": qp, "bpp": s.bpp, "psnr_y": s.mean_psnr("y"), "psnr_yuv": s.mean_psnr("yuv"),
                       "frame_bytes": [f.bytes for f in s.frames]})  # fmt: skip
    return points
