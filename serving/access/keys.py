"""API keys: the keys file (hashes only) and its command line,
``python -m serving.access.keys add|list|revoke|revoke-all``.

A key's id is the first 12 hex digits of its sha256 (not a secret: the key cannot be found
from it). ``add`` prints it, ``list`` shows it with the key's age, and ``revoke --key-id``
removes that one key, so a client's key can be rotated with overlap: add a second key for
the same client, move the client to it, then revoke the old one by its id
(docs/operations.md).

The file named by ``DIGITS_API_KEYS_FILE`` holds one JSON object per line::

    {"client_id": "alice", "key_sha256": "<64 hex>", "scopes": ["predict"], "created": "..."}

A key is 32 random bytes (``secrets``), shown once by ``add`` and never stored: only its
sha256 is. A random 256-bit key needs no slow password hash; the sha256 lets the service
find the entry by hash and then compare it in constant time (:func:`KeyRing.verify`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import fcntl
import hashlib
import hmac
import os
import re
import secrets
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import msgspec

from serving.access import SCOPES
from serving.cli import EnvOption

KEY_PREFIX = "dgk_"
CLIENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"


class KeysFileError(ValueError):
    """The keys file cannot be read or holds a malformed line."""


class KeyEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    client_id: str
    key_sha256: str
    scopes: list[str]
    created: str = ""


KEY_ID_LENGTH = 12
KEYS_FILE = EnvOption("--file", "DIGITS_API_KEYS_FILE", "keys file")


def key_id(entry: KeyEntry) -> str:
    """The id ``list`` shows and ``revoke --key-id`` takes: a prefix of the key's sha256."""
    return entry.key_sha256[:KEY_ID_LENGTH]


def age(created: str, now: dt.datetime) -> str:
    """How long ago ``created`` (ISO 8601) was, in days and hours (``?`` if unknown)."""
    try:
        seconds = int((now - dt.datetime.fromisoformat(created)).total_seconds())
    except (ValueError, TypeError):
        return "?"
    days, rest = divmod(max(seconds, 0), 86400)
    return f"{days}d{rest // 3600:02d}h"


def key_digest(key: str) -> str:
    """The stored form of a key: sha256 hex of its UTF-8 bytes."""
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


def _parse_client_id(value: str) -> str:
    if not re.fullmatch(CLIENT_ID_PATTERN, value):
        raise ValueError(f"client id {value!r} must match {CLIENT_ID_PATTERN}")
    return value


