"""The install: a CPU-only build on request, metadata that setuptools takes without a warning."""

from __future__ import annotations

import os
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
    """`make install CPU=1` installs torch from PyTorch's CPU index; plain `make install` as before.
    The plan is asked of a make that does not inherit this run's variables (`make test CPU=1` passes
    CPU=1 down through MAKEFLAGS and the environment)."""
    env = {k: v for k, v in os.environ.items() if k not in ("CPU", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    plan = subprocess.run(
        ["make", "-n", "-B", "install", *flag], cwd=ROOT, capture_output=True, text=True, check=True, env=env
    ).stdout
    torch_line = next(line for line in plan.splitlines() if "install" in line and "torch==" in line)
    assert ("--index-url" in torch_line and torch_line.rstrip().endswith("/whl/cpu")) == index
