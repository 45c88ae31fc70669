"""Which GTO-registered version a working copy serves: looked up once, at start-up.

A version registered with GTO (``make release VERSION=v1.2.0``) is an annotated git tag
``digits-classifier@v1.2.0`` on a commit. The working copy serves that version when every
file the service serves has the md5 that the commit's ``dvc.lock`` pins: the same model,
not merely the same HEAD (a later commit that changes no served file still serves it; an
uncommitted retrain does not).

1. Plain ``git`` lists the registration tags and reads each tagged commit's ``dvc.lock``
   (``git cat-file --batch``: milliseconds). No tag matches: no registry version (``None``).
2. Only when one does, ``gto show digits-classifier --json`` applies GTO's own rules
   (deregistrations, stage assignments, rollbacks) to say which matching versions are active
   and their stages. The one on HEAD wins, else GTO's first (the highest version). GTO
   takes ~2 s to start, so it runs in a child process and never in a worker:
   ``python -m serving`` looks up before the workers start and hands them the result in
   :data:`RESULT_ENV`; a worker without one (an app started another way) looks up itself,
   once per process and state of the tags.

No git, no repository, no gto: ``None``, with a note the worker logs. An image has no git;
there ``models/registry.json`` (:mod:`serving.lineage.registry`) is read instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess  # nosec B404 - runs git and gto with fixed arguments, no shell
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from serving.lineage import REGISTRY_JSON, REQUIRED_ARTIFACTS, FileSnapshot, LineageError, find_out
from serving.lineage import read_lock as read_lock_file
from serving.lineage.lockfile import LockFormatError, parse_lock
from serving.lineage.registry import (
    ARTIFACT,
    RegistryInfo,
    check_registry,
    parse_registry,
    read_registry,
)
from serving.settings import Settings

RESULT_ENV = "DIGITS_REGISTRY_RESULT"
# The served files /model lists under "artifacts" (the model, the OOD detector, the reports).
SERVED_PATHS = REQUIRED_ARTIFACTS
GIT_TIMEOUT_SECONDS = 10
# libyaml's safe loader when PyYAML has it (its wheels do): each registered commit's lock
# is parsed, ~10x faster than the pure-Python one.
GTO_TIMEOUT_SECONDS = 60
# GTO's registration tag (gto/constants.py tag_re): NAME@vSEMVER, optionally #N; "!" deregisters.
_REGISTRATION = re.compile(
    rf"^{re.escape(ARTIFACT)}@(?P<version>v\d+\.\d+\.\d+[0-9A-Za-z.+-]*)(#\d+)?$"
)


class LookupResult(msgspec.Struct, frozen=True):
    """What the start-up lookup compared (``served``: lock path -> md5) and what it found."""

    served: dict[str, str]
    registry: RegistryInfo | None = None
    note: str | None = None


class _LookupError(Exception):
    """No git, not a repository, or a git/gto command failed: no registry version."""


_cache: dict[tuple[str, ...], LookupResult] = {}


def served_md5s(lock: dict[str, Any]) -> dict[str, str]:
    """The md5 that ``lock`` pins for each served file (lock path -> md5)."""
    served = {}
    for lock_path in SERVED_PATHS:
        md5 = find_out(lock, lock_path)[2].get("md5")
        if isinstance(md5, str):
            served[lock_path] = md5
    return served


def _run(
    args: list[str], cwd: Path, stdin: bytes | None = None, timeout: int = GIT_TIMEOUT_SECONDS
) -> bytes:
    """Run a tool (``git`` from PATH, or a full path); its stdout, else :class:`_LookupError`."""
    tool = shutil.which(args[0])
    if tool is None:
        raise _LookupError(f"{args[0]} not found")
    args = [tool, *args[1:]]
    try:
        completed = subprocess.run(  # noqa: S603  # nosec B603 - fixed tools, no shell
            args, cwd=cwd, input=stdin, capture_output=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise _LookupError(f"{args[0]}: {exc}") from None
    if completed.returncode != 0:
        detail = " ".join(completed.stderr.decode(errors="replace").split())[-300:]
        raise _LookupError(f"{' '.join(args[:3])}: exit {completed.returncode}: {detail}")
    return completed.stdout


def _tags(top: Path) -> str:
    """Every tag of the artifact (GTO's registrations, assignments, deregistrations...): its
    type, the commit it points at and its name, one a line (also the cache key)."""
    return _run(
        [
            "git",
            "for-each-ref",
            "--format=%(objecttype) %(*objectname) %(objectname) %(refname:strip=2)",
            f"refs/tags/{ARTIFACT}*",
        ],
        top,
    ).decode()


def _registrations(tags: str) -> list[tuple[str, str]]:
    """(version, commit) of every annotated registration tag in ``tags``."""
    found = []
    for line in tags.splitlines():
        fields = line.split(" ", 3)
        if len(fields) != 4 or fields[0] != "tag" or not fields[1]:
            continue  # GTO ignores lightweight tags (object type "commit", nothing peeled)
        match = _REGISTRATION.match(fields[3])
        if match:
            found.append((match["version"], fields[1]))
    return found


def _locks_at(top: Path, rel: str, commits: list[str]) -> dict[str, dict[str, Any] | None]:
    """``dvc.lock`` (at ``rel``) of each commit, parsed; ``None`` where absent or invalid."""
    out = _run(
        ["git", "cat-file", "--batch"], top, "".join(f"{c}:{rel}\n" for c in commits).encode()
    )
    locks: dict[str, dict[str, Any] | None] = {}
    position = 0
    for commit in commits:
        end = out.index(b"\n", position)
        header = out[position:end].split()
        position = end + 1
        if len(header) != 3 or header[1] != b"blob":  # "<name> missing"
            locks[commit] = None
            continue
        size = int(header[2])
        text = out[position : position + size]
        position += size + 1
        try:
            locks[commit] = parse_lock(text)
        except LockFormatError:
            locks[commit] = None
    return locks


def _pins(lock: dict[str, Any] | None, served: dict[str, str]) -> bool:
    if lock is None:
        return False
    try:
        return served_md5s(lock) == served
    except LineageError:
        return False


def _gto() -> str:
    beside = Path(sys.executable).parent / "gto"
    return str(beside) if beside.exists() else "gto"


def _choose(top: Path, matches: list[tuple[str, str]], head: str) -> RegistryInfo | None:
    """GTO's view of the matching versions: the active one on HEAD, else its first."""
    shown = json.loads(_run([_gto(), "show", ARTIFACT, "--json"], top, timeout=GTO_TIMEOUT_SECONDS))
    if not isinstance(shown, list):
        raise _LookupError(f"gto show {ARTIFACT} --json: expected a list of versions")
    wanted = set(matches)
    active = [  # gto show lists active versions only: a deregistered one is not there
        row
        for row in shown
        if isinstance(row, dict)
        and (row.get("version"), row.get("commit_hexsha")) in wanted
        and row.get("registrations")
    ]
    if not active:
        return None
    row = next((row for row in active if row["commit_hexsha"] == head), active[0])
    stages = [str(stage.get("stage")) for stage in row.get("stages") or []]
    return RegistryInfo(
        artifact=ARTIFACT,
        version=row["version"],
        stage=", ".join(stages) or None,
        ref=f"{ARTIFACT}@{row['version']}",
        commit=row["commit_hexsha"],
    )


def lookup(lock_file: Path, served: dict[str, str] | None = None) -> LookupResult:
    """The registered version whose commit pins the served files (``served``: lock path ->
    md5, by default what ``lock_file`` pins) in the repository of ``lock_file``.

    Without registration tags nothing is parsed: the result is ``None`` for any files, and
    ``served`` stays empty when not given (a worker then runs this cheap case itself)."""
    project = lock_file.resolve().parent
    try:  # no git or no repository (an image, a bundle copied without .git): unregistered
        top = Path(_run(["git", "rev-parse", "--show-toplevel"], project).decode().strip())
        tags = _tags(top)
    except _LookupError:
        return LookupResult(served or {})
    registered = _registrations(tags)
    if not registered:
        return LookupResult(served or {})
    if served is None:
        try:
            served = served_md5s(read_lock_file(lock_file))
        except LineageError as exc:
            return LookupResult({}, None, f"no registry lookup: {exc}")
    try:
        rel = lock_file.resolve().relative_to(top.resolve()).as_posix()
        head = _run(["git", "rev-parse", "HEAD"], top).decode().strip()
        key = (str(top), rel, head, tags, repr(sorted(served.items())))
        if key in _cache:
            return _cache[key]
        locks = _locks_at(top, rel, sorted({commit for _, commit in registered}))
        matches = [(v, c) for v, c in registered if _pins(locks[c], served)]
        result = LookupResult(served, _choose(top, matches, head) if matches else None)
    except (_LookupError, ValueError) as exc:
        return LookupResult(served, None, f"registry lookup failed, no registry version: {exc}")
    _cache[key] = result
    return result


def encode_result(result: LookupResult) -> str:
    return msgspec.json.encode(result).decode()


def decode_result(text: str) -> LookupResult | None:
    try:
        return msgspec.json.decode(text, type=LookupResult)
    except msgspec.DecodeError:
        return None


def lookup_before_workers(settings: Settings) -> None:
    """In ``python -m serving``, before the workers start: look up once and hand them the
    result (unless ``registry.json`` is beside the model: the workers read that)."""
    os.environ.pop(RESULT_ENV, None)
    try:
        if read_registry(settings.resolved_model_dir) is not None:
            return
    except LineageError:
        return  # the workers refuse to serve and say why
    os.environ[RESULT_ENV] = encode_result(lookup(settings.lock_file))


def registry_for(
    settings: Settings,
    served: dict[str, str],
    snapshot: FileSnapshot,
    environ: Mapping[str, str] | None = None,
) -> tuple[RegistryInfo | None, str | None]:
    """In a worker, for the verified files ``served`` (lock path -> md5): the registry entry
    and a note on why there is none. ``registry.json`` beside the model, as read into
    ``snapshot`` (signed with the rest; refused when made for other files), else the
    launcher's result if it compared these md5s, else a lookup."""
    data = snapshot.get(REGISTRY_JSON)
    if data is not None:
        entry = parse_registry(data, snapshot.path(REGISTRY_JSON))
        check_registry(entry, served, snapshot.path(REGISTRY_JSON))
        return entry, None
    env = os.environ if environ is None else environ
    handed = decode_result(env.get(RESULT_ENV, ""))
    if handed is not None and all(handed.served.get(p) == md5 for p, md5 in served.items()):
        return handed.registry, handed.note
    result = lookup(settings.lock_file, served)
    return result.registry, result.note
