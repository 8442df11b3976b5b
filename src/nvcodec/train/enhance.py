"""Train ConFRE's out-of-loop enhancement: the first gradient stage, where the rate cannot rise.

The enhancer sees only decoded pictures, and a decoder shows its output only on the frames the
encoder flags (where it brings the picture closer to the source), so training it lowers the
distortion at the same rate (one flag per frame) and can never make a frame worse. The released
codec codes the pack's pictures (intra) and clips (low delay) once at a spread of qps; the
(decoded, source) pairs are cached in the run folder and training draws patches from them.

    python -m nvcodec.train.enhance [--run training/enhance] [--minutes 30] [--device cuda]

The run folder holds pairs.npz and eval.npz (built on the first call, git-ignored), checkpoint.pt
(enhancer, optimiser, step, RNG; written every few minutes, at the end, and on Ctrl-C or SIGTERM),
log.jsonl (one line per evaluation), curves.svg, and candidate.safetensors with candidate.json (the
weights to measure and release, git-ignored). The same command resumes from the checkpoint; the
repository keeps the checkpoint, log and curves of training/enhance, so a fresh clone resumes too.
"""

from __future__ import annotations

import argparse
import io
import json
import signal
import sys
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from nvcodec.bitstream import FrameType
from nvcodec.codec.encoder import EncodedFrame, Encoder
from nvcodec.codec.schedule import CodingParams, ToolMode
from nvcodec.errors import InputError, NvcError
from nvcodec.frame import Frame, VideoInfo
from nvcodec.io import open_reader
from nvcodec.models.blocks import ResidualRefiner
from nvcodec.models.layout import quantize_pixels, weighted_mse
from nvcodec.outputs import write_file
from nvcodec.train.checkpoint import load_checkpoint, restore_rng, rng_state, save_checkpoint
from nvcodec.train.curves import write_svg
from nvcodec.train.data import Pack
from nvcodec.train.pack import DEFAULT_DATA, DEFAULT_PACK, REPO
from nvcodec.train.packed import pack_frame, unpack_frame
from nvcodec.weights import REPO_WEIGHTS, Weights, default_weights_path, load_weights, save_weights

TRAIN_QPS = (17, 22, 27, 32, 37, 42, 47)  # around the benchmark's 22..42, where BD-rate is measured
CLIP_QPS = 2  # each clip window is coded at this many of TRAIN_QPS
EVAL_CLIP = DEFAULT_DATA / "video" / "foreman_352x288_25fps.h264"  # frames 0..95: never trained on
EVAL_FRAMES = 32
EVAL_QPS = (27, 32, 37)
PATCH = 64  # half-size positions: 128x128 luma pixels
DEFAULT_RUN = REPO / "training" / "enhance"


@dataclass
class Pairs:
    """Decoded pictures and their sources, both (6, h, w) uint8 in the packed layout."""

    decoded: list[np.ndarray]
    sources: list[np.ndarray]

    def save(self, path: Path) -> None:
        arrays = {f"dec_{i}": d for i, d in enumerate(self.decoded)}
        arrays |= {f"src_{i}": s for i, s in enumerate(self.sources)}
        _save_npz(path, arrays)

    @classmethod
    def load(cls, path: Path) -> Pairs:
        with np.load(path) as z:
            count = sum(k.startswith("dec_") for k in z.files)
            return cls([z[f"dec_{i}"] for i in range(count)], [z[f"src_{i}"] for i in range(count)])

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """`size` random patches (decoded, source) as float tensors in [0, 1]."""
        dec, src = [], []
        for i in np.random.randint(len(self.decoded), size=size):
            d, s = self.decoded[i], self.sources[i]
            h, w = d.shape[1:]
            ph, pw = min(PATCH, h), min(PATCH, w)
            r, c = np.random.randint(h - ph + 1), np.random.randint(w - pw + 1)
            dec.append(_fit(d[:, r : r + ph, c : c + pw]))
            src.append(_fit(s[:, r : r + ph, c : c + pw]))
        return _floats(np.stack(dec)), _floats(np.stack(src))


def _fit(patch: np.ndarray) -> np.ndarray:
    """A patch padded by replication to PATCH x PATCH (pictures smaller than a patch)."""
    ph, pw = PATCH - patch.shape[1], PATCH - patch.shape[2]
    return np.pad(patch, ((0, 0), (0, ph), (0, pw)), mode="edge") if ph or pw else patch


