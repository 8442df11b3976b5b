"""The benchmark tools on a tiny synthetic clip: anchors give plausible, monotonic RD points, the
nvcodec points count every byte of the file, and the report renders."""

import importlib.util
import json
from fractions import Fraction
from types import SimpleNamespace

import pytest
from benchmarks import ratecontrol, rd, x264_tools
from benchmarks.anchors import ANCHORS, encode
from benchmarks.rd import run_anchor, run_nvcodec
from benchmarks.report import measured_apart, points_table, render, split_table, untrained_table

from nvcodec.codec.schedule import CodingParams
from nvcodec.pipeline import EncodeJob, encode_video
from nvcodec.weights import load_weights


@pytest.fixture(scope="module")
def clip(make_video, tmp_path_factory):
    path = tmp_path_factory.mktemp("clip") / "clip.y4m"
    return path, make_video(path, 96, 64, 6)


@pytest.mark.parametrize("name", list(ANCHORS))
def test_anchor_points_are_plausible(clip, name):
    _, frames = clip
    runs = [encode(ANCHORS[name], frames, qp) for qp in ANCHORS[name].qps]
    for run in runs:
        assert len(run.frame_bits) == len(run.psnr) == len(frames)
        assert all(20 < p["yuv"] < 60 for p in run.psnr)
    bits = [r.bits for r in runs]
    psnr = [sum(p["yuv"] for p in r.psnr) / len(r.psnr) for r in runs]
    assert bits == sorted(bits, reverse=True) and len(set(bits)) == len(bits)  # fewer bits as QP rises
    assert psnr == sorted(psnr, reverse=True)  # and lower quality
    if name != "svt-av1":  # one intra frame, then cheaper P frames
        assert runs[0].frame_bits[0] > max(runs[0].frame_bits[1:])


def test_x264_tools_turns_one_tool_off_and_prices_it(clip):
    _, frames = clip
    cavlc = x264_tools.without("cabac")
    assert cavlc.options["x264-params"] == ANCHORS["x264"].options["x264-params"] + ":cabac=0"
    assert "cabac" not in ANCHORS["x264"].options["x264-params"]  # the anchor itself is untouched
    costs = x264_tools.tool_costs(frames, 25, ["cabac"])
    assert list(costs) == ["cabac"] and 0 < costs["cabac"] < 100  # CAVLC spends more bits


def test_nvcodec_points_count_the_whole_file(clip, tiny_weights, tmp_path):
    path, frames = clip
    points = run_nvcodec(load_weights(tiny_weights), frames, 25, [30], CodingParams())
    out = tmp_path / "clip.nvc"
    # the benchmark codes on the CPU; so must the CLI's job on a machine with CUDA (other floats, other bits)
    encode_video(EncodeJob(str(path), str(out), CodingParams(qp=30), weights=tiny_weights, device="cpu"))
    assert points[0]["bits"] == 8 * out.stat().st_size
    assert len(points[0]["frame_bits"]) == len(frames) and points[0]["frame_types"][0] == "I"


def test_report_renders_from_results(clip, tiny_weights, tmp_path):
    _, frames = clip
    weights = load_weights(tiny_weights)
    result = {"clip": "people", "width": 96, "height": 64, "fps": "25", "frames": len(frames),
              "nvcodec": run_nvcodec(weights, frames, 25, [10, 50], CodingParams()),
              "anchors": {"x264": run_anchor("x264", frames, 25)},
              "settings": {"x264": {"qps": [22], "command": "ffmpeg ..."}},
              "nvcodec_settings": {"qps": [10, 50], "large_blocks": "auto", "flat_blocks": "off"},
              "environment": {"weights": {"path": "w", "sha256": "00" * 32, "config": "tiny"},
                              "date": "today", "machine": "here", "versions": {"pyav": "x"}}}  # fmt: skip
    (tmp_path / "rd_people.json").write_text(json.dumps(result))
    text = render(tmp_path, tmp_path / "RESULTS.md")
    assert "| people (96x64) | 6 |" in text and "vs x264" in text and "### All points" in text
    assert "| people | " in text.split("intra frame vs x264's")[1]
    assert "| people | n/a | 10: +0.000, 50: +0.000 dB |" in text.split("its untrained start")[1]
    assert "- **nvcodec**, qp 10, 50: `nvenc --large-blocks auto --flat-blocks off`" in text
    if importlib.util.find_spec("matplotlib"):  # pictures come with the bench extra
        assert "![people](rd_people.png)" in text  # linked relative to this RESULTS.md


