"""What the three tools share: option types, logging, progress, and turning errors into exit codes."""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Sequence
from fractions import Fraction

import click
from tqdm import tqdm

from nvcodec.codec.schedule import parse_bits
from nvcodec.errors import InputError, NvcError
from nvcodec.stats import FrameReport

EXIT_INTERRUPTED = 130
EXIT_INTERNAL = 70


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


def run(command: click.Command, prog: str, argv: Sequence[str] | None) -> int:
    """Run a click command; every failure becomes one line on stderr and an exit code."""
    try:
        code = command.main(
            args=list(argv) if argv is not None else None, prog_name=prog, standalone_mode=False
        )
        return code or 0  # non-standalone click returns the code of an explicit Exit (nvinfo's 4)
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
    except BrokenPipeError:
        return 1
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