def _floats(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a).float() / 255


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_file(path, buffer.getvalue())


def code_frames(weights: Weights, frames: list[Frame], qp: int, device: torch.device) -> list[EncodedFrame]:
    """Code frames as one low-delay sequence with the released tools, enhancement off."""
    info = VideoInfo(frames[0].width, frames[0].height, Fraction(25), len(frames))
    encoder = Encoder(weights, CodingParams(qp=qp, enhance=ToolMode.OFF), info, device)
    return [encoder.encode(frame) for frame in frames]


def build_pairs(weights: Weights, pack: Pack, device: torch.device) -> Pairs:
    """Code every picture of the pack at one qp and every clip at CLIP_QPS qps (spread over
    TRAIN_QPS in turn); keep each decoded frame with its source."""
    jobs = [([p], TRAIN_QPS[i % len(TRAIN_QPS)]) for i, p in enumerate(pack.photos + pack.crops)]
    for i, clip in enumerate(pack.clips):
        jobs += [(list(clip), TRAIN_QPS[(CLIP_QPS * i + k) % len(TRAIN_QPS)]) for k in range(CLIP_QPS)]
    pairs = Pairs([], [])
    for packed, qp in tqdm(jobs, desc="coding the pack", unit="sequence", file=sys.stderr):
        coded = code_frames(weights, [unpack_frame(p) for p in packed], qp, device)
        pairs.decoded += [pack_frame(c.picture.recon) for c in coded]
        pairs.sources += list(packed)
    return pairs


@dataclass
class EvalSet:
    """Held-aside frames coded at EVAL_QPS: sources, decoded pictures, bits per substream."""

    sources: np.ndarray  # (N, 6, h, w) uint8
    decoded: dict[int, np.ndarray]
    bits: dict[int, dict[str, int]]

    def save(self, path: Path) -> None:
        arrays = {"sources": self.sources} | {f"dec_{qp}": d for qp, d in self.decoded.items()}
        arrays["bits"] = np.frombuffer(json.dumps(self.bits).encode(), np.uint8)
        _save_npz(path, arrays)

    @classmethod
    def load(cls, path: Path) -> EvalSet:
        with np.load(path) as z:
            bits = {int(k): v for k, v in json.loads(z["bits"].tobytes()).items()}
            return cls(z["sources"], {qp: z[f"dec_{qp}"] for qp in bits}, bits)


def substream_bits(coded: list[EncodedFrame]) -> dict[str, int]:
    """Bits of the intra latents, the motion vectors and the P-frame residual latents."""
    bits = {"intra": 0, "motion": 0, "residual": 0}
    for c in coded:
        streams = c.record.substreams
        if c.record.frame_type == FrameType.INTRA:
            bits["intra"] += 8 * len(streams[0])
        else:
            bits["motion"] += 8 * len(streams[0])
            bits["residual"] += 8 * len(streams[1])
    return bits


def build_eval(weights: Weights, path: Path, device: torch.device) -> EvalSet:
    """The first EVAL_FRAMES frames of the clip, coded at EVAL_QPS."""
    if not path.is_file():
        raise InputError(f"{path}: no such evaluation clip (--eval-clip)")
    with open_reader(str(path)) as reader:
        frames = list(reader.frames(0, EVAL_FRAMES))
    decoded, bits = {}, {}
    for qp in tqdm(EVAL_QPS, desc="coding the evaluation clip", unit="qp", file=sys.stderr):
        coded = code_frames(weights, frames, qp, device)
        decoded[qp] = np.stack([pack_frame(c.picture.recon) for c in coded])
        bits[qp] = substream_bits(coded)
    return EvalSet(np.stack([pack_frame(f) for f in frames]), decoded, bits)


def _psnr(mse: torch.Tensor) -> torch.Tensor:
    return 10 * torch.log10(1 / mse.clamp(min=1e-12))


@torch.no_grad()
def evaluate(enhancer: ResidualRefiner, evalset: EvalSet, device: torch.device) -> dict[str, dict]:
    """Per qp: mean PSNR-YUV of the decoded frames and of what a decoder shows when the encoder
    flags enhancement where it helps (the encoder's rule), the frames flagged, and the bits."""
    source = _floats(evalset.sources).to(device)
    rows = {}
    for qp, decoded in evalset.decoded.items():
        x_hat = _floats(decoded).to(device)
        plain = weighted_mse(x_hat, source)
        enhanced = weighted_mse(quantize_pixels(enhancer(x_hat)), source)
        shown = torch.minimum(plain, enhanced)
        rows[str(qp)] = {
            "psnr_yuv": round(float(_psnr(plain).mean()), 4),
            "psnr_yuv_shown": round(float(_psnr(shown).mean()), 4),
            "flagged": int((enhanced < plain).sum()),
            "bits": evalset.bits[qp],
        }
    return rows


