"""Named model configurations (frozen): `tiny` for the tests, `base` for the released weights."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from nvcodec.errors import WeightsError


@dataclass(frozen=True)
class ModelConfig:
    """Every size of the model. Channel tuples run from 1/2 to 1/16 of the frame size."""

    name: str
    widths: tuple[int, int, int, int]  # analysis/synthesis widths at 1/2, 1/4, 1/8, 1/16
    latent_ch: int  # channels of the frame latent y (1/16)
    hyper_ch: int  # channels of the hyperprior z (1/64)
    prior_ch: int  # channels of the float entropy parameters at 1/16
    motion_widths: tuple[int, int, int, int]
    motion_latent_ch: int
    motion_hyper_ch: int
    feature_ch: int  # the propagated feature F_t at 1/2
    context_ch: tuple[int, int, int]  # temporal contexts C1 (1/2), C2 (1/4), C3 (1/8)
    blocks: int  # depthwise blocks per scale in the frame transforms
    spatial_steps: int  # 2 (checkerboard) or 4 (quadtree)
    index_ch: int  # width of the integer scale-index network
    me_levels: int  # SpyNet pyramid levels
    me_widths: tuple[
        int, ...
    ]  # SpyNet channels through its five 7x7 convolutions (pretrained: 8,32,64,32,16,2)
    me_scale: int  # motion estimated on frames of 1/me_scale the size (2 or 4)
    confre_blocks: int  # residual blocks in the contextual filter and the enhancement
    confre_ch: int
    lambda_min: float  # lambda at qp 63 (fewest bits)
    lambda_max: float  # lambda at qp 0 (finest)

    def to_dict(self) -> dict:
        return asdict(self)


TINY = ModelConfig(
    name="tiny",
    widths=(8, 8, 8, 8),
    latent_ch=8,
    hyper_ch=4,
    prior_ch=8,
    motion_widths=(4, 4, 4, 4),
    motion_latent_ch=4,
    motion_hyper_ch=4,
    feature_ch=8,
    context_ch=(8, 8, 8),
    blocks=1,
    spatial_steps=2,
    index_ch=4,
    me_levels=2,
    me_widths=(8, 4, 4, 4, 4, 2),
    me_scale=4,
    confre_blocks=1,
    confre_ch=4,
    lambda_min=8.0,
    lambda_max=1024.0,
)

BASE = ModelConfig(
    name="base",
    widths=(48, 80, 112, 160),
    latent_ch=128,
    hyper_ch=64,
    prior_ch=96,
    motion_widths=(32, 48, 64, 96),
    motion_latent_ch=64,
    motion_hyper_ch=32,
    feature_ch=48,
    context_ch=(48, 64, 96),
    blocks=1,
    spatial_steps=4,
    index_ch=48,
    me_levels=4,
    me_widths=(8, 32, 64, 32, 16, 2),
    me_scale=4,
    confre_blocks=8,
    confre_ch=32,
    lambda_min=8.0,
    lambda_max=2048.0,
)

CONFIGS = {c.name: c for c in (TINY, BASE)}


def get_config(name: str) -> ModelConfig:
    try:
        return CONFIGS[name]
    except KeyError:
        raise WeightsError(f"unknown model configuration {name!r} (known: {', '.join(CONFIGS)})") from None
