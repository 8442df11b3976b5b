"""Parameters and kMAC per pixel of each configuration's coding paths.

    python -m benchmarks.complexity [--json FILE]

Counts every convolution the encoder and decoder run for an I frame and for a P frame (encoder:
residual coding in both trials of the contextual filter as `--filter auto` codes them and the
enhancement decision, with SpyNet's motion seed apart; decoder: a P frame with the filter and the
enhancement applied). Interpolation and the search's block matching are gathers, not counted.
The transform's residual blocks count as a trained model runs them (an untrained one, whose last
factor is zero, is skipped while coding).
"""

from __future__ import annotations

import argparse
import json

import torch

from nvcodec.models.compensation import BLOCK, InterpolatedFrame
from nvcodec.models.config import CONFIGS
from nvcodec.models.intra_prediction import BLOCK_MODES
from nvcodec.models.layout import quantize_pixels
from nvcodec.models.macs import kmacs_per_pixel
from nvcodec.models.motion import MotionField
from nvcodec.models.transform import PointBlock
from nvcodec.outputs import write_file
from nvcodec.weights import random_model

HEIGHT, WIDTH = 240, 416  # already a multiple of the network's 16


def measure(name: str, height: int = HEIGHT, width: int = WIDTH) -> dict:
    """Parameters and kMAC per pixel of each coding path of a random `name` model on one frame."""
    model = random_model(CONFIGS[name])
    with torch.no_grad():
        for block in model.modules():
            if isinstance(block, PointBlock):
                block.project.weight.normal_(0, 1e-3)
    tables = model.probability_tables()
    x = torch.rand(1, 6, height // 2, width // 2)
    pixels = height * width
    intra = model.intra.encode(x, 32, tables, prediction=BLOCK_MODES)  # the default's intra prediction
    ref = InterpolatedFrame(quantize_pixels(intra.x_hat))
    inter = model.inter
    flow = inter.flow(x, ref)
    vectors = inter.search(x, ref, 32, tables, flow, BLOCK)
    plain, flat = inter.flat_blocks(x, ref, 32, tables, vectors, BLOCK)
    field = MotionField(plain, BLOCK, flat)
    coded = inter.encode(
        x, ref, 32, tables, intra.latent.symbols, field, shifts_allowed=False, skip_edges=True
    )

    def encode_p() -> None:  # motion search aside: flat and split blocks, both filter trials, the enhancement
        inter.flat_blocks(x, ref, 32, tables, vectors, BLOCK)
        inter.split_blocks(x, ref, 32, tables, flow, MotionField(plain, BLOCK, flat))
        prediction = ref.predict(torch.from_numpy(coded.field.unit_vectors()), coded.field.unit)
        for refine in (None, model.context_filter):
            p = prediction.refined(refine) if refine else prediction
            inter.synthesis(inter.analysis(x, p), p, 30)
        model.enhancer(prediction.values)

    def decode_p() -> None:  # with the in-loop filter and the enhancement
        f = coded.field
        flags = dict(
            block=BLOCK,
            has_flat=f.flat is not None,
            has_split=f.split is not None,
            has_shifts=False,
            skip_edges=True,
            has_offsets=False,
            has_half_pel=False,
            has_intra_blocks=False,
            has_neighbour_levels=False,
        )
        inter.decode(
            coded.streams, ref, 32, tables, intra.latent.symbols, **flags, refine=model.context_filter
        )
        model.enhancer(ref.frame)

    with torch.no_grad():
        result = {
            "parameters": sum(p.numel() for p in model.parameters()),
            "intra_encode_kmac": kmacs_per_pixel(
                lambda: (
                    model.intra.encode(x, 32, tables, prediction=BLOCK_MODES),
                    model.enhancer(ref.frame),
                ),
                pixels,
            ),
            "intra_decode_kmac": kmacs_per_pixel(
                lambda: (
                    model.intra.decode(intra.latent.stream, x.shape, 32, tables, x, prediction=BLOCK_MODES),
                    model.enhancer(ref.frame),
                ),
                pixels,
            ),
            "inter_encode_kmac": kmacs_per_pixel(encode_p, pixels),
            "motion_seed_kmac": kmacs_per_pixel(lambda: inter.estimator.flow(x, ref.frame), pixels),
            "inter_decode_kmac": kmacs_per_pixel(decode_p, pixels),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    rows = {name: measure(name) for name in CONFIGS}
    print(
        f"{'config':<6} {'params':>10} {'I enc':>8} {'I dec':>8} {'P enc':>8} {'ME seed':>8} {'P dec':>8}  (kMAC/pixel)"
    )
    for name, r in rows.items():
        print(
            f"{name:<6} {r['parameters']:>10,} {r['intra_encode_kmac']:>8.1f} {r['intra_decode_kmac']:>8.1f}"
            f" {r['inter_encode_kmac']:>8.1f} {r['motion_seed_kmac']:>8.1f} {r['inter_decode_kmac']:>8.1f}"
        )
    if args.json:
        write_file(args.json, json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