def learning_rate(step: int, base: float, half_life: int) -> float:
    """The step's learning rate: halves every `half_life` steps (a function of the step alone, so
    a resumed run continues the same schedule)."""
    return base * 0.5 ** (step / half_life)


@dataclass
class Progress:
    """Counters that survive a resume."""

    step: int = 0
    seconds: float = 0.0  # training time, all chunks together


class Trainer:
    """The enhancer, its optimiser and the state a checkpoint keeps."""

    def __init__(self, model: ResidualRefiner, args: argparse.Namespace, device: torch.device) -> None:
        self.model, self.args, self.device = model.to(device).train(), args, device
        self.optimiser = torch.optim.Adam(self.model.parameters(), lr=args.lr)
        self.progress = Progress()

    def state(self) -> dict:
        return {
            "enhancer": self.model.state_dict(),
            "optimiser": self.optimiser.state_dict(),
            "progress": vars(self.progress),
            "rng": rng_state(),
        }

    def restore(self, state: dict) -> None:
        self.model.load_state_dict(state["enhancer"])
        self.optimiser.load_state_dict(state["optimiser"])
        self.progress = Progress(**state["progress"])
        restore_rng(state["rng"])

    def step(self, pairs: Pairs) -> torch.Tensor:
        """One optimiser step on a batch; returns the loss as a tensor (no host sync)."""
        for group in self.optimiser.param_groups:
            group["lr"] = learning_rate(self.progress.step, self.args.lr, self.args.half_life)
        decoded, source = (t.to(self.device, non_blocking=True) for t in pairs.batch(self.args.batch))
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            loss = weighted_mse(self.model(decoded).float(), source).mean()
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        self.optimiser.step()
        self.progress.step += 1
        return loss.detach()


def run_folder_files(run: Path) -> dict[str, Path]:
    names = ("pairs.npz", "eval.npz", "checkpoint.pt", "log.jsonl", "curves.svg", "candidate.safetensors")
    return {name.split(".")[0]: run / name for name in names}


def plot(log: list[dict], path: Path) -> None:
    """PSNR gain of the shown pictures over the decoded ones, per evaluation qp, against steps."""
    series = {
        f"qp {qp}": [
            (row["step"], row["eval"][qp]["psnr_yuv_shown"] - row["eval"][qp]["psnr_yuv"]) for row in log
        ]
        for qp in log[0]["eval"]
    }
    write_svg(
        path, series, "Out-of-loop enhancement, 32 Foreman frames", "training steps", "PSNR-YUV gain (dB)"
    )


