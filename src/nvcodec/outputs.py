"""Output files that appear only when complete: written beside the target, renamed at the end."""

from __future__ import annotations

import os
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


class AtomicOutput:
    """A binary output that replaces its target only on commit(); abort() leaves nothing behind.

    `-` means standard output, which is written directly (a stream cannot be taken back).
    """

    def __init__(self, path: str | os.PathLike[str], force: bool = False) -> None:
        check_writable(path, force)
        self.path = str(path)
        self._tmp: str | None = None
        if self.path == STDOUT:
            self.file: BinaryIO = sys.stdout.buffer
            return
        target = Path(self.path)
        fd, self._tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
        self.file = os.fdopen(fd, "wb")

    @property
    def temp_path(self) -> str:
        """Where the bytes go until commit (the target itself for standard output)."""
        return self._tmp or self.path

    def commit(self) -> None:
        """Flush and move the finished file into place."""
        self.file.flush()
        if self._tmp is None:
            return
        self.file.close()
        os.chmod(self._tmp, _default_mode())  # mkstemp made it private
        os.replace(self._tmp, self.path)
        self._tmp = None

    def abort(self) -> None:
        """Remove what was written (a no-op for standard output or after commit)."""
        if self._tmp is None:
            return
        self.file.close()
        try:
            os.unlink(self._tmp)
        except FileNotFoundError:
            pass
        self._tmp = None

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
