"""Train ConFRE's refiners: the out-of-loop enhancement and the in-loop filter.

Both are small residual networks that the encoder uses only where they help, one flag per frame:
- the enhancement (--stage enhance) sees the decoded picture, and a decoder shows its output only
  on the frames the encoder flags (where it is closer to the source), so it lowers the distortion
  at the same rate and never makes a frame worse;
- the in-loop filter (--stage filter) sees the motion-compensated prediction of a P frame, and the
  encoder tries each P frame with and without it (codec.decisions.FilterDecider), so a better
  prediction lowers the residual's rate and the error the next frames inherit.
The released codec codes the pack's pictures (intra) and clips (low delay) once at a spread of
qps; what the refiner sees and the sources are cached in the run folder, and training draws
patches from them.

    python -m nvcodec.train.refine [--stage enhance|filter] [--run training/STAGE] [--minutes 30]
                                   [--device cuda]

Every few minutes, at the end, and at the next step after Ctrl-C or SIGTERM, the run evaluates and
writes its checkpoint.pt (refiner, optimiser, step, RNG, the codec's fingerprint), the candidate
weights (candidate.safetensors and .json, git-ignored), a line of log.jsonl and curves.svg; the
cached data (pairs.npz, eval.npz, git-ignored) is built on the first call. The same command resumes
from the checkpoint, and refuses weights whose codec differs from the one the run trains for. The
repository keeps the checkpoint, log and curves of each run under training/, so a fresh clone
resumes too.
"""

from __future__ import annotations

import argparse
import copy
import json
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from nvcodec.codec.decisions import should_enhance
from nvcodec.codec.frame_loop import exact_float32_on_cuda
from nvcodec.errors import InputError, NvcError
from nvcodec.frame import Frame
from nvcodec.metrics import frame_psnr, psnr_from_mse
from nvcodec.models.blocks import ResidualRefiner
from nvcodec.models.layout import quantize_pixels, weighted_mse
from nvcodec.outputs import write_file
from nvcodec.train.checkpoint import load_checkpoint, restore_rng, rng_state, save_checkpoint
from nvcodec.train.curves import write_svg
from nvcodec.train.data import Pack
from nvcodec.train.pack import DEFAULT_PACK, REPO
from nvcodec.train.packed import unpack_frame
from nvcodec.train.refine_data import (
    ENHANCE,
    EVAL_CLIP,
    FILTER,
    PATCH,
    STAGES,
    EvalSet,
    Pairs,
    Stage,
    build_eval,
    build_pairs,
    codec_fingerprint,
    coder_identity,
    floats,
)
from nvcodec.weights import REPO_WEIGHTS, default_weights_path, load_weights, save_weights

TRAINING = REPO / "training"


@torch.no_grad()
def evaluate(
    stage: Stage, refiner: ResidualRefiner, evalset: EvalSet, device: torch.device
) -> dict[str, dict]:
    """Per qp: the mean PSNR-YUV of what the refiner sees and of the result where the encoder's
    rule uses it (lower weighted MSE), the frames it is used on, and the bits."""
    target = floats(evalset.sources).to(device)
    measure = _enhanced_psnr if stage is ENHANCE else _filtered_psnr
    rows = {}
    for qp, seen in evalset.inputs.items():
        before, after, used = measure(refiner, floats(seen).to(device), target, evalset.sources)
        rows[str(qp)] = {
            "psnr_yuv": round(before, 4),
            "psnr_yuv_refined": round(after, 4),
            "flagged": used,
            "bits": evalset.bits[qp],
        }
    return rows


