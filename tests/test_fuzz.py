"""The standing fuzz suite (bounded for CI): mutated streams through nvdec in forked children.

benchmarks/fuzz.py holds the harness; `python -m benchmarks.fuzz --cases 5000` is the long run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from benchmarks import fuzz

from nvcodec import pipeline


def test_fuzz_cases_end_cleanly(tmp_path: Path) -> None:
    """Zero tracebacks, hangs, bombs, partial files or undetected corruptions in 150 cases."""
    result = fuzz.fuzz(150, seed=11, folder=tmp_path, progress=False)
    assert result["failures"] == 0, result["failure_examples"]
    counts = result["counts"]
    assert counts["refused"] > 20 and counts["prefix"] > 20 and counts["decoded"] > 0, counts


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("harness")
    weights = str(folder / "tiny.safetensors")
    fuzz.save_weights(fuzz.random_model(fuzz.TINY, 0), weights)
    return folder, weights, fuzz.make_bases(folder, weights)[0]


def _flip(base: fuzz.Base) -> tuple[bytes, int]:
    data = bytearray(base.data)
    at = base.spans[3][0] + 40
    data[at] ^= 1
    return bytes(data), at


def test_harness_sees_a_prefix(harness) -> None:
    folder, weights, base = harness
    data, at = _flip(base)
    outcome = fuzz.run_case(base, data, at, folder / "prefix", weights, forged=False)
    assert outcome.kind == "prefix" and outcome.code == 4


def test_harness_sees_a_crash(harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """The judge is not blind: an exception escaping the decoder counts as a crash."""
    folder, weights, base = harness

    def broken(*args, **kwargs):
        raise RuntimeError("planted")

    monkeypatch.setattr(pipeline, "decode_video", broken)
    data, at = _flip(base)
    assert fuzz.run_case(base, data, at, folder / "crash", weights, forged=False).kind == "crash"


def test_harness_sees_a_hang(harness, monkeypatch: pytest.MonkeyPatch) -> None:
    folder, weights, base = harness
    monkeypatch.setattr(pipeline, "decode_video", lambda *a, **k: time.sleep(30))
    data, at = _flip(base)
    outcome = fuzz.run_case(base, data, at, folder / "hang", weights, forged=False, limit=1.0)
    assert outcome.kind == "hang"


def test_harness_sees_an_undetected_change(harness) -> None:
    """A byte changed without a refusal is a failure unless the CRCs were forged on purpose."""
    folder, weights, base = harness
    data = bytearray(base.data)
    data[20:24] = b"\xff\xff\xff\xff"  # frame_count 'unknown': still a valid stream
    fuzz.fix_header_crc(data)
    assert fuzz.run_case(base, bytes(data), 20, folder / "forged", weights, forged=True).kind == "decoded"
    assert fuzz.run_case(base, bytes(data), 20, folder / "plain", weights, forged=False).kind == "undetected"


def test_report_shows_the_fuzz_run(tmp_path: Path) -> None:
    from benchmarks.report import render

    result = fuzz.fuzz(12, seed=3, folder=tmp_path / "run", progress=False)
    (tmp_path / "fuzz.json").write_text(json.dumps(result))
    text = render(tmp_path, tmp_path / "RESULTS.md")
    assert "## Robustness (fuzzing nvdec)" in text and "--cases 12 --seed 3" in text
    assert "| **failures** (traceback" in text and f"**{result['failures']}** |" in text
