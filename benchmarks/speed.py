"""Coding speed: frames per second, where the time goes, peak memory, entropy-coder throughput.

    python -m benchmarks.speed [--sizes 416x240,854x480] [--frames 5] [--device cpu] [--precision fp32]
                               [--weights PATH | --random base] [--json FILE]

Frames are synthetic (nvcodec.sample); timings exclude model loading and the first (warm-up) frame.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import resource
import time
from fractions import Fraction

import numpy as np
import torch

from benchmarks.environment import machine
from nvcodec.bitstream import BitstreamReader, BitstreamWriter
from nvcodec.codec.decoder import Decoder
from nvcodec.codec.encoder import Encoder
from nvcodec.codec.frame_loop import resolve_device, resolve_precision
from nvcodec.codec.schedule import CodingParams
from nvcodec.entropy import coder
from nvcodec.entropy.tables import build_tables, table_parameters
from nvcodec.frame import VideoInfo
from nvcodec.io import open_reader, open_writer
from nvcodec.models.config import get_config
from nvcodec.outputs import write_file
from nvcodec.sample import synthetic_frames
from nvcodec.weights import Weights, default_weights_path, load_weights, random_model


class Stopwatch:
    """Accumulates the time spent inside wrapped functions."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def wrap(self, owner: type, name: str) -> contextlib.AbstractContextManager:
        original = getattr(owner, name)

        def timed(*args, **kwargs):
            began = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - began

        @contextlib.contextmanager
        def patched():
            setattr(owner, name, timed)
            try:
                yield
            finally:
                setattr(owner, name, original)

        return patched()


def entropy_stopwatch() -> tuple[Stopwatch, contextlib.ExitStack]:
    watch, stack = Stopwatch(), contextlib.ExitStack()
    for owner, name in (
        (coder.SymbolEncoder, "add"),
        (coder.SymbolEncoder, "finish"),
        (coder.SymbolDecoder, "read"),
    ):
        stack.enter_context(watch.wrap(owner, name))
    return watch, stack


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure_size(weights: Weights, width: int, height: int, frames: int, device, dtype) -> dict:
    info = VideoInfo(width, height, Fraction(25), frames + 1)
    source = list(synthetic_frames(width, height, frames + 1))
    # I/O: writing and reading the clip as Y4M in memory is what nvenc/nvdec add around the codec
    began = time.perf_counter()
    buf = io.BytesIO()
    path = f"/tmp/nvcodec_speed_{width}x{height}.y4m"
    with open_writer(path, info, force=True) as w:
        for f in source:
            w.write(f)
    with open_reader(path) as r:
        for _ in r.frames():
            pass
    io_seconds = (time.perf_counter() - began) / len(source)

    encoder = Encoder(weights, CodingParams(qp=32), info, device, dtype)
    writer = BitstreamWriter(buf, encoder.header)
    writer.write(encoder.encode(source[0]).record)  # warm-up: the intra frame
    watch, stack = entropy_stopwatch()
    with stack:
        synchronize(device)
        began = time.perf_counter()
        for f in source[1:]:
            writer.write(encoder.encode(f).record)
        synchronize(device)
        enc_seconds = (time.perf_counter() - began) / frames
    enc_entropy = watch.seconds / frames

    reader = BitstreamReader(io.BytesIO(buf.getvalue()))
    decoder = Decoder(weights, reader.header, device, dtype)
    records = list(reader)
    decoder.decode(records[0])
    watch, stack = entropy_stopwatch()
    with stack:
        synchronize(device)
        began = time.perf_counter()
        for r in records[1:]:
            decoder.decode(r)
        synchronize(device)
        dec_seconds = (time.perf_counter() - began) / frames
    dec_entropy = watch.seconds / frames
    row = {
        "size": f"{width}x{height}",
        "encode_fps": 1 / enc_seconds,
        "decode_fps": 1 / dec_seconds,
        "encode_share": {"model": 1 - enc_entropy / enc_seconds, "entropy": enc_entropy / enc_seconds},
        "decode_share": {"model": 1 - dec_entropy / dec_seconds, "entropy": dec_entropy / dec_seconds},
        "io_ms_per_frame": 1000 * io_seconds,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if device.type == "cuda":
        row["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return row


def entropy_throughput(symbols: int = 2_000_000) -> dict:
    """Symbols per second of the ANS coder with the codec's tables (grouped by table)."""
    tables = coder.ProbabilityTables(*build_tables())
    rng = np.random.default_rng(0)
    k = rng.integers(0, len(tables), size=symbols)
    scales = np.array([table_parameters(int(i))[1] for i in range(len(tables))])[k]
    values = np.round(rng.laplace(size=symbols) * scales).astype(np.int64)
    began = time.perf_counter()
    enc = coder.SymbolEncoder(tables)
    enc.add(values, k)
    data = enc.finish()
    encode = symbols / (time.perf_counter() - began)
    began = time.perf_counter()
    coder.SymbolDecoder(tables, data).read(k)
    decode = symbols / (time.perf_counter() - began)
    return {
        "encode_symbols_per_s": encode,
        "decode_symbols_per_s": decode,
        "bits_per_symbol": 8 * len(data) / symbols,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="416x240")
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--weights", help="weights file (default: the released weights)")
    parser.add_argument(
        "--random", metavar="CONFIG", help="use a random-initialised model of this configuration"
    )
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    if args.random:
        weights = Weights(random_model(get_config(args.random)), bytes(32), f"<random {args.random}>")
    else:
        weights = load_weights(args.weights or default_weights_path())
    device = resolve_device(args.device)
    dtype = resolve_precision(args.precision, device)
    where = torch.cuda.get_device_name() if device.type == "cuda" else machine()
    result = {
        "machine": where,
        "threads": torch.get_num_threads(),
        "device": str(device),
        "precision": args.precision,
        "model": weights.config.name,
        "sizes": [],
        "entropy": entropy_throughput(),
    }
    for size in args.sizes.split(","):
        w, h = (int(v) for v in size.split("x"))
        row = measure_size(weights, w, h, args.frames, device, dtype)
        result["sizes"].append(row)
        print(
            f"{row['size']:>10}  encode {row['encode_fps']:7.2f} fps (entropy {100 * row['encode_share']['entropy']:4.1f}%)"
            f"  decode {row['decode_fps']:7.2f} fps (entropy {100 * row['decode_share']['entropy']:4.1f}%)"
            f"  I/O {row['io_ms_per_frame']:.1f} ms/frame  peak RSS {row['peak_rss_mib']:.0f} MiB",
            flush=True,
        )
    e = result["entropy"]
    print(
        f"entropy coder: {e['encode_symbols_per_s'] / 1e6:.1f} M symbols/s encode, "
        f"{e['decode_symbols_per_s'] / 1e6:.1f} M symbols/s decode"
    )
    if args.json:
        write_file(args.json, json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
