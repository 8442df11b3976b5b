"""Decode one stream in two set-ups (device and precision) and show how far their pictures differ.

    python -m benchmarks.drift STREAM.nvc cpu:fp32 cuda:fp16 [--weights FILE] [--all]

What the cross-device checks of bitstream_spec.md 7.12 ran: per frame, whether each decode matches
the encoder's CRC, the largest difference in levels, the share of samples that differ, and the
PSNR between the two decodes.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch

from nvcodec.bitstream import BitstreamReader
from nvcodec.codec.decoder import Decoder
from nvcodec.codec.frame_loop import PRECISIONS, resolve_device
from nvcodec.errors import DamagedRecord
from nvcodec.weights import default_weights_path, load_weights


def decode_all(path: str, setup: str, weights_path: str | None) -> list[tuple[np.ndarray, bool]]:
    """(I420 samples, matches the encoder's CRC) of every frame decoded with `setup` (device:precision)."""
    device, precision = setup.split(":")
    weights = load_weights(weights_path or default_weights_path())
    frames = []
    with open(path, "rb") as file:
        reader = BitstreamReader(file)
        decoder = Decoder(weights, reader.header, resolve_device(device), PRECISIONS[precision])
        for record in reader:
            try:
                decoded = decoder.decode(record)
            except DamagedRecord as err:  # beyond drift: nothing more to compare
                print(f"{setup}: {err}")
                break
            samples = np.frombuffer(decoded.picture.recon.tobytes(), dtype=np.uint8).astype(np.int16)
            frames.append((samples, decoded.recon_matches))
    return frames


def compare(a: list[tuple[np.ndarray, bool]], b: list[tuple[np.ndarray, bool]]) -> list[dict]:
    rows = []
    for index, ((x, x_ok), (y, y_ok)) in enumerate(zip(a, b)):
        diff = np.abs(x - y)
        mse = float((diff.astype(np.float64) ** 2).mean())
        rows.append({"frame": index, "crc_a": x_ok, "crc_b": y_ok, "max": int(diff.max()),
                     "differing": float((diff > 0).mean()),
                     "psnr": math.inf if mse == 0 else 10 * math.log10(255**2 / mse)})  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stream")
    parser.add_argument("a", help="device:precision, e.g. cpu:fp32")
    parser.add_argument("b", help="device:precision, e.g. cuda:fp16")
    parser.add_argument("--weights")
    parser.add_argument("--all", action="store_true", help="every frame, not only a few and the worst")
    args = parser.parse_args()
    torch.set_num_threads(2)
    rows = compare(
        decode_all(args.stream, args.a, args.weights), decode_all(args.stream, args.b, args.weights)
    )
    for r in rows:
        if args.all or r["frame"] in (0, 1, len(rows) - 1) or r["max"] > 2:
            print(f"frame {r['frame']:3d}  crc {r['crc_a']!s:5} {r['crc_b']!s:5}  max {r['max']:3d}  "
                  f"differing {r['differing']:.5f}  psnr-between {r['psnr']:.1f}")  # fmt: skip
    worst = max(r["max"] for r in rows)
    print(f"{args.a} vs {args.b}: crc {sum(r['crc_a'] for r in rows)}/{len(rows)} and "
          f"{sum(r['crc_b'] for r in rows)}/{len(rows)}, worst difference {worst} levels")  # fmt: skip


if __name__ == "__main__":
    main()
