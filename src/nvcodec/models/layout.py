"""Frames to network tensors and back: Y space-to-depth (4 channels) plus U and V, half size.

A frame of W x H becomes a (1, 6, Hp/2, Wp/2) tensor in [0, 1], where Wp, Hp are W, H padded
(replicating the border) up to the network's multiple. Distortion weights Y:U:V as 6:1:1.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from nvcodec.frame import Frame

MULTIPLE = 16  # one 16x16 motion block; the latent is at 1/8
FINE_BITS = 6  # reconstructions are assembled in 1/64 of an 8-bit level, in integers
FINE_PEAK = 255 << FINE_BITS
LUMA_PHASES = 4  # channels 0..3 of a frame tensor are the four phases of full-resolution luma


def padded_size(width: int, height: int) -> tuple[int, int]:
    return -(-width // MULTIPLE) * MULTIPLE, -(-height // MULTIPLE) * MULTIPLE


def _pad_plane(plane: np.ndarray, height: int, width: int) -> torch.Tensor:
    t = torch.tensor(plane, dtype=torch.float32)
    ph, pw = height - plane.shape[0], width - plane.shape[1]
    t = t[None, None]
    if ph or pw:
        t = F.pad(t, (0, pw, 0, ph), mode="replicate")
    return t / 255.0


def frame_to_tensor(frame: Frame) -> torch.Tensor:
    """The (1, 6, Hp/2, Wp/2) float32 tensor of a frame, padded by replication."""
    wp, hp = padded_size(frame.width, frame.height)
    y = F.pixel_unshuffle(_pad_plane(frame.y, hp, wp), 2)
    u = _pad_plane(frame.u, hp // 2, wp // 2)
    v = _pad_plane(frame.v, hp // 2, wp // 2)
    return torch.cat([y, u, v], dim=1)


def to_fine(x: torch.Tensor) -> torch.Tensor:
    """int32 1/64 levels of a float tensor on the [0, 1] scale (rounded, not clamped)."""
    return torch.round(x.float() * FINE_PEAK).to(torch.int32)


def from_fine(fine: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """fine / FINE_PEAK, divided in single precision whatever `dtype` (so that every precision
    starts from the same values), then converted to `dtype`."""
    return (fine.float() / FINE_PEAK).to(dtype)


def to_planes(t: torch.Tensor) -> list[torch.Tensor]:
    """The Y, U and V planes (N, H, W), (N, H/2, W/2) of (N, 6, H/2, W/2) tensors."""
    return [F.pixel_shuffle(t[:, :4], 2)[:, 0], t[:, 4], t[:, 5]]


def from_planes(planes: list[torch.Tensor]) -> torch.Tensor:
    """The (N, 6, H/2, W/2) tensors of Y, U and V planes (inverse of to_planes)."""
    y, u, v = planes
    return torch.cat([F.pixel_unshuffle(y[:, None], 2), u[:, None], v[:, None]], dim=1)


def block_sums(t: torch.Tensor, side: int) -> torch.Tensor:
    """(C, Hb, Wb) sums of a (1, C, h, w) tensor over blocks of side x side samples (partial
    blocks at the edges sum what they hold)."""
    h, w = t.shape[-2:]
    hb, wb = -(-h // side), -(-w // side)
    padded = F.pad(t, (0, wb * side - w, 0, hb * side - h))
    return padded.view(t.shape[1], hb, side, wb, side).sum(dim=(2, 4))


def spread_blocks(values: torch.Tensor, side: int, h: int, w: int) -> torch.Tensor:
    """(1, C, h, w) with each sample taking its side x side block's value from (C, Hb, Wb): the
    inverse layout of block_sums."""
    spread = values.repeat_interleave(side, dim=1).repeat_interleave(side, dim=2)
    return spread[None, :, :h, :w]


def block_means(fine: torch.Tensor, block: int) -> torch.Tensor:
    """(1, 6, h, w) int32: every sample of a prediction in 1/64 levels replaced by its block's
    rounded mean, (sum + n / 2) // n over the block's samples of its plane (luma: four channels)."""
    half = block // 2
    h, w = fine.shape[-2:]
    sums = block_sums(fine.long(), half)
    counts = block_sums(torch.ones_like(fine[:, :1], dtype=torch.long), half)[0]
    luma = sums[:LUMA_PHASES].sum(dim=0, keepdim=True)
    sums = torch.cat([luma, sums[LUMA_PHASES:]])
    n = torch.stack([LUMA_PHASES * counts, counts, counts])
    means = (sums + n // 2) // n
    planes = torch.cat([means[:1].expand(LUMA_PHASES, -1, -1), means[1:]])
    return spread_blocks(planes, half, h, w).to(torch.int32)


def round_shift(x: torch.Tensor, shift: int) -> torch.Tensor:
    """Integers x / 2^shift, rounded half up (x as it is for shift 0)."""
    return (x + ((1 << shift) >> 1)) >> shift


def grid_scale(bits: int) -> int:
    """The top level of a picture of `bits`-bit levels: 255 for 8 bits, 1020 for 10 (quarters of
    the 8-bit levels, as 10-bit video relates to 8-bit)."""
    return 255 << (bits - 8)


def grid_levels(x: torch.Tensor, bits: int = 8) -> torch.Tensor:
    """int32 levels of a tensor on the grid of `bits`-bit levels (exact in every float precision:
    fp16 holds each 10-bit level within a quarter of its spacing)."""
    return torch.round(x.float() * grid_scale(bits)).to(torch.int32)


def quantize_pixels(x: torch.Tensor) -> torch.Tensor:
    """Round to the 8-bit grid (values stay in [0, 1]); what a decoder outputs."""
    return torch.round(x.clamp(0, 1) * 255) / 255


def shown_levels(x: torch.Tensor, bits: int = 8) -> torch.Tensor:
    """The int32 8-bit levels of a tensor on the grid of `bits`-bit levels: finer levels round
    half up, in integers (bitstream_spec.md 7.11)."""
    extra = bits - 8
    return round_shift(grid_levels(x.detach().clamp(0, 1), bits), extra)


def tensor_to_frame(x: torch.Tensor, width: int, height: int, bits: int = 8) -> Frame:
    """The 8-bit frame of a (1, 6, h, w) tensor on the grid of `bits`-bit levels (shown_levels),
    cropped to width x height."""
    q = shown_levels(x, bits).to(torch.uint8).cpu()
    y = F.pixel_shuffle(q[:, :4], 2)[0, 0, :height, :width].numpy()
    cw, ch = (width + 1) // 2, (height + 1) // 2
    u = q[0, 4, :ch, :cw].numpy()
    v = q[0, 5, :ch, :cw].numpy()
    return Frame(np.ascontiguousarray(y), np.ascontiguousarray(u), np.ascontiguousarray(v))


def weighted_mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample MSE with Y:U:V weighted 6:1:1 (the convention of PSNR-YUV)."""
    per_channel = ((a - b) ** 2).mean(dim=(2, 3))
    return (6 * per_channel[:, :4].mean(dim=1) + per_channel[:, 4] + per_channel[:, 5]) / 8


def to_rgb(x: torch.Tensor) -> torch.Tensor:
    """Approximate BT.709 limited-range RGB in [0, 1] at half size (for motion estimation)."""
    y = (x[:, :4].mean(dim=1, keepdim=True) - 16 / 255) * (255 / 219)
    cb = (x[:, 4:5] - 128 / 255) * (255 / 224)
    cr = (x[:, 5:6] - 128 / 255) * (255 / 224)
    r = y + 1.5748 * cr
    g = y - 0.1873 * cb - 0.4681 * cr
    b = y + 1.8556 * cb
    return torch.cat([r, g, b], dim=1).clamp(0, 1)
