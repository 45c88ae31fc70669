"""This worker's decision-log file: kept open for appending, rotated by sequence number.

``decisions-<host>-<pid>-<seq>.jsonl`` in the log directory. The file stays open between
writes (one ``stat`` and one ``write`` per flush); it is reopened when its path no longer
names the open file (moved or removed outside the service), after a failed write, and on
rotation (the next ``<seq>``).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path


class LogFile:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._prefix = f"decisions-{socket.gethostname()}-{os.getpid()}-"
        self._seq = self._last_seq()
        self._fd: int | None = None
        self._identity = (0, 0)  # (device, inode) of the open file
        self._size = 0

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
    def path(self) -> Path:
        return self.directory / f"{self._prefix}{self._seq:04d}.jsonl"

    def size(self) -> int:
        """The current file's size, opened (or reopened) for appending when needed."""
        if self._fd is not None:
            try:
                status = self.path.stat()
            except FileNotFoundError:
                self.close()
            else:
                if (status.st_dev, status.st_ino) == self._identity:
                    return self._size
                self.close()
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        status = os.fstat(fd)
        self._fd, self._identity, self._size = fd, (status.st_dev, status.st_ino), status.st_size
        return self._size

    def append(self, data: bytes) -> None:
        """Append ``data`` to the file :meth:`size` opened; a failure closes it."""
        if self._fd is None:
            raise OSError("decision log file is not open")
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError:
            self.close()
            raise
        self._size += len(data)

    def rotate(self) -> None:
        """Close this file; the next :meth:`size` opens the next sequence number."""
        self.close()
        self._seq += 1

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
