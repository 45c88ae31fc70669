"""The decision-record encoder process: JSON lines made off the worker's event loop and GIL.

Each worker that writes decision records starts one child, ``python -m
serving.decisions.encoder`` (numpy and msgspec only; no model, no pickle), when its first
chunk is written. The writer thread sends it packed chunks
(:func:`serving.decisions.packing.pack`) on its stdin and reads the JSON lines back from
its stdout; the writer thread, not the child, appends them to the worker's file, so
rotation, retries, the write-error metrics and the shutdown flush stay in one place
(:mod:`serving.decisions.writer`). Frames are a 4-byte little-endian length and the
payload; a reply also says how many records were dropped (a record that cannot be
encoded is dropped alone, logged by the child with its request id).
The HMAC key of the input fingerprint (``DIGITS_DECISION_HASH_KEY``), if set, reaches the
child in its environment (readable by the service's user only, unlike its argv).

The child runs at a lower CPU priority (``NICENESS``): its work is off the request path,
and at the workers' priority its bursts (a flush's worth of records at once) took the CPU
from their threads and raised the p99 latency of guarded requests; at niceness 10 it
still gets far more CPU than it needs. It ignores SIGINT and SIGTERM and exits when its
stdin closes: when the worker closes it at shutdown, after the last chunk, or when the
worker dies (even by SIGKILL), so it never outlives its worker. If the child cannot be
started, stops answering within ``REPLY_TIMEOUT_SECONDS`` or dies, the worker logs it,
encodes in its own writer thread (the same :func:`~serving.decisions.record.chunk_lines`)
and tries a new child after ``RESTART_SECONDS``: no record is lost to an encoder failure.
"""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
import select
import signal
import struct
import subprocess  # nosec B404 - runs our own module, fixed arguments, no shell
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from serving.decisions.record import RecordTime, chunk_lines

log = logging.getLogger("serving")
LENGTH = struct.Struct("<I")
REPLY = struct.Struct("<II")  # lines length, dropped records
PIPE_BYTES = 1 << 20  # asked of the kernel for both pipes (Linux: fs.pipe-max-size)
REPLY_TIMEOUT_SECONDS = 10.0
RESTART_SECONDS = 5.0
NICENESS = 10  # background work: it yields the CPU to the workers (p99), yet keeps up
PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
HASH_KEY_ENV = "DIGITS_DECISION_HASH_KEY"  # the worker passes its key to the child here


def _widen(fd: int) -> int:
    """Ask for a PIPE_BYTES pipe; its actual capacity (64 KiB when the kernel refuses)."""
    try:
        return fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_BYTES)
    except OSError:
        return 1 << 16


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def _fileno(pipe: IO[bytes] | None) -> int:
    if pipe is None:
        raise OSError("encoder process started without a pipe")
    return pipe.fileno()


def _write_all(fd: int, data: bytes, deadline: float | None) -> None:
    view = memoryview(data)
    while view:
        if not select.select([], [fd], [], _left(deadline))[1]:
            raise TimeoutError("encoder process did not read its input in time")
        view = view[os.write(fd, view) :]


def _complete(
    buffer: bytearray, header: struct.Struct, limit: int
) -> list[tuple[tuple[int, ...], bytes]]:
    """Take up to ``limit`` complete frames (header fields, payload) off ``buffer``'s front;
    a header's first field is its payload's length."""
    frames: list[tuple[tuple[int, ...], bytes]] = []
    offset = 0
    while len(frames) < limit and len(buffer) - offset >= header.size:
        fields = header.unpack_from(buffer, offset)
        end = offset + header.size + fields[0]
        if len(buffer) < end:
            break
        frames.append((fields, bytes(buffer[offset + header.size : end])))
        offset = end
    del buffer[:offset]
    return frames


def _read_more(fd: int, buffer: bytearray, deadline: float | None) -> None:
    """Append what ``fd`` has (one read of up to PIPE_BYTES) to ``buffer``."""
    if not select.select([fd], [], [], _left(deadline))[0]:
        raise TimeoutError("encoder process did not answer in time")
    data = os.read(fd, PIPE_BYTES)
    if not data:
        raise EOFError("encoder process exited")
    buffer += data