def _enhanced_psnr(
    enhancer: ResidualRefiner, x_hat: torch.Tensor, target: torch.Tensor, sources: np.ndarray
) -> tuple[float, float, int]:
    """metrics.frame_psnr, as the benchmarks measure it, of the decoded frames and of what a
    decoder shows, the encoder flagging enhancement by its own rule (should_enhance)."""
    shown = quantize_pixels(enhancer(x_hat))
    plain_mse, shown_mse = weighted_mse(x_hat, target).tolist(), weighted_mse(shown, target).tolist()
    flags = [should_enhance(a, b) for a, b in zip(plain_mse, shown_mse)]
    originals = [unpack_frame(s) for s in sources]
    plain = [unpack_frame(to_levels(d)) for d in x_hat]
    pictures = [unpack_frame(to_levels(e)) if f else p for e, f, p in zip(shown, flags, plain)]
    return _mean_psnr(originals, plain), _mean_psnr(originals, pictures), sum(flags)


def _filtered_psnr(
    context_filter: ResidualRefiner, prediction: torch.Tensor, target: torch.Tensor, sources: np.ndarray
) -> tuple[float, float, int]:
    """PSNR of the 6:1:1-weighted MSE of the predictions, plain and filtered where that lowers it."""
    plain = weighted_mse(prediction, target)
    filtered = torch.minimum(plain, weighted_mse(context_filter(prediction), target))
    mean = [sum(psnr_from_mse(float(m), peak=1.0) for m in mse) / len(mse) for mse in (plain, filtered)]
    return mean[0], mean[1], int((filtered < plain).sum())


def _mean_psnr(sources: list[Frame], pictures: list[Frame]) -> float:
    return sum(frame_psnr(s, p).yuv for s, p in zip(sources, pictures)) / len(sources)


def to_levels(x: torch.Tensor) -> np.ndarray:
    """A (6, h, w) tensor on the 8-bit grid as uint8 levels."""
    return torch.round(x * 255).to(torch.uint8).cpu().numpy()


def as_released(model: ResidualRefiner) -> ResidualRefiner:
    """A copy with its weights rounded to fp16, as the weights file stores them."""
    return copy.deepcopy(model).half().float()


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
    """A refiner, its optimiser and the state a checkpoint keeps."""

    def __init__(self, model: ResidualRefiner, args: argparse.Namespace, device: torch.device) -> None:
        self.model, self.args, self.device = model.to(device).train(), args, device
        self.optimiser = torch.optim.Adam(self.model.parameters(), lr=args.lr)
        self.progress = Progress()

    @property
    def lr(self) -> float:
        return learning_rate(self.progress.step, self.args.lr, self.args.half_life)

    def state(self) -> dict:
        return {
            "refiner": self.model.state_dict(),
            "optimiser": self.optimiser.state_dict(),
            "progress": asdict(self.progress),
            "rng": rng_state(cuda=self.device.type == "cuda"),
        }

    def restore(self, state: dict) -> None:
        self.model.load_state_dict(state["refiner"])
        self.optimiser.load_state_dict(state["optimiser"])
        self.progress = Progress(**state["progress"])
        restore_rng(state["rng"])

    def step(self, pairs: Pairs) -> torch.Tensor:
        """One optimiser step on a batch; returns the loss as a tensor (no host sync)."""
        for group in self.optimiser.param_groups:
            group["lr"] = self.lr
        seen, source = (t.to(self.device, non_blocking=True) for t in pairs.batch(self.args.batch))
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            loss = weighted_mse(self.model(seen).float(), source).mean()
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        self.optimiser.step()
        self.progress.step += 1
        return loss.detach()


