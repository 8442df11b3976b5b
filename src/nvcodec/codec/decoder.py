"""The decoder's frame loop: follow each record, rebuild the picture, check it against the CRCs."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nvcodec.bitstream import FrameFlags, FrameRecord, FrameType, Header
from nvcodec.codec.frame_loop import (
    CPU,
    DRIFT_BOUND,
    SIGNATURE_SCALE,
    FrameLoop,
    Picture,
    interpolation_of,
    motion_block,
    picture_signature,
)
from nvcodec.errors import BitstreamError, DamagedRecord, WeightsError
from nvcodec.frame import Frame
from nvcodec.models import sample_offsets
from nvcodec.models.layout import padded_size
from nvcodec.weights import Weights


@dataclass
class DecodedFrame:
    """A decoded frame and whether it matches the encoder's pictures bit for bit."""

    index: int
    record: FrameRecord
    picture: Picture
    recon_matches: bool  # in-loop reconstruction equals the encoder's (CRC)
    output_matches: bool | None  # shown picture equals the encoder's; None when enhancement was skipped

    @property
    def output(self):
        return self.picture.output


def check_weights(header: Header, weights: Weights) -> None:
    """Refuse weights other than the ones the bitstream was made with."""
    if header.model_name != weights.config.name or header.weights_hash != weights.identity:
        raise WeightsError(
            f"bitstream needs model {header.model_name!r} with weights {header.weights_hash.hex()}, "
            f"but {weights.path} is {weights.config.name!r} {weights.identity.hex()}"
        )


class Decoder(FrameLoop):
    """Feed records in order; each call returns the decoded frame."""

    def __init__(
        self,
        weights: Weights,
        header: Header,
        device: torch.device = CPU,
        dtype: torch.dtype = torch.float32,
        enhance: bool = True,
    ) -> None:
        check_weights(header, weights)
        super().__init__(weights, device, dtype, header)
        self.apply_enhancement = enhance
        wp, hp = padded_size(header.width, header.height)
        self._shape = (1, 6, hp // 2, wp // 2)

    def decode(self, record: FrameRecord) -> DecodedFrame:
        """Decode the next record; a substream that does not parse is a DamagedRecord naming its
        frame, and leaves the decoder as it was (skip() then passes over the frame)."""
        if record.frame_type != FrameType.INTRA and self.reference is None:
            raise DamagedRecord(
                f"frame {self.index}: a P frame whose reference was lost (waiting for an intra frame)"
            )
        try:
            return self._decode(record)
        except BitstreamError as err:
            raise DamagedRecord(f"frame {self.index}: {err}") from None

    def skip(self) -> None:
        """Pass over a damaged frame. P frames read their contexts from the previous frame's
        symbols, so none can be parsed again before the next intra frame: the reference is gone."""
        self.index += 1
        self.reference = None

    @torch.no_grad()
    def _decode(self, record: FrameRecord) -> DecodedFrame:
        has_shifts = bool(record.flags & FrameFlags.TABLE_SHIFTS)
        offsets, substreams = self.sample_offsets_of(record)
        if record.frame_type == FrameType.INTRA:
            like = torch.zeros(1, device=self.device, dtype=self.dtype)
            stream, qp = substreams[0], record.qp
            out = self.model.intra.decode(
                stream, self._shape, qp, self.tables, like, has_shifts, self.intra_modes, self.bits
            )
        else:
            ref = self.reference
            refine = self.model.context_filter if record.flags & FrameFlags.FILTER else None
            out = self.model.inter.decode(
                substreams,
                ref.picture.through(interpolation_of(record.flags)),
                record.qp,
                self.tables,
                ref.symbols,
                block=motion_block(record.flags),
                has_flat=bool(record.flags & FrameFlags.FLAT_BLOCKS),
                has_split=bool(record.flags & FrameFlags.SPLIT_BLOCKS),
                has_shifts=has_shifts,
                skip_edges=self.header.skip_edges,
                has_offsets=self.header.prediction_offsets,
                has_half_pel=self.header.half_pel,
                has_intra_blocks=self.header.intra_blocks,
                has_neighbour_levels=self.header.neighbour_levels,
                refine=refine,
                table=self.latent_table(record.qp),
                bits=self.bits,
            )
        x_hat = sample_offsets.apply(out.x_hat, offsets, self.bits, out.coded)  # on the grid of self.bits
        flagged = bool(record.flags & FrameFlags.ENHANCE)
        enhance = flagged and self.apply_enhancement
        picture = self.picture_of(x_hat, self.enhanced(x_hat) if enhance else None)
        recon_ok = picture.recon_crc == record.crc_recon
        if not recon_ok:
            self._check_signature(picture.recon, record.signature)
        index = self.index
        self.advance(x_hat, out.latent, record)
        output_ok = picture.output_crc & 0xFFFF == record.crc_output if enhance or not flagged else None
        return DecodedFrame(index, record, picture, recon_ok, output_ok)

    def _check_signature(self, recon: Frame, signature: int) -> None:
        """A picture that differs from the encoder's by more than drift can is a damaged frame."""
        off = abs(picture_signature(recon) - signature)
        if off > DRIFT_BOUND:
            raise BitstreamError(
                f"its picture is not the encoder's (signature off by {off / SIGNATURE_SCALE:.2f} levels; "
                f"floating-point drift stays under {DRIFT_BOUND / SIGNATURE_SCALE}): the stream was "
                "changed after it was made, or made with other weights"
            )
