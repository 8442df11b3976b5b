"""The training pipeline at `tiny` size: pack builder, sampler, every stage, checkpoints, DDP."""

import json
from pathlib import Path

import numpy as np
import pytest

from nvcodec.entropy.tables import SCALES
from nvcodec.models.config import TINY
from nvcodec.models.nvc import NvcModel
from nvcodec.train.data import Pack
from nvcodec.train.fit import Counts, encode_clip
from nvcodec.train.fit import main as fit_main
from nvcodec.train.pack import ClipSource, PackSources, collect, write_pack
from nvcodec.train.packed import pack_frame, unpack_frame
from nvcodec.train.release import main as release_main
from nvcodec.weights import Weights, load_weights, random_model


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
        assert 0 <= check["coded"] - check["predicted"] < 0.01 * check["coded"] + 64 * 3
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
