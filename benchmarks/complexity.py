"""Parameters and kMAC per pixel of each configuration's coding paths.

    python -m benchmarks.complexity [--json FILE]

Counts every convolution the encoder and decoder run for an I frame and for a P frame (encoder:
motion estimation and coding, both trials of the contextual filter as `--filter auto` codes them,
the enhancement decision; decoder: a P frame with the filter and the enhancement applied).
"""

from __future__ import annotations

import argparse
import json

import torch

from nvcodec.models.config import CONFIGS
from nvcodec.models.layout import quantize_pixels
from nvcodec.models.macs import kmacs_per_pixel
from nvcodec.outputs import write_file
from nvcodec.weights import random_model

HEIGHT, WIDTH = 256, 448  # 416x240 padded to the network's multiple of 64


def measure(name: str) -> dict:
    model = random_model(CONFIGS[name])
    tables = model.probability_tables()
    x = torch.rand(1, 6, HEIGHT // 2, WIDTH // 2)
    pixels = HEIGHT * WIDTH
    intra = model.intra.encode(x, 32, tables)
    ref = quantize_pixels(intra.x_hat)

    def feature(use_filter: bool) -> torch.Tensor:
        return model.reference_feature(ref, None, False, use_filter)

    def encode_p() -> None:
        motion = model.inter.encode_motion(x, ref, 32, tables)
        for use_filter in (False, True):
            model.inter.encode_texture(x, motion, feature(use_filter), 32, tables)
        model.enhancer(ref)

    coded = model.inter.encode_texture(
        x, model.inter.encode_motion(x, ref, 32, tables), feature(True), 32, tables
    )

    def decode_p() -> None:
        model.inter.decode(coded.streams, ref, feature(True), 32, tables)
        model.enhancer(ref)

    with torch.no_grad():
        result = {
            "parameters": sum(p.numel() for p in model.parameters()),
            "intra_encode_kmac": kmacs_per_pixel(
                lambda: (model.intra.encode(x, 32, tables), model.enhancer(ref)), pixels
            ),
            "intra_decode_kmac": kmacs_per_pixel(
                lambda: (
                    model.intra.decode(intra.latent.streams, x.shape, 32, tables, x),
                    model.enhancer(ref),
                ),
                pixels,
            ),
            "inter_encode_kmac": kmacs_per_pixel(encode_p, pixels),
            "inter_decode_kmac": kmacs_per_pixel(decode_p, pixels),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    rows = {name: measure(name) for name in CONFIGS}
    print(f"{'config':<6} {'params':>10} {'I enc':>8} {'I dec':>8} {'P enc':>8} {'P dec':>8}  (kMAC/pixel)")
    for name, r in rows.items():
        print(
            f"{name:<6} {r['parameters']:>10,} {r['intra_encode_kmac']:>8.1f} {r['intra_decode_kmac']:>8.1f}"
            f" {r['inter_encode_kmac']:>8.1f} {r['inter_decode_kmac']:>8.1f}"
        )
    if args.json:
        write_file(args.json, json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
