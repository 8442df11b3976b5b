"""What the three tools share: option types, logging, progress, and turning errors into exit codes."""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from fractions import Fraction
from typing import TYPE_CHECKING

import click

from nvcodec import __version__
from nvcodec.bitstream import VERSION as BITSTREAM_VERSION
from nvcodec.codec.schedule import parse_bits
from nvcodec.errors import InputError, NvcError

if TYPE_CHECKING:
    from tqdm import tqdm

    from nvcodec.stats import FrameReport

EXIT_INTERRUPTED = 130
EXIT_INTERNAL = 70
EXIT_BROKEN_PIPE = 128 + 13  # what a shell reports for a tool that SIGPIPE ended


class SizeType(click.ParamType):
    """WIDTHxHEIGHT, each 1..8192."""

    name = "WxH"

    def convert(self, value, param, ctx) -> tuple[int, int]:
        if isinstance(value, tuple):
            return value
        try:
            w, h = (int(v) for v in str(value).lower().split("x"))
        except ValueError:
            self.fail(f"{value!r} is not WIDTHxHEIGHT (e.g. 352x288)", param, ctx)
        if not (1 <= w <= 8192 and 1 <= h <= 8192):
            self.fail(f"{value!r}: width and height must be in 1..8192", param, ctx)
        return w, h


class RateType(click.ParamType):
    """A frame rate: 25, 29.97 or 30000/1001."""

    name = "FPS"

    def convert(self, value, param, ctx) -> Fraction:
        if isinstance(value, Fraction):
            return value
        try:
            rate = Fraction(str(value)).limit_denominator(1001)
        except (ValueError, ZeroDivisionError):
            self.fail(f"{value!r} is not a frame rate (e.g. 25 or 30000/1001)", param, ctx)
        if not 0 < rate <= 1000:
            self.fail(f"{value!r}: frame rate must be in (0, 1000]", param, ctx)
        return rate


class BitsType(click.ParamType):
    """A bitrate (RATE, bits per second) or a size in bits (BITS): 800k, 1.5M or 2500000."""

    def __init__(self, name: str = "RATE") -> None:
        self.name = name

    def convert(self, value, param, ctx) -> float:
        if isinstance(value, float):
            return value
        try:
            return parse_bits(str(value), "bitrate" if self.name == "RATE" else "size in bits")
        except InputError as err:
            self.fail(str(err), param, ctx)


DEVICE = click.option(
    "--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True
)
WEIGHTS = click.option(
    "--weights", type=click.Path(dir_okay=False), help="Model weights (default: the released ones)."
)
FORCE = click.option("-y", "--force", is_flag=True, help="Overwrite existing outputs.")
JOBS = click.option(
    "--jobs",
    type=click.IntRange(1, 256),
    default=1,
    show_default=True,
    help="Code segments in this many worker processes (same output as one).",
)
CLUSTER = click.option(
    "--cluster",
    metavar="ADDRESS",
    help="Code segments on the workers of a running Dask cluster (tcp://host:8786); needs nvcodec[cluster].",
)


class PositionType(click.ParamType):
    """A frame number (130) or a time (5.2s, 01:10, 00:01:10.5)."""

    name = "POSITION"

    def convert(self, value, param, ctx):
        from nvcodec.positions import Position

        if isinstance(value, Position):
            return value
        try:
            return Position.parse(value, f"--{param.name}" if param else "position")
        except InputError as err:
            self.fail(str(err), param, ctx)


class SecondsType(click.ParamType):
    """A positive duration in seconds: 10, 2.5, 2.5s."""

    name = "SECONDS"

    def convert(self, value, param, ctx) -> Fraction:
        if isinstance(value, Fraction):
            return value
        text = str(value).strip().removesuffix("s")
        try:
            seconds = Fraction(text)
        except (ValueError, ZeroDivisionError):
            self.fail(f"{value!r} is not a number of seconds (e.g. 10 or 2.5)", param, ctx)
        if seconds <= 0:
            self.fail(f"{value!r} must be more than 0 seconds", param, ctx)
        return seconds


def version_option(prog: str) -> Callable:
    """--version: the tool, the package and the bitstream version it writes and reads."""
    major, minor = BITSTREAM_VERSION
    return click.version_option(
        __version__,
        "--version",
        prog_name=prog,
        message=f"%(prog)s (nvcodec) %(version)s, bitstream {major}.{minor}",
    )


