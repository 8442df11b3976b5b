"""The training loop: one stage, resumable, in time-boxed chunks, on one process or under torchrun.

A run directory holds `checkpoint/` (the latest state), `train.log` (one JSON line per logged step)
and `eval.jsonl` (a short real-codec evaluation at the end of each chunk).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from nvcodec.errors import InputError
from nvcodec.models.config import get_config
from nvcodec.models.nvc import NvcModel
from nvcodec.train.checkpoint import load_checkpoint, read_state, save_checkpoint
from nvcodec.train.data import Pack, Sampler
from nvcodec.train.evaluate import rd_points
from nvcodec.train.losses import SequenceLoss
from nvcodec.train.stages import Stage
from nvcodec.weights import load_weights

log = logging.getLogger(__name__)
EVAL_QPS = (12, 32, 52)
CLIP_NORM = 1.0


@dataclass(frozen=True)
class RunOptions:
    run: Path
    stage: Stage
    config: str
    pack: Path
    minutes: float | None = None  # stop (with a checkpoint) after this long
    seed: int = 0
    spynet: Path | None = None  # pretrained arrays for a new run
    init: Path | None = None  # a new run starts from these weights (e.g. the released ones)
    device: str = "auto"
    save_every: int = 200
    log_every: int = 20
    evaluate: bool = True


def _rank() -> tuple[int, int]:
    """(rank, world size), initialising torch.distributed when started by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def _device(name: str, rank: int) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        return torch.device("cuda", rank % torch.cuda.device_count())
    return torch.device(name)


def _new_state(options: RunOptions) -> dict:
    return {"config": options.config, "steps": {}, "stage": None, "seconds": {}}


def _open_model(options: RunOptions) -> tuple[NvcModel, dict]:
    """The run's model: from its checkpoint, or new (SpyNet from the pretrained arrays)."""
    directory = options.run / "checkpoint"
    state = read_state(directory)
    torch.manual_seed(options.seed)
    model = NvcModel(get_config(options.config))
    if state is None:
        state = _new_state(options)
        if options.init is not None:
            released = load_weights(options.init)
            if released.config.name != options.config:
                raise InputError(f"{options.init} holds {released.config.name!r}, not {options.config!r}")
            model.load_state_dict(released.model.state_dict())
            state["init"] = {"weights": str(options.init), "sha256": released.sha256.hex()}
        elif options.spynet is not None:
            model.inter.motion_estimator.spynet.load_pretrained(options.spynet)
        return model, state
    if state["config"] != options.config:
        raise InputError(f"{options.run} trains {state['config']!r}, not {options.config!r}")
    load_checkpoint(directory, model)
    return model, state


def _trainable(model: NvcModel, stage: Stage) -> list[torch.nn.Parameter]:
    params = []
    for name, p in model.named_parameters():
        p.requires_grad_(any(name.startswith(prefix) for prefix in stage.train))
        if p.requires_grad:
            params.append(p)
    return params


class _Logger:
    """JSON lines into the run's train.log (rank 0 only)."""

    def __init__(self, run: Path, active: bool) -> None:
        self.path, self.active = run / "train.log", active

    def write(self, record: dict) -> None:
        if self.active:
            with self.path.open("a") as f:
                f.write(json.dumps(record) + "\n")


def train(options: RunOptions) -> dict:
    """Run (or continue) a stage until its planned steps or the time limit; returns the state."""
    rank, world = _rank()
    stage = options.stage
    options.run.mkdir(parents=True, exist_ok=True)
    device = _device(options.device, rank)
    model, state = _open_model(options)
    model.to(device).train()
    params = _trainable(model, stage)
    optimizer = torch.optim.Adam(params, lr=stage.lr)
    if state.get("stage") == stage.name and (options.run / "checkpoint").is_dir():
        load_checkpoint(options.run / "checkpoint", model, optimizer)
    loss_fn: torch.nn.Module = SequenceLoss(model, stage)
    if world > 1:
        loss_fn = torch.nn.parallel.DistributedDataParallel(loss_fn, find_unused_parameters=True)
    step = state["steps"].get(stage.name, 0)
    pack = Pack(options.pack)
    state["pack"] = pack.summary()
    sampler = Sampler(
        pack, stage.frames, stage.crop, stage.batch, stage.synthetic_share, options.seed * 7919 + rank + step
    )
    rng = np.random.default_rng([options.seed, rank, step])
    logger = _Logger(options.run, rank == 0)
    began, spent = time.monotonic(), state["seconds"].get(stage.name, 0)
    bar = tqdm(total=stage.steps, initial=step, desc=stage.name, unit="step", disable=rank != 0)
    interrupted = False
    try:
        while step < stage.steps:
            if _time_up(options.minutes, began, world, device):
                break
            metrics = _step(loss_fn, optimizer, params, sampler, rng, stage, step, device)
            step += 1
            bar.update(1)
            if step % options.log_every == 0 or step == 1:
                logger.write(
                    {"stage": stage.name, "step": step, **metrics, "time": round(time.monotonic() - began, 1)}
                )
                bar.set_postfix(
                    loss=f"{metrics['loss']:.3f}", bpp=f"{metrics['bpp']:.3f}", psnr=f"{metrics['psnr']:.2f}"
                )
            if rank == 0 and step % options.save_every == 0:
                _save(options, model, optimizer, state, step, spent + time.monotonic() - began)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
    state["steps"][stage.name] = step
    if rank == 0:
        _save(options, model, optimizer, state, step, spent + time.monotonic() - began)
        if options.evaluate and not interrupted:
            _evaluate(options, model, pack, state)
    if world > 1:
        dist.barrier()
    if interrupted:
        raise KeyboardInterrupt
    return state


def _time_up(minutes: float | None, began: float, world: int, device: torch.device) -> bool:
    """Whether the chunk's time is over; under torchrun every process stops at the same step."""
    if minutes is None:
        return False
    late = torch.tensor([float(time.monotonic() - began > 60 * minutes)], device=device)
    if world > 1:
        dist.all_reduce(late, op=dist.ReduceOp.MAX)
    return bool(late.item())


def _step(loss_fn, optimizer, params, sampler: Sampler, rng, stage: Stage, step: int, device) -> dict:
    for group in optimizer.param_groups:
        group["lr"] = stage.lr_at(step)
    batch = sampler.sample().to(device)
    qp = int(rng.integers(0, 64))
    refresh = [t > 1 and rng.random() < stage.refresh_chance for t in range(stage.frames)]
    loss, metrics = loss_fn(batch, qp, refresh)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, CLIP_NORM)
    optimizer.step()
    return {"qp": qp, **metrics}


def _save(options: RunOptions, model, optimizer, state: dict, step: int, seconds: float) -> None:
    stage = options.stage
    state["steps"][stage.name] = step
    state["seconds"][stage.name] = round(seconds)
    state["stage"] = stage.name
    state["stage_config"] = asdict(stage)
    state["device"] = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    save_checkpoint(options.run / "checkpoint", model, optimizer, state)


def _evaluate(options: RunOptions, model: NvcModel, pack: Pack, state: dict) -> None:
    frames = pack.eval_frames()
    if not frames:
        return
    points = rd_points(model, frames, EVAL_QPS)
    record = {"stage": options.stage.name, "steps": dict(state["steps"]), "points": points}
    with (options.run / "eval.jsonl").open("a") as f:
        f.write(json.dumps(record) + "\n")
    log.info("eval %s", ", ".join(f"qp {p['qp']}: {p['bpp']:.3f} bpp {p['psnr_yuv']:.2f} dB" for p in points))
