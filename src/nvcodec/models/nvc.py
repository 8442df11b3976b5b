"""The whole model: intra coder, inter coder, ConFRE's two refiners and the probability tables."""

from __future__ import annotations

import torch
from torch import nn

from nvcodec.entropy.coder import ProbabilityTables
from nvcodec.entropy.tables import build_tables
from nvcodec.models.blocks import ResidualRefiner
from nvcodec.models.config import ModelConfig
from nvcodec.models.inter import InterCoder
from nvcodec.models.intra import IntraCoder


class NvcModel(nn.Module):
    """Everything the frame loop needs; stateless between frames (the loop owns the references)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.config = cfg
        self.intra = IntraCoder(cfg)
        self.inter = InterCoder(cfg)
        # ConFRE 3.2: in-loop filter of the prediction context; 3.3: out-of-loop enhancement of x_hat
        self.context_filter = ResidualRefiner(6, cfg.confre_ch, cfg.confre_blocks)
        self.enhancer = ResidualRefiner(6, cfg.confre_ch, cfg.confre_blocks)
        self.use_tables(*(torch.from_numpy(t) for t in build_tables()))

    def use_tables(self, radius: torch.Tensor, counts: torch.Tensor) -> None:
        """Code with these probability tables (bitstream_spec.md 5.1.1): the ones a new model
        builds, or a weights file's, whose number of tables is the file's own (240 in weights released before 3 December 2026)."""
        self.register_buffer("table_radius", radius)
        self.register_buffer("table_counts", counts)

    def probability_tables(self) -> ProbabilityTables:
        return ProbabilityTables(self.table_radius.cpu().numpy(), self.table_counts.cpu().numpy())

    def place(self, device: torch.device | str, dtype: torch.dtype) -> NvcModel:
        """Move the float parts for coding; integer tables travel along and are read on the CPU."""
        return self.to(device=device, dtype=dtype)
