"""Which CPUs the servers get and which the load generator gets.

Issue 24's outside harness measured with one core for the server and one for the client;
``make bench`` does the same on a machine of two or more CPUs: the servers (every target,
its worker and child processes and threads, and the benchmark's Redis) run on the first
half of the CPUs this process may use, wrk on the rest. Without the split the client and
the server compete for the same cores, and a cheap server (the floor) gains from the
client's idle moments more than a costly one. ``taskset`` (util-linux) applies the split
before ``exec``, so every thread and child a server starts inherits it.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass


@dataclass(frozen=True)
class CpuSplit:
    server: tuple[int, ...]
    client: tuple[int, ...]

    @staticmethod
    def _prefix(cpus: tuple[int, ...]) -> list[str]:
        return ["taskset", "-c", ",".join(map(str, cpus))] if cpus else []

    def server_prefix(self) -> list[str]:
        """The command prefix that runs a server on the server CPUs (none: no prefix)."""
        return self._prefix(self.server)

    def client_prefix(self) -> list[str]:
        return self._prefix(self.client)

    def describe(self) -> str:
        if not self.server:
            return "servers and wrk share every CPU (no split: fewer than 2 CPUs, or --no-pin)"
        return (
            f"servers (their workers, child processes and Redis) on CPU "
            f"{','.join(map(str, self.server))}, wrk on CPU {','.join(map(str, self.client))} "
            "(taskset), as issue 24's outside harness measured"
        )


NO_SPLIT = CpuSplit((), ())


def split_cpus(pin: bool = True) -> CpuSplit:
    """Half the usable CPUs for the servers, the rest for wrk; no split when ``pin`` is
    false, with fewer than 2 CPUs, or without ``taskset``."""
    usable = sorted(os.sched_getaffinity(0))
    if not pin or len(usable) < 2 or shutil.which("taskset") is None:
        return NO_SPLIT
    half = len(usable) // 2
    return CpuSplit(tuple(usable[:half]), tuple(usable[half:]))