class Encoder:
    """The worker's side: JSON lines of packed chunks, from the child (or encoded here)."""

    def __init__(
        self,
        with_inputs: bool,
        reply_timeout: float = REPLY_TIMEOUT_SECONDS,
        hash_key: bytes | None = None,
    ) -> None:
        self._with_inputs = with_inputs
        self._hash_key = hash_key
        self._reply_timeout = reply_timeout
        self._time_of = RecordTime()  # for chunks encoded here
        self._process: subprocess.Popen[bytes] | None = None
        self._pipes = (-1, -1)  # the child's stdin and stdout
        self._capacity = 1 << 16
        self._retry_at = 0.0

    def lines(self, frames: Sequence[bytes]) -> list[tuple[bytes, int] | None]:
        """Each frame's JSON lines and dropped-record count, in order (None: a frame that
        could not be encoded at all; the caller counts its records as dropped)."""
        replies: list[tuple[bytes, int] | None] = []
        while len(replies) < len(frames):
            rest = frames[len(replies) :]
            if time.monotonic() >= self._retry_at:
                try:
                    replies += self._ask(rest)
                    continue
                except (OSError, EOFError, TimeoutError, ValueError) as exc:
                    log.error(
                        "decision-record encoder process failed; encoding in the worker, "
                        "retrying in %.0f s: %r",
                        RESTART_SECONDS,
                        exc,
                    )
                    self.close()
                    self._retry_at = time.monotonic() + RESTART_SECONDS
            try:
                replies.append(
                    chunk_lines(rest[0], self._with_inputs, self._time_of, self._hash_key)
                )
            except Exception:
                log.exception("a packed chunk of decision records could not be decoded")
                replies.append(None)
        return replies

    def _start(self) -> None:
        path = os.environ.get("PYTHONPATH")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (PACKAGE_ROOT, path)))}
        env.pop(HASH_KEY_ENV, None)  # the child's key is this writer's, or none
        if self._hash_key is not None:
            env[HASH_KEY_ENV] = self._hash_key.decode()
        inputs = "--inputs" if self._with_inputs else "--no-inputs"
        process = subprocess.Popen(  # noqa: S603  # nosec B603 - our module, fixed arguments
            [sys.executable, "-m", "serving.decisions.encoder", inputs],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        self._pipes = (_fileno(process.stdin), _fileno(process.stdout))
        self._capacity = min(_widen(self._pipes[0]), _widen(self._pipes[1]))
        os.set_blocking(self._pipes[0], False)
        self._process = process

    def _ask(self, frames: Sequence[bytes]) -> list[tuple[bytes, int] | None]:
        """Send as many frames as fit in the pipe at once (one at least), read their replies.

        The child has read everything sent before, so the pipe is empty and the write
        cannot wait on the child's output: no deadlock."""
        if self._process is None:
            self._start()
        to_child, from_child = self._pipes
        batch: list[bytes] = []
        size = 0
        for frame in frames:
            if batch and size + LENGTH.size + len(frame) > self._capacity:
                break
            batch += [LENGTH.pack(len(frame)), frame]
            size += LENGTH.size + len(frame)
        deadline = time.monotonic() + self._reply_timeout
        _write_all(to_child, b"".join(batch), deadline)
        replies: list[tuple[bytes, int] | None] = []
        buffer = bytearray()
        while len(replies) < len(batch) // 2:  # the child answers a batch in one write
            _read_more(from_child, buffer, deadline)
            for (_, dropped), lines in _complete(buffer, REPLY, len(batch) // 2 - len(replies)):
                replies.append((lines, dropped))
        return replies

    def close(self) -> None:
        """Close the child's stdin (it exits) and reap it."""
        process, self._process = self._process, None
        if process is None:
            return
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                pipe.close()
        try:
            process.wait(timeout=self._reply_timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def serve(source: int, sink: int, with_inputs: bool, hash_key: bytes | None = None) -> None:
    """The child's loop until ``source`` closes: the frames of each read answered together,
    in one write (few wake-ups, and so few GIL hand-offs, in the worker's writer thread)."""
    time_of = RecordTime()
    buffer = bytearray()
    while True:
        try:
            _read_more(source, buffer, None)
        except EOFError:
            return
        replies = []
        for _, frame in _complete(buffer, LENGTH, len(buffer)):
            lines, dropped = chunk_lines(frame, with_inputs, time_of, hash_key)
            replies += [REPLY.pack(len(lines), dropped), lines]
        if replies:
            _write_all(sink, b"".join(replies), None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Encode packed decision records (internal).")
    parser.add_argument(
        "--inputs", action=argparse.BooleanOptionalAction, default=False, help="input pixels"
    )
    args = parser.parse_args(argv)
    os.nice(NICENESS)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker's shutdown closes stdin
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from serving.monitoring.logs import configure_logging

    configure_logging(os.environ.get("DIGITS_LOG_LEVEL", "info"))
    key = os.environ.pop(HASH_KEY_ENV, None)  # from the worker's settings; never logged
    hash_key = key.encode() if key else None
    try:
        serve(sys.stdin.fileno(), sys.stdout.fileno(), args.inputs, hash_key)
    except BrokenPipeError:  # the worker is gone
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
