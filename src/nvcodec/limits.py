"""How large a picture the tools agree to code: checked from a header, before anything is allocated.

A stream or video header can claim any size up to 8192x8192 in a few bytes; coding such a picture
takes gigabytes and minutes. So every tool refuses a picture larger in area than 3840x2160 unless
--max-size allows it, and any picture whose estimated working memory exceeds what the machine has
available.
"""

from __future__ import annotations

import os

from nvcodec.errors import InputError

DEFAULT_MAX_SIZE = (3840, 2160)
# Peak resident memory of encoding and decoding one stream in one process (benchmarks.speed, CPU):
# 360 MiB at 416x240, 608 MiB at 1280x720, 1193 MiB at 1920x1080, about 530 bytes per pixel on
# top of the libraries. Rounded up for the estimate.
BASE_BYTES = 400 << 20
BYTES_PER_PIXEL = 640
GIB = 1 << 30


def available_memory() -> int | None:
    """Bytes the system can give this process now (MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def working_memory(width: int, height: int) -> int:
    """Estimated peak bytes of coding a width x height video."""
    return BASE_BYTES + BYTES_PER_PIXEL * width * height


def check_picture_size(width: int, height: int, max_size: tuple[int, int] | None, what: str) -> None:
    """InputError when width x height is over the allowed area or the machine's memory."""
    limit_w, limit_h = max_size or DEFAULT_MAX_SIZE
    if width * height > limit_w * limit_h:
        hint = "; --max-size WxH allows larger pictures" if max_size is None else ""
        raise InputError(
            f"{what}: {width}x{height} pictures are larger than the {limit_w}x{limit_h} limit{hint}"
        )
    need, have = working_memory(width, height), available_memory()
    if have is not None and need > have:
        raise InputError(
            f"{what}: {width}x{height} pictures need about {need / GIB:.1f} GiB of memory, "
            f"{have / GIB:.1f} GiB is available"
        )
