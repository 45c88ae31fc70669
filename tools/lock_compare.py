"""dvc.lock at a revision against the working tree, stage by stage, and each changed out by
content (tools/content_diff.py): the model behind ``python -m tools.lock_diff``."""

from __future__ import annotations

import hashlib
import shutil
import subprocess  # nosec B404 - runs git only, with fixed arguments
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dictdiffer
import yaml

from tools.content_diff import compare
from tools.diff_result import Category, ContentDiff
from tools.numeric_diff import Noise


class LockDiffError(Exception):
    """A usage error: the repository, the lock or the revision cannot be read."""


@dataclass(frozen=True)
class Entry:
    """One dep or out of a stage in dvc.lock."""

    path: str
    md5: str | None
    size: int | None
    nfiles: int | None

    @property
    def is_dir(self) -> bool:
        return self.md5 is not None and self.md5.endswith(".dir")


@dataclass
class FileResult:
    """Old and new content of one file, compared."""

    path: str
    content: ContentDiff | None = None
    status: str = ""  # when content is None: why nothing was compared
    notes: list[str] = field(default_factory=list)

    @property
    def category(self) -> Category:
        return Category.NOT_COMPARED if self.content is None else self.content.category

    @property
    def verdict(self) -> str:
        return self.status if self.content is None else self.content.verdict


@dataclass
class EntryChange:
    kind: str  # "out" or "dep"
    path: str
    old: Entry | None
    new: Entry | None
    file: FileResult | None = None


@dataclass
class StageChange:
    name: str
    status: str  # "changed", "added" or "removed"
    notes: list[str] = field(default_factory=list)
    entries: list[EntryChange] = field(default_factory=list)


@dataclass
class Report:
    rev: str
    commit: str
    lock: str
    noise: Noise
    stages: list[StageChange]
    others: list[FileResult]
    notes: list[str]

    @property
    def files(self) -> list[FileResult]:
        outs = [e.file for s in self.stages for e in s.entries if e.file is not None]
        return outs + self.others

    @property
    def differs(self) -> bool:
        return bool(self.stages) or any(f.category is not Category.IDENTICAL for f in self.others)


