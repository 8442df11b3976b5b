"""The training pipeline at `tiny` size: pack builder, sampler, every stage, checkpoints, DDP."""

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from nvcodec.entropy.tables import NUM_TABLES, SCALES
from nvcodec.models.blocks import ResidualRefiner
from nvcodec.models.config import TINY
from nvcodec.models.motion import MotionField
from nvcodec.models.nvc import NvcModel
from nvcodec.train import refine
from nvcodec.train.checkpoint import load_checkpoint, save_checkpoint
from nvcodec.train.curves import render_svg
from nvcodec.train.data import Pack
from nvcodec.train.fit import Counts, encode_clip
from nvcodec.train.fit import main as fit_main
from nvcodec.train.pack import ClipSource, PackSources, collect, write_pack
from nvcodec.train.packed import pack_frame, unpack_frame
from nvcodec.train.refine_data import (
    ENHANCE,
    EVAL_QPS,
    FILTER,
    EvalSet,
    Pairs,
    code_frames,
    codec_fingerprint,
)
from nvcodec.train.release import main as release_main
from nvcodec.weights import Weights, load_weights, random_model, save_weights


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


def test_packed_layout_round_trips(make_video, tmp_path):
    frame = make_video(tmp_path / "f.y4m", 32, 16, 1, seed=4)[0]
    packed = pack_frame(frame)
    assert packed.shape == (6, 8, 16)
    assert np.array_equal(packed[1], frame.y[0::2, 1::2])  # phase (row 0, column 1)
    assert unpack_frame(packed) == frame


def test_pack_refuses_to_exceed_its_budget(pack_path, tmp_path):
    arrays = {"noise": np.random.default_rng(0).integers(0, 256, size=2**20, dtype=np.uint8)}
    with pytest.raises(Exception, match="over the budget"):
        write_pack(arrays, {}, tmp_path / "big.npz", budget_mib=0.5)
    assert not (tmp_path / "big.npz").exists()


