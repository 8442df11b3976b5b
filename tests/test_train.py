"""The training pipeline at `tiny` size: pack builder, sampler, every stage, checkpoints, DDP."""

import json
import os
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from nvcodec.models.config import TINY
from nvcodec.models.nvc import NvcModel
from nvcodec.train.checkpoint import load_checkpoint, read_state, save_checkpoint
from nvcodec.train.data import Pack, Sampler
from nvcodec.train.losses import SequenceLoss
from nvcodec.train.pack import ClipSource, PackSources, collect, write_pack
from nvcodec.train.packed import hflip, pack_frame, vflip
from nvcodec.train.release import main as release_main
from nvcodec.train.stages import STAGES
from nvcodec.train.trainer import RunOptions, train
from nvcodec.weights import load_weights, random_model, save_weights

SMALL = dict(batch=2, crop=64)


@pytest.fixture(scope="module")
def pack_path(tmp_path_factory, make_video) -> Path:
    """A pack built from generated images and clips (nothing from ../shared)."""
    d = tmp_path_factory.mktemp("data")
    for i in range(3):
        make_video(d / f"photo{i}_%d.png", 200, 150, 1, seed=i)
        make_video(d / f"crop{i}_%d.png", 300, 260, 1, seed=10 + i)
    make_video(d / "clip.y4m", 160, 128, 20, seed=20)
    make_video(d / "eval.y4m", 96, 64, 3, seed=30)
    sources = PackSources(
        photos=[str(d / f"photo{i}_1.png") for i in range(3)],
        crops=[str(d / f"crop{i}_1.png") for i in range(3)],
        clips=[ClipSource(str(d / "clip.y4m"), start=4, windows=2, length=6, crop=(128, 96))],
        eval_clip=ClipSource(str(d / "eval.y4m"), length=3),
    )
    arrays, manifest = collect(sources, quiet=True)
    path = d / "pack.npz"
    write_pack(arrays, manifest, path, budget_mib=40)
    return path


def test_pack_holds_what_was_asked(pack_path, make_video, tmp_path):
    pack = Pack(pack_path)
    assert len(pack.photos) == 3 and len(pack.crops) == 3 and len(pack.clips) == 2
    assert pack.photos[0].shape == (6, 75, 100) and pack.photos[0].dtype == np.uint8
    assert pack.crops[0].shape == (6, 128, 128)
    assert pack.clips[0].shape == (6, 6, 48, 64)
    assert pack.manifest["counts"] == {"photo": 3, "crop": 3, "clip": 2}
    expected = make_video(tmp_path / "again.y4m", 96, 64, 3, seed=30)
    assert pack.eval_frames() == expected  # stored exactly, apart from the training arrays


def test_pack_refuses_to_exceed_its_budget(pack_path, tmp_path):
    arrays = {"noise": np.random.default_rng(0).integers(0, 256, size=2**20, dtype=np.uint8)}
    with pytest.raises(Exception, match="over the budget"):
        write_pack(arrays, {}, tmp_path / "big.npz", budget_mib=0.5)
    assert not (tmp_path / "big.npz").exists()


def test_packed_layout_and_flips(make_video, tmp_path):
    frame = make_video(tmp_path / "f.y4m", 8, 6, 1)[0]
    packed = torch.from_numpy(pack_frame(frame)).float()
    y = torch.from_numpy(frame.y).float()
    assert torch.equal(packed[1], y[0::2, 1::2])
    # flipping the packed picture equals packing the flipped picture
    flipped = torch.from_numpy(np.ascontiguousarray(frame.y[:, ::-1]))
    assert torch.equal(hflip(packed)[:4], torch.stack([flipped[0::2, 0::2], flipped[0::2, 1::2],
                                                       flipped[1::2, 0::2], flipped[1::2, 1::2]]).float())  # fmt: skip
    assert torch.equal(vflip(vflip(packed)), packed)


def test_sampler_batches(pack_path):
    pack = Pack(pack_path)
    for frames in (1, 3, 8):  # 8 frames: longer than the clips, so synthetic motion fills in
        batch = Sampler(pack, frames, 64, 3, synthetic_share=0.5, seed=1).sample()
        assert batch.shape == (3, frames, 6, 32, 32)
        assert 0 <= batch.min() and batch.max() <= 1
        assert torch.equal(torch.round(batch * 255), batch * 255)  # on the 8-bit grid


@pytest.mark.parametrize("stage", ["intra", "inter2"])
def test_loss_decreases_on_a_fixed_batch(pack_path, stage):
    torch.manual_seed(0)
    model = NvcModel(TINY)
    s = STAGES[stage].with_overrides(**SMALL)
    batch = Sampler(Pack(pack_path), s.frames, s.crop, s.batch, 0.5, seed=2).sample()
    params = [p for n, p in model.named_parameters() if any(n.startswith(t) for t in s.train)]
    optimizer = torch.optim.Adam(params, lr=3e-3)
    loss_fn = SequenceLoss(model, s)
    losses = []
    for _ in range(25):
        loss, _ = loss_fn(batch, 40, [False] * s.frames)
        assert torch.isfinite(loss)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5]), losses


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    model = NvcModel(TINY)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.intra.analysis[0].weight.sum().backward()
    optimizer.step()
    save_checkpoint(tmp_path / "ck", model, optimizer, {"steps": {"intra": 1}})
    save_checkpoint(tmp_path / "ck", model, optimizer, {"steps": {"intra": 2}})  # replaces it whole
    other = NvcModel(TINY)
    other_opt = torch.optim.Adam(other.parameters(), lr=1e-3)
    state = load_checkpoint(tmp_path / "ck", other, other_opt)
    assert state["steps"] == {"intra": 2}
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), other.state_dict().values()))
    saved, loaded = optimizer.state_dict()["state"], other_opt.state_dict()["state"]
    assert saved.keys() == loaded.keys()
    assert all(torch.equal(saved[k]["exp_avg"], loaded[k]["exp_avg"]) for k in saved)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]  # no temporary folders left


