"""This worker's decision-log file: kept open for appending, rotated by sequence number.

``decisions-<host>-<pid>-<seq>.jsonl`` in the log directory. The file stays open between
writes (one ``lstat`` and one ``write`` per flush); it is reopened when its path no longer
names the open file (moved or removed outside the service), after a failed write, and on
rotation (the next ``<seq>``).

The directory is created ``0700`` (the service's user only); an existing one keeps its
mode, with a warning at start if it is group-writable or open to others. The file is
opened ``O_NOFOLLOW``: a symbolic link at its name is refused (:class:`SymlinkRefusedError`),
never followed to wherever it points. A write cut short (a full disk after some bytes)
raises :class:`WriteFailedError`, which says how many bytes reached the file, so that the
writer resumes after them instead of writing them again.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import stat
from pathlib import Path

log = logging.getLogger("serving")
DIRECTORY_MODE = 0o700
FILE_MODE = 0o640
LOOSE_DIRECTORY_BITS = 0o027  # group write, any access by others


class WriteFailedError(OSError):
    """A failed append: ``written`` bytes of the data reached the file before the error."""

    def __init__(self, cause: OSError, written: int) -> None:
        super().__init__(cause.errno, f"{cause.strerror} (after {written} bytes)")
        self.written = written


class SymlinkRefusedError(OSError):
    """A symbolic link is planted at the log file's name: refused, not followed."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            errno.ELOOP,
            f"{path} is a symbolic link; decision records are never written through a link "
            "(remove it, and keep DIGITS_DECISION_LOG_DIR writable by the service only)",
        )


def check_directory(directory: Path) -> None:
    """Warn if an existing log directory is group-writable or open to others."""
    try:
        mode = stat.S_IMODE(directory.stat().st_mode)
    except OSError:
        return
    if mode & LOOSE_DIRECTORY_BITS:
        log.warning(
            "decision log directory %s has mode %o: other users can read or plant files in "
            "it; restrict it to the service's user (chmod 700), the service leaves it as is",
            directory,
            mode,
        )


class LogFile:
    def __init__(self, directory: Path, kind: str = "decisions") -> None:
        self.directory = directory
        self._prefix = f"{kind}-{socket.gethostname()}-{os.getpid()}-"
        self._seq = self._last_seq()
        self._fd: int | None = None
        self._identity = (0, 0)  # (device, inode) of the open file
        self._size = 0
        check_directory(directory)

    def _last_seq(self) -> int:
        try:
            names = [p.name for p in self.directory.glob(f"{self._prefix}*.jsonl")]
        except OSError:
            return 0
        seqs = [
            int(n[len(self._prefix) : -6]) for n in names if n[len(self._prefix) : -6].isdigit()
        ]
        return max(seqs, default=0)

    @property
    def identity(self) -> tuple[int, int]:
        """(device, inode) of the file last opened."""
        return self._identity

    @property
    def path(self) -> Path:
        return self.directory / f"{self._prefix}{self._seq:04d}.jsonl"

    def size(self) -> int:
        """The current file's size, opened (or reopened) for appending when needed."""
        if self._fd is not None:
            try:
                status = self.path.lstat()
            except FileNotFoundError:
                self.close()
            else:
                if (status.st_dev, status.st_ino) == self._identity:
                    return self._size
                self.close()
        self.directory.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW
        try:
            fd = os.open(self.path, flags, FILE_MODE)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise SymlinkRefusedError(self.path) from exc
            raise
        status = os.fstat(fd)
        self._fd, self._identity, self._size = fd, (status.st_dev, status.st_ino), status.st_size
        return self._size

    def append(self, data: bytes) -> None:
        """Append ``data`` to the file :meth:`size` opened; a failure closes it and raises
        :class:`WriteFailedError` with the count of bytes that were written first."""
        if self._fd is None:
            raise WriteFailedError(OSError(errno.EBADF, "decision log file is not open"), 0)
        view = memoryview(data)
        written = 0
        try:
            while written < len(view):
                written += os.write(self._fd, view[written:])
        except OSError as exc:
            self._size += written
            self.close()
            raise WriteFailedError(exc, written) from exc
        self._size += written

    def sync(self) -> None:
        """Flush the file's data to the disk (``fdatasync``)."""
        if self._fd is not None:
            os.fdatasync(self._fd)

    def rotate(self) -> None:
        """Close this file; the next :meth:`size` opens the next sequence number."""
        self.close()
        self._seq += 1

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
