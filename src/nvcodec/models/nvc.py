"""The whole model: intra coder, inter coder, ConFRE's two refiners and the probability tables."""

from __future__ import annotations

import torch
from torch import nn

from nvcodec.entropy.coder import ProbabilityTables
from nvcodec.entropy.scale_index import ScaleIndexNet
from nvcodec.entropy.tables import build_tables
from nvcodec.models.blocks import ResidualRefiner
from nvcodec.models.config import ModelConfig
from nvcodec.models.inter import InterCoder
from nvcodec.models.intra import IntraCoder
from nvcodec.models.latent_codec import LatentCodec


class NvcModel(nn.Module):
    """Everything the frame loop needs; stateless between frames (the loop owns the references)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.config = cfg
        self.intra = IntraCoder(cfg)
        self.inter = InterCoder(cfg)
        # ConFRE 3.2: in-loop filter of the reference feature; 3.3: out-of-loop enhancement of x_hat
        self.context_filter = ResidualRefiner(cfg.feature_ch, cfg.confre_ch, cfg.confre_blocks)
        self.enhancer = ResidualRefiner(6, cfg.confre_ch, cfg.confre_blocks)
        radius, counts = build_tables()
        self.register_buffer("table_radius", torch.from_numpy(radius))
        self.register_buffer("table_counts", torch.from_numpy(counts))

    def probability_tables(self) -> ProbabilityTables:
        return ProbabilityTables(self.table_radius.cpu().numpy(), self.table_counts.cpu().numpy())

    def reference_feature(
        self, ref_frame: torch.Tensor, ref_feature: torch.Tensor | None, refresh: bool, use_filter: bool
    ) -> torch.Tensor:
        """The feature frame t is predicted from: F_{t-1}, or (refresh) one made from x_hat_{t-1}."""
        feature = self.inter.extractor(ref_frame) if refresh or ref_feature is None else ref_feature
        return self.context_filter(feature) if use_filter else feature

    def export(self) -> None:
        """Freeze the integer parts (scale-index networks, hyperprior table indices) for coding."""
        for module in self.modules():
            if isinstance(module, LatentCodec):
                module.export()

    def place(self, device: torch.device | str, dtype: torch.dtype) -> NvcModel:
        """Move the float parts for coding; the integer networks stay on the CPU (exact path)."""
        self.to(device=device, dtype=dtype)
        for module in self.modules():
            if isinstance(module, ScaleIndexNet):
                module.to("cpu")
        return self
