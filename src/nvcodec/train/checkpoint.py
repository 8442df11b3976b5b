"""Resumable checkpoints: model and optimizer tensors in safetensors shards under 16 MiB each
(so a checkpoint travels in any 16 MiB file limit), plus a JSON state. Written atomically."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from nvcodec.errors import WeightsError

SHARD_BYTES = 15 * 2**20
STATE = "state.json"


def _shards(tensors: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        nbytes = t.numel() * t.element_size()
        if shards[-1] and size + nbytes > SHARD_BYTES:
            shards.append({})
            size = 0
        shards[-1][name] = t
        size += nbytes
    return shards


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Flatten the optimizer state to named tensors plus its JSON-able remainder."""
    state = optimizer.state_dict()
    tensors = {}
    for index, entries in state["state"].items():
        for key, value in entries.items():
            tensors[f"{index}.{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
    return tensors, {"param_groups": state["param_groups"]}


def _restore_optimizer(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict
) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, t in tensors.items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = t
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_checkpoint(
    directory: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None, state: dict
) -> None:
    """Replace `directory` with a complete new checkpoint (never a half-written one)."""
    directory = Path(directory)
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for i, shard in enumerate(_shards(model.state_dict())):
        save_file(shard, str(tmp / f"model-{i:02d}.safetensors"))
    state = dict(state)
    if optimizer is not None:
        tensors, state["optimizer"] = _optimizer_tensors(optimizer)
        for i, shard in enumerate(_shards(tensors)):
            save_file(shard, str(tmp / f"optim-{i:02d}.safetensors"))
    (tmp / STATE).write_text(json.dumps(state, indent=1))
    old = directory.with_name(directory.name + ".old")
    if directory.exists():
        os.replace(directory, old)
    os.replace(tmp, directory)
    shutil.rmtree(old, ignore_errors=True)


def _load_group(directory: Path, prefix: str) -> dict[str, torch.Tensor]:
    tensors: dict[str, torch.Tensor] = {}
    for path in sorted(directory.glob(f"{prefix}-*.safetensors")):
        tensors.update(load_file(str(path)))
    return tensors


def read_state(directory: Path) -> dict | None:
    """The JSON state of a checkpoint, or None when there is none."""
    path = Path(directory) / STATE
    return json.loads(path.read_text()) if path.is_file() else None


def load_checkpoint(
    directory: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None
) -> dict:
    """Load the model (and the optimizer, when given and saved); returns the state."""
    directory = Path(directory)
    state = read_state(directory)
    if state is None:
        raise WeightsError(f"{directory}: no checkpoint")
    missing, unexpected = model.load_state_dict(_load_group(directory, "model"), strict=False)
    if missing or unexpected:
        raise WeightsError(
            f"{directory}: checkpoint does not fit the model ({len(missing)} missing, {len(unexpected)} unknown)"
        )
    if optimizer is not None and "optimizer" in state:
        _restore_optimizer(optimizer, _load_group(directory, "optim"), state["optimizer"])
    return state