def read_entries(path: Path) -> list[KeyEntry]:
    """Every entry of the keys file; :class:`KeysFileError` names the file and the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise KeysFileError(f"DIGITS_API_KEYS_FILE={str(path)!r} cannot be read: {exc}") from None
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = msgspec.json.decode(line, type=KeyEntry)
            _parse_client_id(entry.client_id)
            if len(entry.key_sha256) != 64 or entry.key_sha256.strip("0123456789abcdef"):
                raise ValueError("key_sha256 is not 64 lowercase hex digits")
            unknown = set(entry.scopes) - set(SCOPES)
            if unknown:
                raise ValueError(f"unknown scope {sorted(unknown)[0]!r}")
        except (msgspec.DecodeError, ValueError) as exc:
            raise KeysFileError(
                f"DIGITS_API_KEYS_FILE={str(path)!r} line {number} is malformed: {exc}"
            ) from None
        entries.append(entry)
    return entries


class KeyRing:
    """The keys file in memory, re-read when it changes (a revoke applies without restart)."""

    def __init__(self, path: Path, check_seconds: float = 1.0) -> None:
        self.path = path
        self.check_seconds = check_seconds
        self._by_digest: dict[str, KeyEntry] = {}
        self._stamp: tuple[int, int, int, int] | None = None
        self._next_check = 0.0
        self.generation = 0  # bumped by every reload: what callers remember is stale
        # Since when (monotonic) the file could not be re-read; None: the last read worked.
        self.failing_since: float | None = None
        self.reload()  # start-up: an unreadable or malformed file raises KeysFileError

    def _file_stamp(self) -> tuple[int, int, int, int]:
        # The inode and ctime too: a file replaced within the mtime's resolution, or with its
        # mtime set back (cp -p, rsync -t), is still a different file.
        stat = self.path.stat()
        return stat.st_ino, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size

    def reload(self) -> None:
        stamp = self._file_stamp() if self.path.exists() else None
        entries = read_entries(self.path)
        self._by_digest = {entry.key_sha256: entry for entry in entries}
        self._stamp = stamp
        self.generation += 1

    def refresh(self, now: float) -> None:
        """Re-read the file if it changed (checked at most every ``check_seconds``).

        A file that became unreadable or malformed keeps the last good keys, raises
        :class:`KeysFileError` (the caller logs) and is tried again at the next check;
        :attr:`failing_since` says since when.
        """
        if now < self._next_check:
            return
        self._next_check = now + self.check_seconds
        try:
            stamp = self._file_stamp()
        except OSError:
            stamp = None
        if stamp == self._stamp:
            return
        try:
            self.reload()
        except KeysFileError:
            if self.failing_since is None:
                self.failing_since = now
            raise
        self.failing_since = None

    def problem(self, now: float, grace_seconds: float) -> str | None:
        """``keys_file_unreadable`` once the file has failed to re-read (:meth:`refresh`) for
        longer than ``grace_seconds`` (the old keys, revoked ones included, would otherwise
        stay valid for ever); else None."""
        since = self.failing_since
        if since is not None and now - since > grace_seconds:
            return "keys_file_unreadable"
        return None

    def verify(self, key: str) -> KeyEntry | None:
        """The entry of ``key``, or None: hash lookup, then a constant-time comparison."""
        digest = key_digest(key)
        entry = self._by_digest.get(digest)
        stored = entry.key_sha256 if entry is not None else "0" * 64
        if hmac.compare_digest(stored, digest) and entry is not None:
            return entry
        return None


def _write_atomically(path: Path, lines: Sequence[bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as out:
            out.writelines(line + b"\n" for line in lines)
            out.flush()
            os.fsync(out.fileno())
        Path(temp).chmod(0o600)
        Path(temp).replace(path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold the keys file's lock (``<file>.lock``, ``flock``) for a read-modify-write.

    The file itself is replaced on every write, so the lock lives beside it. Without it an
    ``add`` and a ``revoke`` that overlap both read the old file and the later write wins: a
    revoked key came back after ``revoke`` had reported success.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_file = path.with_name(path.name + ".lock")
    with lock_file.open("a+b") as handle:
        lock_file.chmod(0o600)
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def add_key(path: Path, client_id: str, scopes: Sequence[str]) -> str:
    """Append a new key's entry (hash only) and return the key (shown once)."""
    _parse_client_id(client_id)
    unknown = set(scopes) - set(SCOPES)
    if unknown or not scopes:
        raise ValueError(f"scopes must be a non-empty subset of {', '.join(SCOPES)}")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    entry = KeyEntry(
        client_id=client_id,
        key_sha256=key_digest(key),
        scopes=sorted(set(scopes), key=SCOPES.index),
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    with locked(path):
        entries = read_entries(path) if path.exists() else []
        _write_atomically(path, [msgspec.json.encode(e) for e in [*entries, entry]])
    return key


def revoke(path: Path, client_id: str) -> int:
    """Remove every key of ``client_id``; returns how many were removed."""
    with locked(path):
        entries = read_entries(path)
        kept = [entry for entry in entries if entry.client_id != client_id]
        _write_atomically(path, [msgspec.json.encode(entry) for entry in kept])
    return len(entries) - len(kept)


def revoke_key(path: Path, wanted: str) -> KeyEntry:
    """Remove the one key whose id (or a longer prefix of its sha256, at least
    ``KEY_ID_LENGTH`` hex digits) is ``wanted``; returns its entry. No key or several:
    :class:`ValueError`, and nothing is removed."""
    wanted = wanted.lower()
    if len(wanted) < KEY_ID_LENGTH or wanted.strip("0123456789abcdef"):
        raise ValueError(f"key id {wanted!r}: at least {KEY_ID_LENGTH} hex digits (keys list)")
    with locked(path):
        entries = read_entries(path)
        matching = [entry for entry in entries if entry.key_sha256.startswith(wanted)]
        if len(matching) != 1:
            raise ValueError(f"key id {wanted!r} matches {len(matching)} keys, not 1")
        kept = [entry for entry in entries if entry is not matching[0]]
        _write_atomically(path, [msgspec.json.encode(entry) for entry in kept])
    return matching[0]


def revoke_all(path: Path) -> int:
    """Remove every key (the file stays, empty): every protected route answers 401."""
    with locked(path):
        removed = len(read_entries(path)) if path.exists() else 0
        _write_atomically(path, [])
    return removed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.access.keys", description=__doc__)
    KEYS_FILE.add_to(parser)
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="create a key for CLIENT_ID; prints it once")
    add.add_argument("client_id")
    add.add_argument("--scopes", required=True, help=f"comma-separated: {','.join(SCOPES)}")
    commands.add_parser(
        "list", help="client ids, key ids, scopes, creation times and ages (never keys)"
    )
    rev = commands.add_parser("revoke", help="remove every key of CLIENT_ID, or one by --key-id")
    which = rev.add_mutually_exclusive_group(required=True)
    which.add_argument("client_id", nargs="?")
    which.add_argument("--key-id", help="the one key to remove (its id from add or list)")
    commands.add_parser("revoke-all", help="remove every key of every client (empty file)")
    args = parser.parse_args(argv)
    path = KEYS_FILE.path(parser, args)
    try:
        if args.command == "add":
            scopes = [s.strip() for s in args.scopes.split(",") if s.strip()]
            key = add_key(path, args.client_id, scopes)
            print(key)
            print(
                f"key {key_digest(key)[:KEY_ID_LENGTH]} for {args.client_id} shown once; only "
                "its sha256 is stored",
                file=sys.stderr,
            )
        elif args.command == "list":
            now = dt.datetime.now(dt.UTC)
            for entry in read_entries(path):
                print(
                    f"{entry.client_id}\t{key_id(entry)}\t{','.join(entry.scopes)}\t"
                    f"{entry.created}\t{age(entry.created, now)}"
                )
        elif args.command == "revoke" and args.key_id:
            entry = revoke_key(path, args.key_id)
            print(f"revoked key {key_id(entry)} of {entry.client_id}", file=sys.stderr)
        elif args.command == "revoke-all":
            removed = revoke_all(path)
            print(f"revoked all {removed} key(s); {path} is empty", file=sys.stderr)
        else:
            removed = revoke(path, args.client_id)
            print(f"revoked {removed} key(s) of {args.client_id}", file=sys.stderr)
            return 0 if removed else 1
    except (KeysFileError, ValueError, OSError) as exc:
        print(f"serving.access.keys: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
