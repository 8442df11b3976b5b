"""Named model configurations (frozen): `tiny` for the tests, `base` for the released weights."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from nvcodec.errors import WeightsError


@dataclass(frozen=True)
class ModelConfig:
    """Every size of the model; the latent is always the 96 coefficients of an 8x8 block."""

    name: str
    blocks: int  # residual blocks on each side of the block transform
    block_width: int  # inner width of those blocks
    me_levels: int  # SpyNet pyramid levels
    me_widths: tuple[
        int, ...
    ]  # SpyNet channels through its five 7x7 convolutions (pretrained: 8,32,64,32,16,2)
    me_scale: int  # motion estimated on frames of 1/me_scale the size (2 or 4)
    confre_blocks: int  # residual blocks in the contextual filter and the enhancement
    confre_ch: int

    def to_dict(self) -> dict:
        return asdict(self)


TINY = ModelConfig(
    name="tiny",
    blocks=1,
    block_width=8,
    me_levels=2,
    me_widths=(8, 4, 4, 4, 4, 2),
    me_scale=4,
    confre_blocks=1,
    confre_ch=4,
)

BASE = ModelConfig(
    name="base",
    blocks=2,
    block_width=192,
    me_levels=4,
    me_widths=(8, 32, 64, 32, 16, 2),
    me_scale=4,
    confre_blocks=4,
    confre_ch=16,
)

CONFIGS = {c.name: c for c in (TINY, BASE)}


def get_config(name: str) -> ModelConfig:
    try:
        return CONFIGS[name]
    except KeyError:
        raise WeightsError(f"unknown model configuration {name!r} (known: {', '.join(CONFIGS)})") from None