class Sources:
    """Old content (git at REV, else the DVC cache) and new content (the working tree)."""

    def __init__(self, lock_dir: Path, rev: str) -> None:
        self.lock_dir = lock_dir
        self.rev = rev
        git = shutil.which("git")
        if git is None:
            raise LockDiffError("git is not installed")
        self.executable = git
        top = self.git("rev-parse", "--show-toplevel").decode().strip()
        self.prefix = lock_dir.resolve().relative_to(Path(top).resolve()).as_posix()
        verified = self.run("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
        if verified.returncode != 0:
            raise LockDiffError(f"{rev!r} is not a commit of {top}")
        self.commit = verified.stdout.decode().strip()
        self._cache: Any = None

    def run(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(  # noqa: S603  # nosec B603 - git, no shell
            [self.executable, "--no-replace-objects", "-C", str(self.lock_dir), *args],
            capture_output=True,
            check=False,
        )

    def git(self, *args: str) -> bytes:
        completed = self.run(*args)
        if completed.returncode != 0:
            message = completed.stderr.decode(errors="replace").strip() or "failed"
            raise LockDiffError(f"git {' '.join(args)}: {message}")
        return completed.stdout

    def at_rev(self, path: str) -> bytes | None:
        """The file as committed at REV, or None when REV has no such file."""
        spec = f"{self.commit}:{path if self.prefix == '.' else f'{self.prefix}/{path}'}"
        if self.run("cat-file", "-e", spec).returncode != 0:
            return None
        return self.git("cat-file", "blob", spec)

    def in_cache(self, md5: str) -> bytes | None:
        """The DVC cache object of ``md5``, when this is a DVC project that has it."""
        if not (self.lock_dir / ".dvc").is_dir():
            return None
        if self._cache is None:
            from dvc.repo import Repo  # the DVC API knows where the cache is configured

            with Repo(str(self.lock_dir)) as repo:
                self._cache = (repo.cache.local, repo.cache.legacy)
        for odb in self._cache:
            path = Path(odb.oid_to_path(md5))
            if path.is_file():
                return path.read_bytes()
        return None

    def working(self, path: str) -> bytes | None:
        file = self.lock_dir / path
        return file.read_bytes() if file.is_file() else None

    def changed_paths(self, pathspecs: Sequence[str]) -> list[str]:
        """Files under ``pathspecs`` that differ from REV, or are new and not ignored."""
        spec = ["--", *pathspecs]
        changed = self.git("diff", "--name-only", "--relative", "-z", self.commit, *spec)
        new = self.git("ls-files", "--others", "--exclude-standard", "-z", *spec)
        return sorted({p for p in (changed + new).decode().split("\0") if p})


def parse_lock(text: bytes | str, where: str) -> dict[str, dict[str, Any]]:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise LockDiffError(f"{where} is not valid YAML: {error}") from error
    stages = document.get("stages") if isinstance(document, dict) else None
    if not isinstance(stages, dict) or not all(isinstance(s, dict) for s in stages.values()):
        raise LockDiffError(f"{where} is not a dvc.lock file (no 'stages' mapping)")
    return stages


def entries(stage: dict[str, Any], key: str) -> dict[str, Entry]:
    found = {}
    for item in stage.get(key) or []:
        if isinstance(item, dict) and isinstance(item.get("path"), str):
            md5 = item.get("md5") or item.get("etag") or item.get("checksum")
            found[item["path"]] = Entry(item["path"], md5, item.get("size"), item.get("nfiles"))
    return found


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _param_name(parts: Sequence[Any]) -> str:
    """``params.yaml:train.mlp.alpha`` from dictdiffer's path of the stage's ``params``."""
    name = ""
    for index, part in enumerate(parts):
        if isinstance(part, int):
            name += f"[{part}]"
        else:
            name += str(part) if index == 0 else (":" if index == 1 else ".") + str(part)
    return name


def _stage_notes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    notes = []
    if old.get("cmd") != new.get("cmd"):
        notes.append(f"cmd: {old.get('cmd')!r} -> {new.get('cmd')!r}")
    changes = dictdiffer.diff(
        old.get("params") or {}, new.get("params") or {}, tolerance=None, dot_notation=False
    )
    for action, node, change in changes:
        path = [node] if isinstance(node, str) else list(node)
        if action == "change":
            notes.append(f"param {_param_name(path)}: {_short(change[0])} -> {_short(change[1])}")
        else:
            verb = "added" if action == "add" else "removed"
            notes += [f"param {_param_name([*path, k])}: {verb} {_short(v)}" for k, v in change]
    return notes


def compare_file(
    sources: Sources, path: str, old: Entry | None, new: Entry | None, noise: Noise
) -> FileResult:
    result = FileResult(path)
    if (old is not None and old.is_dir) or (new is not None and new.is_dir):
        counts = f"{old.nfiles if old else '-'} -> {new.nfiles if new else '-'} files"
        result.status = f"directory output ({counts}), not compared file by file"
        return result
    before = sources.at_rev(path)
    if before is None and old is not None and old.md5 is not None:
        before = sources.in_cache(old.md5)
    after = sources.working(path)
    if before is not None and old is not None and old.md5 != _md5(before):
        result.notes.append(
            f"the old content (md5 {_md5(before)}) is not the one {sources.rev}'s lock records"
        )
    if after is not None and new is not None and new.md5 != _md5(after):
        result.notes.append(
            f"the working-tree file (md5 {_md5(after)}) is not the one the lock records"
        )
    if before is None and after is None:
        result.status = "absent at REV and in the working tree"
    elif after is None:
        result.status = "removed (not in the working tree)"
    elif before is None and old is None:
        result.status = f"new output (not at {sources.rev})"
    elif before is None:
        result.status = (
            f"old version not available (not in git at {sources.rev}, not in the DVC cache):"
            " md5 only"
        )
    else:
        try:
            result.content = compare(path, before, after, noise)
        except Exception as error:  # one unreadable file must not hide the rest of the report
            result.status = f"differs, could not compare: {type(error).__name__}: {error}"
    return result


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def build_report(lock: Path, rev: str, pathspecs: Sequence[str], noise: Noise) -> Report:
    if not lock.is_file():
        raise LockDiffError(f"{lock} does not exist (run dvc repro first)")
    lock_dir = lock.parent.resolve()
    sources = Sources(lock_dir, rev)
    notes = []
    committed = sources.at_rev(lock.name)
    if committed is None:
        notes.append(f"{rev} has no {lock.name}: every stage is new")
    old_stages = parse_lock(committed, f"{rev}:{lock.name}") if committed is not None else {}
    new_stages = parse_lock(lock.read_bytes(), str(lock))
    stages = []
    for name in [*new_stages, *(n for n in old_stages if n not in new_stages)]:
        old, new = old_stages.get(name, {}), new_stages.get(name, {})
        status = (
            "removed"
            if name not in new_stages
            else "added"
            if name not in old_stages
            else "changed"
        )
        change = StageChange(name, status, _stage_notes(old, new))
        for kind, key in (("out", "outs"), ("dep", "deps")):
            was, now = entries(old, key), entries(new, key)
            for path in [*now, *(p for p in was if p not in now)]:
                before, after = was.get(path), now.get(path)
                if before != after:
                    item = EntryChange(kind, path, before, after)
                    if kind == "out":
                        item.file = compare_file(sources, path, before, after, noise)
                    change.entries.append(item)
        if change.notes or change.entries or status != "changed":
            stages.append(change)
    in_lock = {p for s in (*old_stages.values(), *new_stages.values()) for p in entries(s, "outs")}
    in_lock |= {lock.name}
    others = [
        compare_file(sources, path, None, None, noise)
        for path in (sources.changed_paths(pathspecs) if pathspecs else [])
        if path not in in_lock
    ]
    return Report(rev, sources.commit, lock.name, noise, stages, others, notes)
