"""Output files that appear only when complete: written beside the target, renamed at the end."""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import tempfile
from pathlib import Path
from typing import BinaryIO

from nvcodec.errors import OutputError

STDOUT = "-"


def _default_mode() -> int:
    """The permissions a plain open() would give a new file (0666 less the umask)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def check_writable(path: str | os.PathLike[str], force: bool) -> None:
    """Refuse an existing output unless force is set, and a folder that does not exist."""
    if str(path) == STDOUT:
        return
    target = Path(path)
    if target.is_dir():
        raise OutputError(f"{target}: is a directory")
    if target.exists() and not force:
        raise OutputError(f"{target}: exists (use -y/--force to overwrite)")
    if not target.parent.exists():
        raise OutputError(f"{target.parent}: no such directory")


def final_path(path: str | os.PathLike[str]) -> str:
    """Where an output's bytes end up: a symbolic link's target (replacing the link itself with a
    file would cut it), else the path."""
    return os.path.realpath(path) if os.path.islink(path) else str(path)


def is_special(path: str | os.PathLike[str]) -> bool:
    """True for an existing FIFO, device or socket (following links): written in place, since
    replacing it with a regular file would break whatever reads it."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


class AtomicOutput:
    """A binary output that replaces its target only on commit(); abort() leaves nothing behind.

    `-` means standard output, and an existing FIFO or device is opened in place: both are
    streams, written directly (they cannot be taken back). A symbolic link's target is replaced,
    not the link.
    """

    def __init__(self, path: str | os.PathLike[str], force: bool = False) -> None:
        check_writable(path, force)
        self.path = str(path)
        self._tmp: str | None = None
        if self.path == STDOUT:
            self.file: BinaryIO = sys.stdout.buffer
            self.streaming = True
            return
        self.streaming = is_special(self.path)
        if self.streaming:
            self.file = open(self.path, "wb")
            return
        self._final = Path(final_path(self.path))
        try:
            fd, self._tmp = tempfile.mkstemp(
                prefix=f".{self._final.name}.", suffix=".part", dir=self._final.parent
            )
        except OSError as err:  # the message names the user's path, not the temporary one
            raise OutputError(f"{self.path}: cannot write: {err.strerror or err}") from None
        self.file = os.fdopen(fd, "wb")

    @property
    def temp_path(self) -> str:
        """Where the bytes go until commit (the target itself for a stream)."""
        return self._tmp or self.path

    def commit(self) -> None:
        """Flush and move the finished file into place; on failure nothing is left behind."""
        try:
            self.file.flush()
            self._close()
            if self._tmp is None:
                return
            os.chmod(self._tmp, _default_mode())  # mkstemp made it private
            os.replace(self._tmp, self._final)
            self._tmp = None
        except BrokenPipeError:
            self.abort()
            raise
        except OSError as err:
            self.abort()
            raise OutputError(f"{self.path}: cannot write: {err.strerror or err}") from None

    def abort(self) -> None:
        """Remove what was written (a stream keeps what it was sent)."""
        with contextlib.suppress(OSError):  # a flush that failed once fails again here
            self._close()
        if self._tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._tmp)
            self._tmp = None

    def _close(self) -> None:
        """Close the file (standard output stays open for whoever writes after us)."""
        if self.file is not sys.stdout.buffer and not self.file.closed:
            self.file.close()

    def __enter__(self) -> AtomicOutput:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


def write_file(path: str | os.PathLike[str], data: bytes | str) -> None:
    """Replace a small file at once: readers see the old file or the new one, never a part."""
    with AtomicOutput(path, force=True) as out:
        out.file.write(data.encode() if isinstance(data, str) else data)
