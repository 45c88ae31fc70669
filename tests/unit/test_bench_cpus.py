"""bench/cpus.py: the servers and the load generator get disjoint CPUs, and a prefixed
command really runs on its share (its threads and children inherit it)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bench.cpus import NO_SPLIT, split_cpus

PROBE = (
    "import os, subprocess, sys, threading\n"
    "seen = []\n"
    "thread = threading.Thread(target=lambda: seen.append(os.sched_getaffinity(0)))\n"
    "thread.start(); thread.join()\n"
    "child = subprocess.run([sys.executable, '-c', 'import os; print(sorted("
    "os.sched_getaffinity(0)))'], capture_output=True, text=True, check=True).stdout.strip()\n"
    "print(sorted(os.sched_getaffinity(0)), sorted(seen[0]), child)\n"
)


def test_the_split_is_disjoint_and_covers_the_usable_cpus() -> None:
    usable = sorted(os.sched_getaffinity(0))
    split = split_cpus()
    if len(usable) < 2:
        assert split == NO_SPLIT
        return
    assert set(split.server).isdisjoint(split.client)
    assert sorted(split.server + split.client) == usable
    assert len(split.server) == len(usable) // 2
    assert "wrk on CPU" in split.describe()


def test_no_pin_shares_every_cpu() -> None:
    assert split_cpus(pin=False) == NO_SPLIT
    assert NO_SPLIT.server_prefix() == [] == NO_SPLIT.client_prefix()
    assert "share every CPU" in NO_SPLIT.describe()


def test_a_prefixed_server_its_threads_and_children_run_on_the_server_cpus() -> None:
    split = split_cpus()
    if split == NO_SPLIT:
        pytest.skip("fewer than 2 usable CPUs or no taskset: nothing to split")
    for prefix, cpus in (
        (split.server_prefix(), split.server),
        (split.client_prefix(), split.client),
    ):
        out = subprocess.run(
            [*prefix, sys.executable, "-c", PROBE], capture_output=True, text=True, check=True
        ).stdout
        expected = str(sorted(cpus))
        assert out.strip() == f"{expected} {expected} {expected}"
