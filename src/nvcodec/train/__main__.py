"""python -m nvcodec.train STAGE --run DIR [options]: train (or continue) one stage.

Stages, in order: intra, inter2, inter, index, confre (see nvcodec/train/stages.py). Each call
continues the run's checkpoint; --minutes makes a time-boxed chunk that ends with a checkpoint and a
short evaluation. Under torchrun every process trains on its own data (DistributedDataParallel).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from nvcodec.errors import NvcError
from nvcodec.train.pack import DEFAULT_DATA, DEFAULT_PACK
from nvcodec.train.stages import STAGES, get_stage
from nvcodec.train.trainer import RunOptions, train


def _stop_on_sigterm() -> None:
    """Treat SIGTERM (a scheduler's stop) like Ctrl-C: save a checkpoint, then exit."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nvcodec.train", description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=list(STAGES))
    parser.add_argument(
        "--run-dir", dest="run", type=Path, required=True, help="run directory (checkpoint, logs)"
    )
    parser.add_argument("--config", default="base")
    parser.add_argument("--pack", type=Path, default=DEFAULT_PACK)
    parser.add_argument("--steps", type=int, help="planned steps of the stage (default: the stage's)")
    parser.add_argument("--minutes", type=float, help="stop after this long, with a checkpoint")
    parser.add_argument("--batch", type=int)
    parser.add_argument("--crop", type=int)
    parser.add_argument("--frames", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--spynet", type=Path, default=DEFAULT_DATA / "pretrained" / "spynet",
                        help="pretrained SpyNet arrays for a new run (ignored when absent)")  # fmt: skip
    parser.add_argument(
        "--init", type=Path, help="start a new run from these weights (e.g. weights/base.safetensors)"
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--save-every", type=int, default=200)
    parser.add_argument("--log-every", type=int, default=20)
    parser.add_argument("--no-eval", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="train: %(message)s")
    logging.getLogger("nvcodec.io").setLevel(logging.ERROR)
    stage = get_stage(args.stage).with_overrides(
        steps=args.steps, batch=args.batch, crop=args.crop, frames=args.frames, lr=args.lr
    )
    spynet = args.spynet if args.spynet.is_dir() and args.config == "base" else None
    options = RunOptions(run=args.run, stage=stage, config=args.config, pack=args.pack, minutes=args.minutes,
                         seed=args.seed, spynet=spynet, init=args.init, device=args.device, save_every=args.save_every,
                         log_every=args.log_every, evaluate=not args.no_eval)  # fmt: skip
    _stop_on_sigterm()
    try:
        state = train(options)
    except NvcError as err:
        print(f"train: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("train: interrupted; the checkpoint holds the last step", file=sys.stderr)
        return 130
    print(f"train: {stage.name} at step {state['steps'][stage.name]} of {stage.steps}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
