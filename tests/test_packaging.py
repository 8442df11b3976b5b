"""The install: a CPU-only build on request, metadata that setuptools takes without a warning."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_license_is_an_spdx_string() -> None:
    """A table (`license = {text = ...}`) makes every install print setuptools' deprecation."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["license"] == "MIT"
    assert not any(c.startswith("License ::") for c in project["project"].get("classifiers", []))


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
@pytest.mark.parametrize(("flag", "index"), [([], False), (["CPU=1"], True)])
def test_make_install_takes_the_cpu_build_with_one_flag(flag: list[str], index: bool) -> None:
    """`make install CPU=1` installs torch from PyTorch's CPU index; plain `make install` as before."""
    plan = subprocess.run(
        ["make", "-n", "-B", "install", *flag], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    torch_line = next(line for line in plan.splitlines() if "install" in line and "torch==" in line)
    assert ("--index-url" in torch_line and torch_line.rstrip().endswith("/whl/cpu")) == index