def test_clips_measured_with_other_weights_on_another_day_or_bitstream_are_named():
    def clip(name: str, sha: str, date: str, bitstream: str | None = None) -> dict:
        settings = {} if bitstream is None else {"nvcodec_settings": {"bitstream": bitstream}}
        return {"clip": name, "environment": {"weights": {"sha256": sha}, "date": date}, **settings}

    same = [clip("foreman", "aa" * 32, "d1"), clip("people", "aa" * 32, "d1")]
    assert measured_apart(same) == ""
    mixed = [*same, clip("cactus", "bb" * 32, "d1"), clip("cockatoo", "aa" * 32, "d0")]
    unrecorded = " at an unrecorded bitstream version"
    assert measured_apart(mixed) == (
        f" (cactus with `{'bb' * 8}...` on d1{unrecorded}, cockatoo with `{'aa' * 8}...` on d0{unrecorded})"
    )
    versions = [clip("foreman", "aa" * 32, "d1", "2.9"), clip("cactus", "aa" * 32, "d1", "2.8")]
    assert measured_apart(versions) == f" (cactus with `{'aa' * 8}...` on d1 at bitstream 2.8)"


def test_points_table_separates_the_intra_frames_leaving_from_a_later_fall():
    point = {"qp": 32, "kbps": 1.0, "bpp": 0.1, "psnr_y": 30.0, "psnr_yuv": 31.0, "seconds": 1.0}
    falling = {**point, "frame_psnr_yuv": [40.0] * 16 + [36.0] * 16 + [35.0] * 32}
    short = {**point, "frame_psnr_yuv": [40.0] * 16 + [38.0] * 16}
    clip = {"clip": "c", "width": 8, "height": 8, "frames": 64, "fps": "25",
            "nvcodec": [falling], "anchors": {"x264": [short, {**point, "frame_psnr_yuv": [1.0] * 8}]}}  # fmt: skip
    rows = points_table(clip)[4:]
    assert "| 40.00 / 36.00 / 35.00 |" in rows[0]
    assert "| 40.00 / 38.00 |" in rows[1] and "| - |" in rows[2]


def test_points_table_splits_the_drift_into_luma_and_chroma():
    yuv = [40.0] * 16 + [37.0] * 16  # (6 Y + U + V) / 8 with Y 39 -> 38 and U = V 43 -> 34
    point = {
        "qp": 32,
        "kbps": 1.0,
        "bpp": 0.1,
        "psnr_y": 38.5,
        "psnr_yuv": 38.5,
        "seconds": 1.0,
        "frame_psnr_yuv": yuv,
        "frame_psnr_y": [39.0] * 16 + [38.0] * 16,
    }
    clip = {"clip": "c", "width": 8, "height": 8, "frames": 32, "fps": "25", "nvcodec": [point],
            "anchors": {"x264": [{**point, "frame_psnr_y": []}]}}  # fmt: skip
    rows = points_table(clip)[4:]
    assert "| +3.00 / +1.00 / +9.00 |" in rows[0]
    assert rows[1].count("| - |") == 1  # without a luma trace there is no split