def test_every_stage_runs_and_resumes(pack_path, tmp_path):
    run = tmp_path / "run"
    for name in ("intra", "inter2", "inter", "index", "confre"):
        stage = STAGES[name].with_overrides(steps=2, frames=3 if name == "inter" else None, **SMALL)
        options = RunOptions(
            run=run, stage=stage, config="tiny", pack=pack_path, log_every=1, evaluate=name == "confre"
        )
        state = train(options)
        assert state["steps"][name] == 2
    more = replace(options, stage=options.stage.with_overrides(steps=3))
    assert train(more)["steps"]["confre"] == 3  # continued from the checkpoint
    log = (run / "train.log").read_text().splitlines()
    assert len(log) == 11 and all('"loss": ' in line and "NaN" not in line for line in log)
    assert (run / "eval.jsonl").read_text().count('"psnr_yuv"') == 3 * 2  # eval qps x chunks


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_with_two_processes(pack_path, tmp_path):
    """DDP on the CPU (gloo): two processes train one model; rank 0 writes the checkpoint."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
        f"--master_port={free_port()}", "-m", "nvcodec.train", "inter2", "--run-dir", str(tmp_path / "ddp"),
        "--config", "tiny", "--pack", str(pack_path), "--steps", "3", "--batch", "2", "--crop", "64", "--no-eval",
        "--minutes", "5",
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert read_state(tmp_path / "ddp" / "checkpoint")["steps"] == {"inter2": 3}


def fake_rd(directory: Path, sha: str, psnr_shift: float) -> None:
    """An RD result as benchmarks.rd writes it, for weights `sha`, shifted in quality."""
    directory.mkdir(parents=True, exist_ok=True)
    nv = [{"qp": q, "bits": b, "kbps": b / 1000, "bpp": b / 1e5, "psnr_y": p, "psnr_yuv": p + psnr_shift}
          for q, b, p in ((10, 80000, 38.0), (30, 40000, 35.0), (50, 20000, 32.0), (60, 10000, 29.0))]  # fmt: skip
    x264 = [{"qp": q, "bits": b, "psnr_yuv": p} for q, b, p in ((22, 90000, 39.0), (32, 30000, 34.0),
                                                                (37, 15000, 31.0), (42, 8000, 28.5))]  # fmt: skip
    result = {"clip": "foreman", "frames": 4, "nvcodec": nv, "anchors": {"x264": x264},
              "environment": {"weights": {"sha256": sha}}}  # fmt: skip
    (directory / "rd_foreman.json").write_text(json.dumps(result))


def test_release_records_rd_and_refuses_a_regression(pack_path, tmp_path):
    run = tmp_path / "run"
    train(RunOptions(run=run, stage=STAGES["intra"].with_overrides(steps=1, **SMALL), config="tiny",
                     pack=pack_path, evaluate=False))  # fmt: skip
    out = tmp_path / "weights" / "tiny.safetensors"
    out.parent.mkdir()
    assert release_main(["--run-dir", str(run), "--out", str(out)]) == 0
    sha = load_weights(out).sha256.hex()
    assert not (out.parent / "manifest.json").exists()  # weights only, to be measured
    fake_rd(tmp_path / "rd", sha, 0.0)
    assert release_main(["--run-dir", str(run), "--out", str(out), "--rd-dir", str(tmp_path / "rd")]) == 0
    manifest = json.loads((out.parent / "manifest.json").read_text())
    assert manifest["sha256"] == sha and manifest["training"]["intra"]["steps"] == 1
    assert manifest["parameters"] == sum(p.numel() for p in NvcModel(TINY).parameters())
    assert manifest["rd"]["foreman"]["bd_rate_percent"]["x264"] is not None
    assert manifest["rd"]["foreman"]["bd_psnr_db"]["x264"] is not None
    assert manifest["data"]["counts"] == {"photo": 3, "crop": 3, "clip": 2}
    fake_rd(tmp_path / "worse", sha, -1.0)  # same weights measured 1 dB worse: a regression
    assert release_main(["--run-dir", str(run), "--out", str(out), "--rd-dir", str(tmp_path / "worse")]) == 5
    fake_rd(tmp_path / "other", "ab" * 32, 0.0)
    assert release_main(["--run-dir", str(run), "--out", str(out), "--rd-dir", str(tmp_path / "other")]) == 5


def test_a_new_run_can_start_from_released_weights(pack_path, tmp_path):
    released = tmp_path / "w.safetensors"
    save_weights(random_model(TINY, seed=9), released)
    stage = STAGES["inter2"].with_overrides(steps=1, **SMALL)
    state = train(RunOptions(run=tmp_path / "run", stage=stage, config="tiny", pack=pack_path, init=released,
                             evaluate=False))  # fmt: skip
    assert state["init"]["sha256"] == load_weights(released).sha256.hex()
    model = NvcModel(TINY)
    load_checkpoint(tmp_path / "run" / "checkpoint", model)
    start = load_weights(released).model.state_dict()
    intra = [n for n in start if n.startswith("intra.")]  # frozen in inter2: still the released values
    assert all(torch.equal(model.state_dict()[n], start[n]) for n in intra)
