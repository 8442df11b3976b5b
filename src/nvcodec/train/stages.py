"""The training stages (DESIGN.md, "Training"): what each one trains, on what, for how long."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from nvcodec.errors import InputError

INDEX_NETS = ("intra.latent.index_net", "inter.motion.latent.index_net", "inter.latent.index_net")


@dataclass(frozen=True)
class Stage:
    """One stage. `train` lists the parameter-name prefixes that learn; the rest is frozen."""

    name: str
    frames: int  # frames per sample: 1 = intra images, else an I frame then P frames
    crop: int  # full-size crop (pixels)
    batch: int
    lr: float
    steps: int  # planned length; the learning rate drops tenfold for the last fifth
    train: tuple[str, ...]
    use_filter: bool = False  # in-loop contextual filter on every P frame
    enhance: bool = False  # train the out-of-loop enhancement on every P frame
    synthetic_share: float = 0.5  # sequences from synthetic camera motion rather than real clips
    refresh_chance: float = 0.1  # P frames (after the first) whose contexts come from the refresh extractor

    def lr_at(self, step: int) -> float:
        return self.lr * (0.1 if step >= 0.8 * self.steps else 1.0)

    def with_overrides(self, **values: object) -> Stage:
        """The stage with command-line overrides (None values are ignored)."""
        known = {f.name for f in fields(self)}
        chosen = {k: v for k, v in values.items() if v is not None and k in known}
        return replace(self, **chosen)


STAGES = {
    s.name: s
    for s in (
        Stage("intra", frames=1, crop=128, batch=8, lr=1e-4, steps=20000, train=("intra",)),
        Stage("inter2", frames=2, crop=128, batch=8, lr=1e-4, steps=8000, train=("inter",)),
        Stage("inter", frames=5, crop=128, batch=4, lr=5e-5, steps=8000, train=("inter",)),
        Stage("index", frames=3, crop=128, batch=4, lr=1e-4, steps=1500, train=INDEX_NETS),
        Stage(
            "confre", frames=4, crop=128, batch=4, lr=1e-4, steps=2000,
            train=("context_filter", "enhancer"), use_filter=True, enhance=True,
        ),
    )
}  # fmt: skip


def get_stage(name: str) -> Stage:
    try:
        return STAGES[name]
    except KeyError:
        raise InputError(f"unknown stage {name!r} (stages: {', '.join(STAGES)})") from None