class StopFlag:
    """Ctrl-C or SIGTERM while installed: the first asks the loop to stop at the next step (it
    checkpoints first), a second stops at once (the last checkpoint on disk stays whole)."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self, signum: int, frame: object) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nstopping: writing a checkpoint first (again to stop at once)", file=sys.stderr)


@contextmanager
def deferred_stop() -> Iterator[StopFlag]:
    flag = StopFlag()
    previous = {sig: signal.signal(sig, flag) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_folder_files(run: Path) -> dict[str, Path]:
    names = ("pairs.npz", "eval.npz", "checkpoint.pt", "log.jsonl", "curves.svg", "candidate.safetensors")
    return {name.split(".")[0]: run / name for name in names}


TITLES = {ENHANCE.name: "Out-of-loop enhancement", FILTER.name: "In-loop filter (prediction)"}


def plot(log: list[dict], path: Path) -> None:
    """PSNR gain of the refined pictures over what the refiner sees, per evaluation qp, against
    steps; a new line per qp where the evaluation set changed (the codec under the run changed)."""
    sets = list(dict.fromkeys(row.get("eval_set", "") for row in log))
    series: dict[str, list[tuple[float, float]]] = {}
    for row in log:
        for qp, r in row["eval"].items():
            name = f"qp {qp}" + (f", set {sets.index(row.get('eval_set', '')) + 1}" if len(sets) > 1 else "")
            series.setdefault(name, []).append((row["step"], r["psnr_yuv_refined"] - r["psnr_yuv"]))
    clip = log[-1].get("eval_clip", EVAL_CLIP.name)
    title = TITLES[log[-1].get("stage", ENHANCE.name)]
    write_svg(path, series, f"{title} on {clip}", "training steps", "PSNR-YUV gain (dB)")


class Run:
    """A training run in its folder: data built once, chunks that resume, evaluations logged."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args, self.stage = args, STAGES[args.stage]
        self.files = run_folder_files(args.run)
        args.run.mkdir(parents=True, exist_ok=True)
        self.device = torch.device(args.device)
        if self.device.type == "cuda":
            exact_float32_on_cuda()  # evaluate as the codec decides: no TF32
        self.weights = load_weights(args.weights)
        self.codec = codec_fingerprint(self.weights.model, self.stage)
        self.trainer = Trainer(self.stage.refiner(self.weights.model), args, self.device)
        state = load_checkpoint(self.files["checkpoint"])
        if state is not None:
            if state.get("codec", self.codec) != self.codec:
                raise InputError(
                    f"{args.run} trains a refiner for another codec ({state['codec']}, not the "
                    f"{self.codec} of {args.weights}): start a new --run folder"
                )
            self.trainer.restore(state)
        self.log = self._read_log()

    def _read_log(self) -> list[dict]:
        """The log up to the checkpoint, written back without the rows of lost steps."""
        path = self.files["log"]
        rows = [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
        kept = [r for r in rows if r["step"] <= self.trainer.progress.step]
        if len(kept) < len(rows):
            write_file(path, "".join(json.dumps(r) + "\n" for r in kept))
        return kept

    def data(self) -> tuple[Pairs, EvalSet]:
        """The cached pairs and evaluation set, coded again when the coder that made them changed."""
        files, args = self.files, self.args
        coder = coder_identity(self.weights, self.stage)
        pairs = Pairs.load(files["pairs"]) if files["pairs"].is_file() else None
        if pairs is None or pairs.meta.get("coder") != coder:
            pairs = build_pairs(self.weights, Pack(args.pack), self.device, self.stage)
            pairs.save(files["pairs"])
        evalset = EvalSet.load(files["eval"]) if files["eval"].is_file() else None
        if evalset is None or evalset.coder != coder or evalset.clip != args.eval_clip.name:
            evalset = build_eval(self.weights, args.eval_clip, self.device, self.stage)
            evalset.save(files["eval"])
        if self.log and self.log[-1].get("eval_set") not in (None, evalset.fingerprint):
            print("the evaluation set changed (the codec or its schedule did): the curves start new lines",
                  file=sys.stderr)  # fmt: skip
        return pairs, evalset

    def checkpoint(self, pairs: Pairs, evalset: EvalSet, losses: list[torch.Tensor], seconds: float) -> dict:
        """Evaluate, then write the checkpoint, the candidate weights, the log and the curves."""
        progress, model = self.trainer.progress, self.trainer.model
        model.eval()
        row = {
            "step": progress.step,
            "train_seconds": round(progress.seconds, 1),
            "loss_psnr": round(psnr_from_mse(float(torch.stack(losses).mean()), peak=1.0), 3)
            if losses
            else None,
            "mpixels_per_second": round(
                len(losses) * self.args.batch * (2 * PATCH) ** 2 / max(seconds, 1e-9) / 1e6, 3
            ),
            "stage": self.stage.name,
            "device": self.device.type,
            "lr": self.trainer.lr,
            "batch": self.args.batch,
            "eval_clip": evalset.clip,
            "eval_set": evalset.fingerprint,
            "measure": evalset.measure,
            "eval": evaluate(self.stage, as_released(model), evalset, self.device),
        }
        model.train()
        state = self.trainer.state() | {"codec": self.codec}
        save_checkpoint(self.files["checkpoint"], state)
        self._candidate(row, pairs.meta)
        self.log.append(row)
        write_file(self.files["log"], "".join(json.dumps(r) + "\n" for r in self.log))
        plot(self.log, self.files["curves"])
        return row

    def _candidate(self, row: dict, data: dict) -> None:
        sha = save_weights(self.weights.model, self.files["candidate"])  # its refiner is the trainer's
        history = {
            "stage": f"{self.stage.name}: gradient training of the {self.stage.module} on "
            f"{self.stage.sees} (distortion only)",
            "steps": row["step"],
            "train_seconds": row["train_seconds"],
            "device": row["device"],
            "threads": self.args.threads,
            "started_from": {"sha256": self.weights.sha256.hex(), "history": self._start_history()},
            "data": data,
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

    def train(self, minutes: float) -> tuple[dict | None, bool]:
        """Train for `minutes`, checkpointing every --checkpoint-minutes; returns the last log row
        and whether a signal stopped it early."""
        pairs, evalset = self.data()
        if not self.log:
            self.checkpoint(pairs, evalset, [], 1.0)  # the start, step 0
        progress, args = self.trainer.progress, self.args
        end = time.monotonic() + 60 * minutes
        row = None
        with (
            deferred_stop() as stop,
            tqdm(desc="training", unit="step", initial=progress.step, file=sys.stderr) as bar,
        ):
            while time.monotonic() < end and not stop.requested:
                chunk_end = min(end, time.monotonic() + 60 * args.checkpoint_minutes)
                started, losses = time.monotonic(), []
                while time.monotonic() < chunk_end and not stop.requested:
                    losses.append(self.trainer.step(pairs))
                    bar.update()
                seconds = time.monotonic() - started
                progress.seconds += seconds
                row = self.checkpoint(pairs, evalset, losses, seconds)
                gains = {qp: round(r["psnr_yuv_refined"] - r["psnr_yuv"], 3) for qp, r in row["eval"].items()}
                bar.set_postfix(loss_psnr=row["loss_psnr"], gain_db=gains)
            return row, stop.requested


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nvcodec.train.refine", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--stage", choices=sorted(STAGES), default=ENHANCE.name, help="the refiner to train")
    parser.add_argument("--run", type=Path, help="the run folder (created, or resumed); training/STAGE")
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
    args.run = args.run or TRAINING / args.stage
    torch.set_num_threads(args.threads)
    for sig in (signal.SIGINT, signal.SIGTERM):  # a background run (nohup ... &) ignores SIGINT
        signal.signal(sig, _interrupt)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    try:
        if args.device == "cuda" and not torch.cuda.is_available():
            raise InputError("--device cuda: no CUDA device is available")
        row, stopped = Run(args).train(args.minutes)
    except NvcError as err:
        print(f"refine: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"refine: interrupted; {args.run} resumes from its last checkpoint", file=sys.stderr)
        return 130
    if row is not None:
        print(json.dumps(row))
    if stopped:
        print(f"refine: stopped; {args.run} resumes from this checkpoint", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