@pytest.fixture(scope="module")
def fitted(pack_path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fit") / "tiny.safetensors"
    argv = ["--pack", str(pack_path), "--out", str(out), "--config", "tiny", "--intra-qp-step", "16",
            "--inter-qps", "24,44", "--threads", "1"]  # fmt: skip
    assert fit_main(argv) == 0
    return out


def test_fit_predicts_the_coded_bits_and_beats_the_start(fitted, pack_path):
    """The fitted tables' code lengths are the real coder's, and they code better than the start."""
    history = json.loads(fitted.with_suffix(".json").read_text())
    for check in history["rate_check_eval_frames"].values():
        # each substream ends with the coder's 32-bit state and fills its last 32-bit word
        assert 0 <= check["coded"] - check["predicted"] < 0.01 * check["coded"] + 64 * check["substreams"]
    weights = load_weights(fitted)
    frames = Pack(pack_path).eval_frames()
    start = Weights(random_model(TINY), b"\0" * 32, "start")
    for qp in (24, 44):
        assert encode_clip(weights, frames, qp, Counts()) < encode_clip(start, frames, qp, Counts())


def test_fitted_tables_cover_every_qp(fitted):
    model = load_weights(fitted).model
    for codec in (model.intra.latent, model.inter.latent):
        table = codec.index_table.numpy()
        assert table.min() >= 0 and table.max() < len(model.table_radius)
    # steps grow with qp, so the scales the tables were fitted for shrink (same family, lower index)
    luma_dc = model.intra.latent.index_table[:, 0, 0].numpy() % SCALES
    assert luma_dc[0] > luma_dc[63]


def changed_parts(before: Weights, after: Weights) -> set[str]:
    """Names of the tensors that differ between two weights."""
    old = before.model.state_dict()
    return {name for name, value in after.model.state_dict().items() if not torch.equal(value, old[name])}


def test_refitting_the_intra_tables_leaves_everything_else(fitted, pack_path, tmp_path):
    """--refit intra starts from released weights and changes only the intra codec's tables and
    reconstruction offsets, and its history names what it started from."""
    start = load_weights(fitted)
    out = tmp_path / "refit.safetensors"
    argv = ["--pack", str(pack_path), "--out", str(out), "--refit", "intra", "--start", str(fitted),
            "--intra-qp-step", "8", "--threads", "1", "--passes", "1"]  # fmt: skip
    assert fit_main(argv) == 0
    changed = changed_parts(start, load_weights(out))
    assert changed and changed <= {"intra.latent.index_table", "intra.latent.recon_offset"}
    history = json.loads(out.with_suffix(".json").read_text())
    assert history["started_from"]["sha256"] == start.sha256.hex() and history["clips"] == 0


def test_refitting_the_vector_tables_leaves_everything_else(fitted, pack_path, tmp_path):
    """--refit motion codes clips as users do and changes only the vector tables, which may then
    name any of today's tables (the weights it starts from may hold fewer)."""
    start = load_weights(fitted)
    start.model.use_tables(start.model.table_radius[:240].clone(), start.model.table_counts[:240].clone())
    for name, table in start.model.named_buffers():
        if name.endswith("index_table"):
            table.clamp_(max=239)  # as weights released before 3 December 2026 are
    older = tmp_path / "older.safetensors"
    save_weights(start.model, older)
    out = tmp_path / "refit.safetensors"
    argv = ["--pack", str(pack_path), "--out", str(out), "--refit", "motion", "--start", str(older),
            "--clips", "2", "--inter-qps", "32", "--threads", "1", "--passes", "1"]  # fmt: skip
    assert fit_main(argv) == 0
    refit = load_weights(out)
    assert len(refit.model.table_radius) == NUM_TABLES
    refit.model.use_tables(start.model.table_radius, start.model.table_counts)  # compare the rest
    assert changed_parts(load_weights(older), refit) == {"inter.motion.index_table"}


def test_vector_counts_skip_flat_blocks_and_hold_the_deltas():
    """What the vector tables code: the differences of blocks that are not flat, in their
    buckets, and the split blocks' deltas, with the widest bucket's tables."""
    vectors = np.zeros((2, 3, 2), dtype=np.int64)
    vectors[0, 2] = (5, -2)  # difference (5, -2) from its left neighbour: bucket 0
    flat = np.zeros((2, 3), dtype=bool)
    flat[1, 0] = True  # not coded
    split = np.zeros((2, 3), dtype=bool)
    split[1, 1] = True
    deltas = np.zeros((2, 3, 4, 2), dtype=np.int64)
    deltas[1, 1] = [(1, 0), (0, 0), (0, 3), (0, 0)]
    counts = Counts()
    counts.add_vectors(20, MotionField(vectors, 16, flat, split, deltas))
    x, y = counts.vectors[20]
    assert x.sum() == y.sum() == 5 + 4  # five coded blocks, four units
    assert x[0, 5] == 1 and y[0, 2] == 1 and x[0, 0] == 2  # the first row: bucket 0
    # row 1's blocks (1, 1) and (1, 2) sit under (0, 2)'s difference of size 7: buckets 3 and 4
    assert x[3, 0] == 1 and x[4, 0] == 1 + 3 and x[4, 1] == 1 and y[4, 3] == 1


def fake_rd(directory: Path, sha: str, psnr_shift: float, frames: int = 4) -> None:
    """An RD result as benchmarks.rd writes it, for weights `sha`, shifted in quality."""
    directory.mkdir(parents=True, exist_ok=True)
    nv = [{"qp": q, "bits": b, "kbps": b / 1000, "bpp": b / 1e5, "psnr_y": p, "psnr_yuv": p + psnr_shift}
          for q, b, p in ((10, 80000, 38.0), (30, 40000, 35.0), (50, 20000, 32.0), (60, 10000, 29.0))]  # fmt: skip
    x264 = [{"qp": q, "bits": b, "psnr_yuv": p} for q, b, p in ((22, 90000, 39.0), (32, 30000, 34.0),
                                                                (37, 15000, 31.0), (42, 8000, 28.5))]  # fmt: skip
    result = {"clip": "foreman", "frames": frames, "nvcodec": nv, "anchors": {"x264": x264},
              "environment": {"weights": {"sha256": sha}}}  # fmt: skip
    (directory / "rd_foreman.json").write_text(json.dumps(result))


def test_release_records_rd_and_refuses_a_regression(fitted, tmp_path):
    out = tmp_path / "weights" / "tiny.safetensors"
    out.parent.mkdir()
    assert release_main(["--weights", str(fitted), "--out", str(out)]) == 0
    sha = load_weights(out).sha256.hex()
    assert not (out.parent / "manifest.json").exists()  # weights only, to be measured
    fake_rd(tmp_path / "rd", sha, 0.0)
    assert release_main(["--weights", str(fitted), "--out", str(out), "--rd-dir", str(tmp_path / "rd")]) == 0
    manifest = json.loads((out.parent / "manifest.json").read_text())
    assert manifest["sha256"] == sha and manifest["history"]["inter_qps"] == [24, 44]
    assert manifest["parameters"] == sum(p.numel() for p in NvcModel(TINY).parameters())
    assert manifest["rd"]["foreman"]["bd_rate_percent"]["x264"] is not None
    assert manifest["rd"]["foreman"]["bd_psnr_db"]["x264"] is not None
    assert manifest["history"]["data"]["counts"] == {"photo": 3, "crop": 3, "clip": 2}
    fake_rd(tmp_path / "worse", sha, -1.0)  # same weights measured 1 dB worse: a regression
    assert (
        release_main(["--weights", str(fitted), "--out", str(out), "--rd-dir", str(tmp_path / "worse")]) == 5
    )
    fake_rd(tmp_path / "other", "ab" * 32, 0.0)
    assert (
        release_main(["--weights", str(fitted), "--out", str(out), "--rd-dir", str(tmp_path / "other")]) == 5
    )


def fake_kodak(directory: Path, sha: str, psnr_shift: float) -> None:
    """A still-image result as benchmarks.intra writes it, for weights `sha`, shifted in quality."""
    nv = [{"setting": q, "bpp": b, "psnr_yuv": p + psnr_shift} for q, b, p in ((22, 2.0, 40.0), (32, 1.0, 36.0),
                                                                            (42, 0.5, 32.0))]  # fmt: skip
    jpeg = [{"setting": q, "bpp": 1.2 * b, "psnr_yuv": p} for q, b, p in ((90, 2.0, 40.0), (70, 1.0, 36.0),
                                                                         (40, 0.5, 32.0))]  # fmt: skip
    result = {"images": ["a.png", "b.png"], "codecs": {"nvcodec": nv, "jpeg": jpeg},
              "environment": {"weights": {"sha256": sha}}}  # fmt: skip
    (directory / "kodak.json").write_text(json.dumps(result))


def test_a_release_measured_otherwise_than_the_manifest_needs_the_released_weights_results(fitted, tmp_path):
    """The manifest holds 4-frame curves; a candidate measured on 9 frames (and Kodak) is
    compared with the released weights measured the same way (--against), never with curves
    of another length, and refused without them."""
    out = tmp_path / "weights" / "tiny.safetensors"
    out.parent.mkdir()
    released = tmp_path / "released.safetensors"
    save_weights(random_model(TINY), released)
    release = ["--weights", str(released), "--out", str(out)]
    fake_rd(tmp_path / "first", load_weights(released).sha256.hex(), 0.0)
    assert release_main([*release, "--rd-dir", str(tmp_path / "first")]) == 0
    old_sha, new_sha = load_weights(released).sha256.hex(), load_weights(fitted).sha256.hex()
    for name, sha, shift in (("old", old_sha, 0.0), ("better", new_sha, 0.5), ("worse", new_sha, -0.5)):
        fake_rd(tmp_path / name, sha, shift, frames=9)
        fake_kodak(tmp_path / name, sha, shift)
    candidate = ["--weights", str(fitted), "--out", str(out)]
    assert release_main([*candidate, "--rd-dir", str(tmp_path / "better")]) == 5  # nothing comparable
    worse = [*candidate, "--rd-dir", str(tmp_path / "worse"), "--against", str(tmp_path / "old")]
    assert release_main(worse) == 5
    assert (
        release_main(
            [*candidate, "--rd-dir", str(tmp_path / "better"), "--against", str(tmp_path / "better")]
        )
        == 5
    )
    assert (
        release_main([*candidate, "--rd-dir", str(tmp_path / "better"), "--against", str(tmp_path / "old")])
        == 0
    )
    manifest = json.loads((out.parent / "manifest.json").read_text())
    assert manifest["sha256"] == new_sha and manifest["rd"]["foreman"]["frames"] == 9
    assert manifest["rd"]["kodak"]["frames"] == 2 and manifest["rd"]["kodak"]["bd_rate_percent"]["jpeg"] < 0


def refine_args(**overrides) -> argparse.Namespace:
    base = {"batch": 2, "lr": 1e-3, "half_life": 1000}
    return argparse.Namespace(**(base | overrides))


def synthetic_pairs(seed: int = 0) -> Pairs:
    """Sources, and 'decoded' pictures that are the sources a few levels too bright."""
    rng = np.random.default_rng(seed)
    sources = [rng.integers(40, 200, size=(6, 40, 72), dtype=np.uint8) for _ in range(3)]
    return Pairs([(s + 6).astype(np.uint8) for s in sources], sources, {})


def trained_refiner(steps: int, state: dict | None = None) -> refine.Trainer:
    trainer = refine.Trainer(ResidualRefiner(6, 4, 1), refine_args(), torch.device("cpu"))
    if state is not None:
        trainer.restore(state)
    pairs = synthetic_pairs()
    for _ in range(steps):
        trainer.step(pairs)
    return trainer


def test_enhancer_training_lowers_the_distortion():
    torch.manual_seed(0)
    np.random.seed(0)
    pairs = synthetic_pairs()
    evalset = EvalSet(
        np.stack(pairs.sources), {32: np.stack(pairs.inputs)}, {32: {"intra": 1}}, "clip", "m", {}
    )
    before = refine.evaluate(ENHANCE, ResidualRefiner(6, 4, 1), evalset, torch.device("cpu"))["32"]
    assert before["psnr_yuv_refined"] == before["psnr_yuv"] and before["flagged"] == 0  # identity
    after = refine.evaluate(ENHANCE, trained_refiner(150).model, evalset, torch.device("cpu"))["32"]
    assert after["psnr_yuv"] == before["psnr_yuv"]  # the decoded pictures do not change
    assert after["psnr_yuv_refined"] > before["psnr_yuv"] + 1.0 and after["flagged"] == 3


def test_enhancer_training_resumes_exactly_from_a_checkpoint(tmp_path):
    """Two steps, a checkpoint on disk, two more in a new trainer: the same as four in one go."""
    torch.manual_seed(1)
    np.random.seed(1)
    straight = trained_refiner(4)
    torch.manual_seed(1)
    np.random.seed(1)
    save_checkpoint(tmp_path / "checkpoint.pt", trained_refiner(2).state())
    np.random.seed(99)  # the checkpoint's RNG state must win over whatever ran since
    resumed = trained_refiner(2, load_checkpoint(tmp_path / "checkpoint.pt"))
    assert resumed.progress.step == 4
    for a, b in zip(straight.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)


def test_enhance_run_writes_a_candidate_and_resumes(pack_path, tiny_weights, make_video, tmp_path):
    clip = tmp_path / "eval.y4m"
    make_video(clip, 96, 64, 3, seed=31)
    run = tmp_path / "run"
    argv = ["--run", str(run), "--pack", str(pack_path), "--weights", tiny_weights, "--eval-clip", str(clip),
            "--minutes", "0.01", "--checkpoint-minutes", "0.005", "--threads", "1", "--batch", "2"]  # fmt: skip
    assert refine.main(argv) == 0
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert log[0]["step"] == 0 and log[-1]["step"] > 0 and len(log) >= 2
    assert set(log[-1]["eval"]) == {str(qp) for qp in EVAL_QPS}
    assert (run / "curves.svg").read_text().startswith("<svg")
    candidate = load_weights(run / "candidate.safetensors")
    assert not candidate.model.enhancer.is_identity
    history = json.loads((run / "candidate.json").read_text())
    assert history["stage"].startswith("enhance") and history["steps"] == log[-1]["step"]
    pairs_written = (run / "pairs.npz").stat().st_mtime_ns
    assert refine.main(argv) == 0
    again = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert again[: len(log)] == log and again[-1]["step"] > log[-1]["step"]
    assert (run / "pairs.npz").stat().st_mtime_ns == pairs_written  # the data is built once
    stale = Pairs.load(run / "pairs.npz")  # as coded by an encoder of another bitstream version
    Pairs(stale.inputs, stale.sources, stale.meta | {"coder": {"codec": "x", "bitstream": "2.2"}}).save(
        run / "pairs.npz"
    )
    assert refine.main(argv) == 0
    assert Pairs.load(run / "pairs.npz").meta["coder"] == stale.meta["coder"]  # coded again


def test_filter_run_learns_from_the_predictions_of_p_frames(pack_path, tiny_weights, make_video, tmp_path):
    clip = tmp_path / "eval.y4m"
    make_video(clip, 96, 64, 3, seed=31)
    run = tmp_path / "run"
    argv = ["--stage", "filter", "--run", str(run), "--pack", str(pack_path), "--weights", tiny_weights,
            "--eval-clip", str(clip), "--minutes", "0.01", "--checkpoint-minutes", "0.005", "--threads", "1",
            "--batch", "2"]  # fmt: skip
    assert refine.main(argv) == 0
    pairs = Pairs.load(run / "pairs.npz")
    assert (
        len(pairs.inputs) == 2 * 2 * 5
    )  # two clip windows of 6 frames at 2 qps: 5 P frames each, no pictures
    assert pairs.inputs[0].dtype == np.uint16 and pairs.sources[0].dtype == np.uint8
    assert pairs.meta["stage"] == "filter"
    evalset = EvalSet.load(run / "eval.npz")
    assert len(evalset.sources) == 2 and all(len(v) == 2 for v in evalset.inputs.values())  # frames 1, 2
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert log[-1]["stage"] == "filter" and log[-1]["step"] > 0
    candidate = load_weights(run / "candidate.safetensors")
    assert not candidate.model.context_filter.is_identity and candidate.model.enhancer.is_identity
    assert json.loads((run / "candidate.json").read_text())["stage"].startswith("filter")
    assert "In-loop filter" in (run / "curves.svg").read_text()


def test_recording_the_predictions_leaves_the_stream_as_it_was(tiny_weights, make_video, tmp_path):
    """The untrained filter is the identity: coded with it on every P frame (and its inputs
    recorded), the substreams are those of the default coding."""
    frames = make_video(tmp_path / "c.y4m", 96, 64, 4, seed=5)
    weights = load_weights(tiny_weights)
    recorded, indices, seen = code_frames(weights, frames, 30, torch.device("cpu"), FILTER)
    plain, _, _ = code_frames(weights, frames, 30, torch.device("cpu"), ENHANCE)
    assert indices == [1, 2, 3] and len(seen) == 3 and seen[0].shape == (6, 32, 48)
    assert [r.substreams for r in recorded] == [r.substreams for r in plain]
    assert isinstance(weights.model.context_filter, ResidualRefiner)  # put back


def test_the_filter_fingerprint_ignores_both_refiners_the_enhance_one_only_the_enhancer():
    model = random_model(TINY, 0)
    enhance_before, filter_before = codec_fingerprint(model, ENHANCE), codec_fingerprint(model, FILTER)
    with torch.no_grad():
        model.context_filter.tail.bias.fill_(0.5)
    assert codec_fingerprint(model, FILTER) == filter_before
    assert codec_fingerprint(model, ENHANCE) != enhance_before
    with torch.no_grad():
        model.enhancer.tail.bias.fill_(0.5)
    assert codec_fingerprint(model, FILTER) == filter_before


def test_curves_start_new_lines_when_the_evaluation_set_changes(tmp_path):
    rows = [{"step": step, "eval_set": name, "eval_clip": "c.y4m", "eval": {"32": {"psnr_yuv": 30.0, "psnr_yuv_refined": 30.1}}}
            for step, name in ((0, "a"), (10, "a"), (20, "b"))]  # fmt: skip
    refine.plot(rows, tmp_path / "curves.svg")
    svg = (tmp_path / "curves.svg").read_text()
    assert svg.count("<polyline") == 2 and "qp 32, set 2" in svg and "c.y4m" in svg


def test_learning_curves_are_an_svg_of_every_series():
    svg = render_svg({"qp 27": [(0, 0.0), (10, 0.2)], "qp 37": [(0, 0.0), (10, 0.3)]}, "t", "x", "y")
    assert svg.count("<polyline") == 2 and "qp 37" in svg
    with pytest.raises(ValueError):
        render_svg({}, "t", "x", "y")


def test_enhance_run_stopped_by_sigterm_keeps_its_steps(pack_path, tiny_weights, make_video, tmp_path):
    """A background run (nohup ... &) is stopped with kill: it checkpoints the steps it made."""
    clip = tmp_path / "eval.y4m"
    make_video(clip, 96, 64, 3, seed=31)
    run = tmp_path / "run"
    argv = [sys.executable, "-m", "nvcodec.train.refine", "--run", str(run), "--pack", str(pack_path),
            "--weights", tiny_weights, "--eval-clip", str(clip), "--minutes", "10", "--threads", "1"]  # fmt: skip
    process = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (run / "log.jsonl").exists() and time.monotonic() < deadline:  # step 0 is logged
        time.sleep(0.2)
    time.sleep(1.0)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130 and "resumes from this checkpoint" in err
    assert "Traceback" not in err
    step = load_checkpoint(run / "checkpoint.pt")["progress"]["step"]
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert step > 0 and log[-1]["step"] == step  # evaluated and logged before it stopped


def test_enhance_run_refuses_weights_of_another_codec(pack_path, tiny_weights, make_video, tmp_path, capsys):
    clip = tmp_path / "eval.y4m"
    make_video(clip, 96, 64, 3, seed=31)
    other = tmp_path / "other.safetensors"
    save_weights(random_model(TINY, 1), other)
    argv = ["--run", str(tmp_path / "run"), "--pack", str(pack_path), "--eval-clip", str(clip),
            "--minutes", "0.002", "--threads", "1", "--batch", "2"]  # fmt: skip
    assert refine.main([*argv, "--weights", tiny_weights]) == 0
    capsys.readouterr()
    assert refine.main([*argv, "--weights", str(other)]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "another codec" in err and "new --run folder" in err
