"""One latent, coded: hyperprior z, then the latent y in spatial-prior steps (DCVC-FM style).

    v = y * s_enc(qp)                        global quality scaler (per channel)
    z = h_a(v);  z symbols = round(z - loc)   factorised, one table per channel
    params = h_s(z_hat) [fused with a temporal prior]
    for each step j:   mean_j, w_j = head_j(params, v_hat so far)            (float)
                       k_j = ScaleIndexNet(z symbols, qp, symbols so far)      (integer)
                       s_j = round(v * w_j - mean_j)  coded with table k_j
                       v_hat += (s_j + mean_j) / w_j  at the step's positions
    y_hat = v_hat * s_dec(qp)

Training (`forward`), encoding and decoding share `_steps`; only where the symbols come from differs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from nvcodec.entropy.coder import ProbabilityTables, SymbolDecoder, SymbolEncoder
from nvcodec.entropy.intnet import ste_round
from nvcodec.entropy.likelihood import gaussian_bits, sigma_of_index
from nvcodec.entropy.scale_index import ScaleIndexNet
from nvcodec.entropy.tables import NUM_SCALES
from nvcodec.models.blocks import DepthConvBlock, Down, Fuse, Up, conv1x1, conv3x3
from nvcodec.models.qscale import QpScaler

SCALER_RANGE = 2.0  # the content-adaptive scaler w lies in [e^-2, e^2]
STEP_PATTERNS = {2: ((0, 3), (1, 2)), 4: ((0,), (3,), (1,), (2,))}  # cells of each 2x2 block


def step_masks(steps: int, like: torch.Tensor) -> list[torch.Tensor]:
    """(1,1,H,W) masks (dtype and device of `like`) of the positions each step codes; the cell
    of a position is 2*(row % 2) + (column % 2)."""
    height, width = like.shape[-2:]
    rows = torch.arange(height, device=like.device) % 2
    cols = torch.arange(width, device=like.device) % 2
    cell = rows.view(-1, 1) * 2 + cols.view(1, -1)
    masks = [sum(cell == c for c in cells) for cells in STEP_PATTERNS[steps]]
    return [m.to(like.dtype).view(1, 1, height, width) for m in masks]


def latent_shape(frame_shape: tuple[int, ...], channels: int) -> tuple[int, int, int, int]:
    """Shape of a latent at 1/16 of the frame for a frame tensor (N, 6, H/2, W/2)."""
    return (frame_shape[0], channels, frame_shape[2] // 8, frame_shape[3] // 8)


@dataclass
class LatentResult:
    """A coded latent: what the synthesis uses, the symbols the next frame sees, and the cost."""

    y_hat: torch.Tensor
    symbols: torch.Tensor  # int64 on the CPU when coding; floats holding integers when training
    bits: torch.Tensor | None = None  # training: estimated bits per sample
    streams: tuple[bytes, bytes] | None = None  # encoding: (z substream, y substream)


class FactorizedPrior(nn.Module):
    """The hyperprior's model: per channel a location and a fixed table index."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(channels))
        self.index = nn.Parameter(torch.full((channels,), 24.0))
        self.register_buffer("index_int", torch.zeros(channels, dtype=torch.int32))

    def _loc(self) -> torch.Tensor:
        return self.loc.view(1, -1, 1, 1)

    def quantize(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(z_hat, symbols) with straight-through rounding."""
        s = ste_round(z - self._loc())
        return s + self._loc(), s

    def dequantize(self, symbols: torch.Tensor) -> torch.Tensor:
        return symbols + self._loc()

    def bits(self, symbols: torch.Tensor) -> torch.Tensor:
        k = ste_round(self.index).clamp(0, NUM_SCALES - 1).view(1, -1, 1, 1)
        return gaussian_bits(symbols, sigma_of_index(k)).flatten(1).sum(dim=1)

    def indices(self, shape: torch.Size) -> np.ndarray:
        return np.broadcast_to(self.index_int.cpu().numpy().reshape(1, -1, 1, 1), tuple(shape))

    @torch.no_grad()
    def export(self) -> None:
        self.index_int.copy_(torch.floor(self.index + 0.5).clamp(0, NUM_SCALES - 1).to(torch.int32))


class ParamHead(nn.Module):
    """Float entropy parameters of one step: the mean and the content-adaptive scaler w."""

    def __init__(self, cin: int, width: int, latent_ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv1x1(cin, width), DepthConvBlock(width), conv1x1(width, 2 * latent_ch))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, rho = self.body(x).chunk(2, dim=1)
        return mean, torch.exp(SCALER_RANGE * torch.tanh(rho))


# take(step, mask, mean, w, k) -> the step's symbols (0 elsewhere) twice: as the model's floats,
# and as the integer network sees them (int64 on the CPU when coding, detached floats in training).
Take = Callable[
    [int, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]
]
SYMBOL_LIMIT = 1 << 30  # the encoder never codes a larger magnitude (bitstream_spec.md, 5.3)


def round_symbols(x: torch.Tensor) -> torch.Tensor:
    """Symbols of a float map: rounded half up in fp32 (never in fp16), bounded, int64 on the CPU."""
    return torch.floor(x.float() + 0.5).clamp(-SYMBOL_LIMIT, SYMBOL_LIMIT).cpu().to(torch.int64)


class LatentCodec(nn.Module):
    """Codes a latent of `latent_ch` channels at 1/16 of the frame size."""

    def __init__(
        self,
        latent_ch: int,
        hyper_ch: int,
        prior_ch: int,
        extra_prior_ch: int,
        index_ch: int,
        steps: int,
        temporal: bool,
        scale_range: tuple[float, float] = (0.5, 8.0),
    ) -> None:
        super().__init__()
        self.steps = steps
        self.enc_scale = QpScaler(latent_ch, *scale_range)
        self.dec_scale = QpScaler(latent_ch, 1 / scale_range[0], 1 / scale_range[1])
        act = nn.LeakyReLU(0.1)
        self.hyper_analysis = nn.Sequential(
            conv3x3(latent_ch, prior_ch), act, Down(prior_ch, prior_ch), act, Down(prior_ch, hyper_ch)
        )
        self.hyper_synthesis = nn.Sequential(
            Up(hyper_ch, prior_ch), act, Up(prior_ch, prior_ch), act, conv3x3(prior_ch, prior_ch)
        )
        self.prior_fuse = Fuse(prior_ch, extra_prior_ch, prior_ch) if extra_prior_ch else None
        self.z_prior = FactorizedPrior(hyper_ch)
        self.index_net = ScaleIndexNet(latent_ch, hyper_ch, index_ch, steps, temporal)
        self.heads = nn.ModuleList(ParamHead(prior_ch + latent_ch, prior_ch, latent_ch) for _ in range(steps))

    def _params(self, z_hat: torch.Tensor, prior: torch.Tensor | None) -> torch.Tensor:
        params = self.hyper_synthesis(z_hat)
        return self.prior_fuse(params, prior) if self.prior_fuse is not None else params

    def _steps(
        self,
        params: torch.Tensor,
        index_of: Callable[[int, torch.Tensor], torch.Tensor],
        take: Take,
        symbols: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the spatial-prior steps from `symbols` (zeros); returns (v_hat, symbols)."""
        shape = symbols.shape
        v_hat = params.new_zeros(shape)
        for j, mask in enumerate(step_masks(self.steps, v_hat)):
            mean, w = self.heads[j](torch.cat([params, v_hat], dim=1))
            s, s_index = take(j, mask, mean, w, index_of(j, symbols))
            v_hat = v_hat + mask * (s + mean) / w
            symbols = symbols + s_index
        return v_hat, symbols

    def forward(
        self,
        y: torch.Tensor,
        qp: int,
        prior: torch.Tensor | None = None,
        previous: torch.Tensor | None = None,
    ) -> LatentResult:
        """Training: straight-through rounding and estimated bits (per sample)."""
        v = y * self.enc_scale(qp)
        z_hat, z_sym = self.z_prior.quantize(self.hyper_analysis(v))
        h = self.index_net.hyper_features(z_sym.detach(), exact=False)
        bits = [self.z_prior.bits(z_sym)]

        def index_of(j: int, symbols: torch.Tensor) -> torch.Tensor:
            return self.index_net.soft_indices(h, j, symbols, previous, qp)

        def take(
            j: int, mask: torch.Tensor, mean: torch.Tensor, w: torch.Tensor, k: torch.Tensor
        ) -> tuple[torch.Tensor, torch.Tensor]:
            s = ste_round(v * w - mean) * mask
            bits.append((gaussian_bits(s, sigma_of_index(k)) * mask).flatten(1).sum(dim=1))
            return s, s.detach()

        v_hat, symbols = self._steps(self._params(z_hat, prior), index_of, take, torch.zeros_like(v))
        return LatentResult(v_hat * self.dec_scale(qp), symbols, bits=sum(bits))

    def _exact_index_of(
        self, z_sym: torch.Tensor, qp: int, previous: torch.Tensor | None
    ) -> Callable[[int, torch.Tensor], torch.Tensor]:
        h = self.index_net.hyper_features(z_sym, exact=True)

        def index_of(j: int, symbols: torch.Tensor) -> torch.Tensor:
            return self.index_net.indices(h, j, symbols, previous, qp)

        return index_of

    @torch.no_grad()
    def encode(
        self,
        y: torch.Tensor,
        qp: int,
        tables: ProbabilityTables,
        prior: torch.Tensor | None = None,
        previous: torch.Tensor | None = None,
    ) -> LatentResult:
        """Code y; returns the decoder's own reconstruction of it and the two substreams."""
        v = y * self.enc_scale(qp)
        z_int = round_symbols(self.hyper_analysis(v) - self.z_prior.loc.view(1, -1, 1, 1))
        z_enc, y_enc = SymbolEncoder(tables), SymbolEncoder(tables)
        z_enc.add(z_int.numpy(), self.z_prior.indices(z_int.shape))

        def take(
            j: int, mask: torch.Tensor, mean: torch.Tensor, w: torch.Tensor, k: torch.Tensor
        ) -> tuple[torch.Tensor, torch.Tensor]:
            s = round_symbols(v * w - mean) * mask.cpu().to(torch.int64)
            sel = mask.cpu().bool().expand_as(k).numpy()
            y_enc.add(s.numpy()[sel], k.numpy()[sel])
            return s.to(device=mean.device, dtype=mean.dtype), s

        z_hat = self.z_prior.dequantize(z_int.to(device=v.device, dtype=v.dtype))
        start = torch.zeros(v.shape, dtype=torch.int64)
        v_hat, symbols = self._steps(
            self._params(z_hat, prior), self._exact_index_of(z_int, qp, previous), take, start
        )
        return LatentResult(v_hat * self.dec_scale(qp), symbols, streams=(z_enc.finish(), y_enc.finish()))

    @torch.no_grad()
    def decode(
        self,
        streams: tuple[bytes, bytes],
        shape: tuple[int, int, int, int],
        qp: int,
        tables: ProbabilityTables,
        prior: torch.Tensor | None = None,
        previous: torch.Tensor | None = None,
        like: torch.Tensor | None = None,
    ) -> LatentResult:
        """Read the two substreams back; `like` gives the device and dtype of the float parts."""
        n, c, h, w = shape
        ref = like if like is not None else self.z_prior.loc
        z_dec, y_dec = SymbolDecoder(tables, streams[0]), SymbolDecoder(tables, streams[1])
        z_shape = (n, self.z_prior.loc.numel(), h // 4, w // 4)
        z_int = torch.from_numpy(z_dec.read(self.z_prior.indices(z_shape)))
        z_dec.finish()
        z_hat = self.z_prior.dequantize(z_int.to(device=ref.device, dtype=ref.dtype))

        def take(
            j: int, mask: torch.Tensor, mean: torch.Tensor, w: torch.Tensor, k: torch.Tensor
        ) -> tuple[torch.Tensor, torch.Tensor]:
            sel = mask.cpu().bool().expand_as(k).numpy()
            values = np.zeros(k.shape, dtype=np.int64)
            values[sel] = y_dec.read(k.numpy()[sel])
            s = torch.from_numpy(values)
            return s.to(device=mean.device, dtype=mean.dtype), s

        start = torch.zeros(shape, dtype=torch.int64)
        v_hat, symbols = self._steps(
            self._params(z_hat, prior), self._exact_index_of(z_int, qp, previous), take, start
        )
        y_dec.finish()
        return LatentResult(v_hat * self.dec_scale(qp), symbols)

    def export(self) -> None:
        self.z_prior.export()
        self.index_net.export()