MAX_SIZE = click.option(
    "--max-size",
    type=SizeType(),
    help="Largest picture area to accept (default 3840x2160), checked before anything is allocated.",
)
QUIET = click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary.")


def setup_logging(prog: str, quiet: bool) -> None:
    """Library notices go to stderr as 'prog: message'; --quiet keeps only errors."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{prog}: %(message)s"))
    root = logging.getLogger("nvcodec")
    root.handlers[:] = [handler]
    root.setLevel(logging.ERROR if quiet else logging.INFO)
    root.propagate = False


class ProgressBar:
    """A tqdm bar on stderr fed with frame reports; silent when quiet."""

    def __init__(self, prog: str, quiet: bool) -> None:
        self.prog, self.quiet = prog, quiet
        self.bar: tqdm | None = None
        self.bytes = 0

    def begin(self, total: int | None) -> None:
        from tqdm import tqdm  # imported when there is work to show, not for --help

        self.bar = tqdm(
            total=total, desc=self.prog, unit="frame", file=sys.stderr, disable=self.quiet, leave=False
        )

    def __call__(self, report: FrameReport) -> None:
        self.bytes += report.bytes
        postfix = {"type": report.type, "qp": report.qp, "kB": f"{self.bytes / 1000:.1f}"}
        if report.psnr is not None:
            postfix["psnr"] = f"{report.psnr.yuv:.2f}"
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class ReaderGone(Exception):
    """Standard output's reader closed the pipe (kept apart from OSError, which click handles)."""


def pipe_safe(callback: Callable[..., None]) -> Callable[..., None]:
    """Decorate a command's function so that a broken pipe reaches run() as ReaderGone."""

    @functools.wraps(callback)
    def guarded(*args, **kwargs) -> None:
        try:
            callback(*args, **kwargs)
        except OSError as err:  # BrokenPipeError, or an EPIPE a library raised as plain OSError
            if err.errno != errno.EPIPE:
                raise
            raise ReaderGone() from err

    return guarded


def _silence_stdout() -> None:
    """Point standard output at /dev/null, so that the interpreter's last flush cannot fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


class Terminated(BaseException):
    """SIGTERM or SIGHUP arrived: the command unwinds as for Ctrl-C, removing its outputs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _terminate(signum: int, frame: object) -> None:
    raise Terminated(signum)


@contextlib.contextmanager
def _signals_unwind() -> Iterator[None]:
    """While a command runs: Ctrl-C raises KeyboardInterrupt, SIGTERM and SIGHUP Terminated; the
    handlers before are put back after (in-process callers such as the tests keep theirs)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handlers = {signal.SIGINT: signal.default_int_handler}
    handlers.update({getattr(signal, n): _terminate for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n)})
    saved = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def run(command: click.Command, prog: str, argv: Sequence[str] | None) -> int:
    """Run a click command; every failure becomes one line on stderr and an exit code."""
    try:
        with _signals_unwind():
            code = command.main(
                args=list(argv) if argv is not None else None, prog_name=prog, standalone_mode=False
            )
        return code or 0  # non-standalone click returns the code of an explicit Exit (nvinfo's 4)
    except Terminated as stop:
        name = signal.Signals(stop.signum).name
        click.echo(f"{prog}: stopped by {name}; no output was left behind", err=True)
        return 128 + stop.signum
    except click.exceptions.Exit as done:
        return done.exit_code
    except click.ClickException as bad:
        click.echo(f"{prog}: error: {bad.format_message()}", err=True)
        return bad.exit_code
    except click.exceptions.Abort:
        click.echo(f"{prog}: interrupted", err=True)
        return EXIT_INTERRUPTED
    except NvcError as err:
        click.echo(f"{prog}: error: {err}", err=True)
        return err.exit_code
    except KeyboardInterrupt:
        click.echo(f"{prog}: interrupted; no output was left behind", err=True)
        return EXIT_INTERRUPTED
    except ReaderGone:  # the reader of our output went away: end quietly, as `yes | head` does
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except OSError as err:
        click.echo(f"{prog}: error: {err}", err=True)
        return 3
    except Exception as err:  # a bug: say so in one line, details only on request
        if os.environ.get("NVCODEC_DEBUG"):
            traceback.print_exc()
        click.echo(
            f"{prog}: internal error: {type(err).__name__}: {err} (set NVCODEC_DEBUG=1 for details)", err=True
        )
        return EXIT_INTERNAL
