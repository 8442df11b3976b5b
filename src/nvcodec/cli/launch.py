"""The console scripts' entry points: signals are handled before anything heavy is imported.

Until a tool's command runs, nothing is open, so SIGINT, SIGTERM and SIGHUP end the process at once
with one line and the status of that signal, never a traceback from inside an import (torch takes
seconds). Once the command runs, common.run() makes the same signals unwind it instead, so that
its outputs are removed.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys

SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


def _launch(tool: str) -> None:
    def stop(signum: int, frame: object) -> None:
        os.write(2, f"{tool}: interrupted\n".encode())
        os._exit(128 + signum)

    for sig in SIGNALS:
        signal.signal(sig, stop)
    sys.exit(importlib.import_module(f"nvcodec.cli.{tool}").main())


def nvenc() -> None:
    _launch("nvenc")


def nvdec() -> None:
    _launch("nvdec")


def nvinfo() -> None:
    _launch("nvinfo")


def nvcut() -> None:
    _launch("nvcut")