def test_untrained_table_compares_the_same_streams_with_and_without_enhancement():
    def point(qp: int, added: float) -> dict:
        psnr = 60.0 - qp / 2
        return {"qp": qp, "bits": 1e6 * 2 ** (-qp / 6), "psnr_yuv": psnr + added,
                "frame_psnr_yuv_unenhanced": [psnr] * 4}  # fmt: skip

    points = [point(qp, 0.5 if 22 <= qp <= 42 else 0.0) for qp in (0, 22, 27, 32, 37, 42, 63)]
    clip = {"clip": "c", "nvcodec": points, "settings": {"x264": {"qps": [22, 27, 32, 37, 42]}}}
    row = untrained_table([clip])[2]
    bd = float(row.split("|")[2].strip().rstrip("%"))
    assert -11.5 < bd < -10.3  # 3 dB per doubling of the rate: +0.5 dB is 2^(-1/6) - 1 = -10.9% of the bits
    assert "0: +0.000, 22: +0.500" in row and "63: +0.000 dB" in row
    assert untrained_table([{**clip, "nvcodec": [{"qp": 22}]}]) == []  # measured before it was recorded


def test_split_table_tells_the_intra_frames_gap_from_the_p_frames():
    def point(qp: int, scale: float, intra_scale: float) -> dict:
        bits = [intra_scale * 4000 * 2 ** (-qp / 6)] + [scale * 1000 * 2 ** (-qp / 6)] * 3
        return {"qp": qp, "frame_bits": bits, "frame_psnr_yuv": [60.0 - qp / 2] * 4}

    clip = {"clip": "c", "anchors": {"x264": [point(q, 1, 1) for q in (22, 32, 42)]},
            "nvcodec": [point(q, 1, 2) for q in (22, 32, 42)]}  # fmt: skip
    row = split_table([clip])[2]
    assert row.startswith("| c | +100.0% | +0.0% |") and "| 72.7% / 57.1% (qp 32) |" in row


def test_anchor_points_are_reused_only_for_the_same_frames(clip, tmp_path, monkeypatch):
    _, frames = clip
    first = run_anchor("x264", frames, 25, tmp_path)
    monkeypatch.setattr(rd, "measure_anchor", lambda *a: pytest.fail("should have come from the cache"))
    assert run_anchor("x264", frames, 25, tmp_path) == first
    with pytest.raises(pytest.fail.Exception):  # other frames: measured again
        run_anchor("x264", frames[:3], 25, tmp_path)


def test_rate_control_benchmark_measures_and_renders(clip, tiny_weights, tmp_path, monkeypatch):
    _, frames = clip
    monkeypatch.setattr(ratecontrol, "FIXED_QPS", (20, 50))
    monkeypatch.setattr(ratecontrol, "TARGET_QPS", (35,))
    stub = SimpleNamespace(read=lambda data, limit: (frames[:4], Fraction(25)))
    monkeypatch.setitem(ratecontrol.RATE_CLIPS, "foreman", stub)
    result = ratecontrol.measure_clip("foreman", load_weights(tiny_weights), None, tmp_path)
    fixed = {p["qp"]: p["kbps"] for p in result["fixed"]}
    middle = (fixed[20] * fixed[50]) ** 0.5  # qp 35 sits half way in log-rate
    for controller in ("model", "baseline"):
        runs = result["controlled"][controller]
        assert [r["target_kbps"] for r in runs] == [ratecontrol.nice(middle)]
        assert all(len(r["frame_qp"]) == 4 for r in runs)
    (tmp_path / "ratecontrol_foreman.json").write_text(json.dumps(result))
    text = render(tmp_path, tmp_path / "RESULTS.md")
    assert "## Rate control" in text and "| foreman | model |" in text and "| foreman | baseline |" in text


def test_steadiness_counts_base_qp_moves():
    offsets = CodingParams().qp_offsets
    qps = [30] + [32 + offsets[i % len(offsets)] for i in range(1, 9)] + [34 + offsets[1]]
    steady = ratecontrol.steadiness(qps)
    assert steady["qp_range"] == [32, 34] and steady["mean_qp_change"] == pytest.approx(2 / 8)
    assert ratecontrol.nice(1234.5) == 1200 and ratecontrol.nice(87.6) == 88