class Run:
    """A training run in its folder: data built once, chunks that resume, evaluations logged."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.files = run_folder_files(args.run)
        args.run.mkdir(parents=True, exist_ok=True)
        self.device = torch.device(args.device)
        self.weights = load_weights(args.weights)
        self.trainer = Trainer(self.weights.model.enhancer, args, self.device)
        state = load_checkpoint(self.files["checkpoint"])
        if state is not None:
            self.trainer.restore(state)
        self.log = self._read_log()

    def _read_log(self) -> list[dict]:
        path = self.files["log"]
        rows = [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
        # rows written after the checkpoint describe steps that are lost: they are run again
        return [r for r in rows if r["step"] <= self.trainer.progress.step]

    def data(self) -> tuple[Pairs, EvalSet]:
        """The cached pairs and evaluation set, coded with the starting weights on the first call."""
        files, args = self.files, self.args
        if not files["pairs"].is_file():
            build_pairs(self.weights, Pack(args.pack), self.device).save(files["pairs"])
        if not files["eval"].is_file():
            build_eval(self.weights, args.eval_clip, self.device).save(files["eval"])
        return Pairs.load(files["pairs"]), EvalSet.load(files["eval"])

    def checkpoint(self, evalset: EvalSet, losses: list[torch.Tensor], pixels: int, seconds: float) -> dict:
        """Evaluate, log, plot, and write the checkpoint and the candidate weights."""
        progress = self.trainer.progress
        self.trainer.model.eval()
        row = {
            "step": progress.step,
            "train_seconds": round(progress.seconds, 1),
            "loss_psnr": round(float(_psnr(torch.stack(losses).mean())), 3) if losses else None,
            "mpixels_per_second": round(pixels / max(seconds, 1e-9) / 1e6, 3),
            "device": self.device.type,
            "eval": evaluate(self.trainer.model, evalset, self.device),
        }
        self.trainer.model.train()
        self.log.append(row)
        write_file(self.files["log"], "".join(json.dumps(r) + "\n" for r in self.log))
        plot(self.log, self.files["curves"])
        save_checkpoint(self.files["checkpoint"], self.trainer.state())
        self._candidate(row)
        return row

    def _candidate(self, row: dict) -> None:
        self.trainer.model.cpu()  # it is the enhancer of self.weights.model
        sha = save_weights(self.weights.model, self.files["candidate"])
        self.trainer.model.to(self.device)
        history = {
            "stage": "enhance: gradient training of the out-of-loop enhancement (distortion only)",
            "steps": row["step"],
            "train_seconds": row["train_seconds"],
            "device": row["device"],
            "threads": self.args.threads,
            "started_from": {"sha256": self.weights.sha256.hex(), "history": self._start_history()},
            "data": Pack(self.args.pack).summary() | {"qps": list(TRAIN_QPS)},
            "eval": row["eval"],
            "sha256": sha,
        }
        write_file(self.files["candidate"].with_suffix(".json"), json.dumps(history, indent=1) + "\n")

    def _start_history(self) -> dict | None:
        """The release manifest's history when the run started from the released weights."""
        manifest = REPO_WEIGHTS.parent / "manifest.json"
        if not manifest.is_file():
            return None
        released = json.loads(manifest.read_text())
        return released.get("history") if released.get("sha256") == self.weights.sha256.hex() else None

    def train(self, minutes: float) -> dict | None:
        """Train for `minutes`, checkpointing every --checkpoint-minutes; returns the last log row."""
        pairs, evalset = self.data()
        if not self.log:
            self.checkpoint(evalset, [], 0, 1.0)  # the start, step 0
        progress, args = self.trainer.progress, self.args
        end = time.monotonic() + 60 * minutes
        row = None
        with tqdm(desc="training", unit="step", initial=progress.step, file=sys.stderr) as bar:
            while time.monotonic() < end:
                chunk_end = min(end, time.monotonic() + 60 * args.checkpoint_minutes)
                started, losses = time.monotonic(), []
                try:
                    while time.monotonic() < chunk_end:
                        losses.append(self.trainer.step(pairs))
                        bar.update()
                except KeyboardInterrupt:
                    progress.seconds += time.monotonic() - started
                    save_checkpoint(self.files["checkpoint"], self.trainer.state())
                    raise
                seconds = time.monotonic() - started
                progress.seconds += seconds
                pixels = len(losses) * args.batch * (2 * PATCH) ** 2
                row = self.checkpoint(evalset, losses, pixels, seconds)
                gains = {qp: round(r["psnr_yuv_shown"] - r["psnr_yuv"], 3) for qp, r in row["eval"].items()}
                bar.set_postfix(loss_psnr=row["loss_psnr"], gain_db=gains)
        return row


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nvcodec.train.enhance", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--run", type=Path, default=DEFAULT_RUN, help="the run folder (created, or resumed)")
    parser.add_argument(
        "--weights", type=Path, default=default_weights_path(), help="the codec to start from"
    )
    parser.add_argument("--pack", type=Path, default=DEFAULT_PACK)
    parser.add_argument("--eval-clip", type=Path, default=EVAL_CLIP, help="held-aside frames to evaluate on")
    parser.add_argument("--minutes", type=float, default=30.0, help="training time of this chunk")
    parser.add_argument("--checkpoint-minutes", type=float, default=3.0)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument(
        "--half-life", type=int, default=10000, help="steps over which the learning rate halves"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    for stop in (signal.SIGINT, signal.SIGTERM):  # a background run (nohup ... &) ignores SIGINT
        signal.signal(stop, _stop)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    try:
        if args.device == "cuda" and not torch.cuda.is_available():
            raise InputError("--device cuda: no CUDA device is available")
        run = Run(args)
        row = run.train(args.minutes)
    except NvcError as err:
        print(f"enhance: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"enhance: interrupted; {args.run} resumes from its last checkpoint", file=sys.stderr)
        return 130
    if row is not None:
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
