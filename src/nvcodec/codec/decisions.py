"""The encoder's per-frame decisions: the motion block size, and ConFRE's two tools (DESIGN.md,
"Coding tools")."""

from __future__ import annotations

from dataclasses import dataclass

from nvcodec.models.latent_codec import LAMBDA, base_step

MIN_FILTERED = 2  # m: filter on distortion alone until this many frames of a refresh period are filtered
PROGRESSIVE_FACTOR = 0.16  # p: extra rate an early frame may spend for the frames after it


@dataclass(frozen=True)
class Trial:
    """The outcome of coding a frame one way."""

    bytes: int
    distortion: float  # weighted MSE per sample, on [0, 1]

    def rd_cost(self, qp: int, pixels: int) -> float:
        """D + lambda R of the whole frame, with the intra coefficients' rule: a bit is worth
        LAMBDA squared steps of qp, and D sums the squared error over the frame's pixels (measured
        with it, not with the P frames' own INTER_LAMBDA)."""
        return self.distortion * pixels + LAMBDA * base_step(qp) ** 2 * 8 * self.bytes


@dataclass
class FilterDecider:
    """ConFRE's adaptive decision for the in-loop contextual filter.

    While fewer than m frames of the current refresh period were filtered, filter whenever it
    lowers the distortion; afterwards only when it also pays in rate:
    (R_off - R_on) / R_off + p (1 - t / T) > 0.
    """

    total_frames: int | None
    filtered: int = 0

    def reset(self) -> None:
        """Called at each refresh (and intra) frame."""
        self.filtered = 0

    def decide(self, index: int, off: Trial, on: Trial) -> bool:
        if on.distortion >= off.distortion:
            return False
        if self.filtered < MIN_FILTERED:
            use = True
        else:
            progress = index / self.total_frames if self.total_frames else 0.0
            saving = (off.bytes - on.bytes) / max(off.bytes, 1)
            use = saving + PROGRESSIVE_FACTOR * (1 - progress) > 0
        self.filtered += use
        return use


def should_enhance(plain_distortion: float, enhanced_distortion: float) -> bool:
    """Out-of-loop enhancement is flagged when it brings the output closer to the source."""
    return enhanced_distortion < plain_distortion
