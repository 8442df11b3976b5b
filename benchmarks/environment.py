"""Where a benchmark ran: the processor, the thread count, the library versions."""

from __future__ import annotations

import platform
import re
from pathlib import Path

import av
import torch


def machine() -> str:
    """The processor's model name (from /proc/cpuinfo where there is one) and torch's threads."""
    name = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)
        name = found.group(1).strip() if found else name
    threads = torch.get_num_threads()
    return f"{name}, {threads} thread{'s' if threads > 1 else ''}"


BUNDLED = ("x264", "x265", "SvtAv1Enc", "dav1d", "webp")


def library_versions() -> dict[str, str]:
    """PyAV, the FFmpeg libraries it was built with, and the encoders its wheel bundles."""
    versions = {"pyav": av.__version__, "torch": torch.__version__}
    versions.update({k: ".".join(map(str, v)) for k, v in av.library_versions.items()})
    libs = Path(av.__file__).resolve().parents[1] / "av.libs"  # where the wheel puts its libraries
    for path in sorted(libs.glob("lib*.so.*")) if libs.is_dir() else []:
        found = re.fullmatch(r"lib(\w+?)-[0-9a-f]+\.so\.([\d.]+)", path.name)
        if found and found.group(1) in BUNDLED:
            versions[f"lib{found.group(1)}"] = found.group(2)
    return versions


def encoder_version(packet: bytes) -> str | None:
    """x264 and x265 write their version into the first access unit (an SEI message)."""
    for pattern in (rb"x264 - core \d+( r\d+ [0-9a-f]+)?", rb"x265 \(build \d+\) - [\w.+-]+"):
        found = re.search(pattern, packet)
        if found:
            return found.group(0).decode("ascii", "replace")
    return None