def test_drift_compares_two_decodes(tmp_path, tiny_weights):
    """The cross-device check, run CPU against CPU: fp32 (the encoder's arithmetic) against fp64."""
    from benchmarks import drift

    from nvcodec.frame import VideoInfo
    from nvcodec.io import open_writer
    from nvcodec.pipeline import EncodeJob, encode_video
    from nvcodec.sample import synthetic_frames

    source, nvc = tmp_path / "a.y4m", tmp_path / "a.nvc"
    frames = list(synthetic_frames(64, 48, 4, seed=2))
    with open_writer(str(source), VideoInfo(64, 48, Fraction(25), 4)) as writer:
        for f in frames:
            writer.write(f)
    encode_video(EncodeJob(str(source), str(nvc), CodingParams(qp=30), weights=tiny_weights, device="cpu"))
    single = drift.decode_all(str(nvc), "cpu:fp32", tiny_weights)
    double = drift.decode_all(str(nvc), "cpu:fp64", tiny_weights)
    assert all(r["crc_a"] and r["max"] == 0 for r in drift.compare(single, single))
    rows = drift.compare(single, double)
    assert len(rows) == 4 and all(r["crc_a"] for r in rows)  # fp32 is the encoder's arithmetic
    assert all(r["crc_b"] == (r["max"] == 0) and r["psnr"] > 30 for r in rows)


def test_segments_benchmark_costs_and_renders(clip, tiny_weights, tmp_path, monkeypatch):
    from benchmarks import segments

    _, frames = clip
    stub = SimpleNamespace(read=lambda data, limit: (frames[:limit], Fraction(25)))
    monkeypatch.setitem(segments.ALL_CLIPS, "foreman", stub)
    cost = segments.cost(
        load_weights(tiny_weights), "foreman:6", [Fraction(2, 25)], [20, 30, 40, 50], tmp_path
    )
    short = cost["curves"]["0.08s"]
    assert short["segment_frames"] == 2 and all(p["index_bytes"] == 28 + 12 * 3 for p in short["points"])
    assert cost["curves"]["one"]["segment_frames"] == -1
    assert cost["bd_rate_vs_one"]["0.08s"] > 0  # two intra frames more than one segment: more bits
    runs = {"serial": {"seconds": 2.0, "fps": 3.0, "speed_up": 1.0, "identical": True}}
    speed = {"clip": "foreman", "frames": 6, "segment_seconds": 0.08, "qp": 32, "runs": runs}
    (tmp_path / "segments.json").write_text(json.dumps({"speed": speed, "cost": [cost]}))
    text = render(tmp_path, tmp_path / "RESULTS.md")
    assert (
        "## Segments" in text and "| serial | 3.00 | x1.00 | yes |" in text and "| segment | 0.08s |" in text
    )


def test_report_renders_a_training_run(tmp_path):
    run = tmp_path / "training" / "enhance"
    run.mkdir(parents=True)
    bits = {"intra": 1000, "motion": 500, "residual": 1500}
    rows = [{"step": step, "train_seconds": seconds, "mpixels_per_second": rate, "device": "cpu",
             "eval_clip": "clip.y4m", "eval": {"32": {"psnr_yuv": 32.8, "psnr_yuv_refined": shown, "flagged": 30, "bits": bits}}}
            for step, seconds, rate, shown in ((0, 0.0, 0.0, 32.85), (50, 60.0, 1.0, 32.9), (100, 360.0, 4.0, 32.92))]  # fmt: skip
    (run / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "curves.svg").write_text("<svg/>")
    text = render(tmp_path / "results", tmp_path / "RESULTS.md", tmp_path / "training")
    assert "## Training: enhance" in text and "100 steps, 0.10 h of training on cpu" in text
    assert "3.50 Mpixel/s" in text  # weighted by the chunks' durations: (1 x 60 + 4 x 300) / 360
    assert "first frames of clip.y4m" in text
    assert "| 32 | 32.800 | 32.850 | 32.920 | +0.120 dB | 30 | 3.0 |" in text
    assert "![enhance learning curves](training/enhance/curves.svg)" in text
