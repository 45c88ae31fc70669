"""``dvc.lock``, parsed in one place: YAML to a dict with a ``stages`` mapping, and its outs.

Every reader of a lock (the served lock's verification, the registry lookup over tagged
commits, the decision-trace tool) parses it here and maps :class:`LockFormatError` to its
own error. PyYAML's C loader is used when the installed PyYAML has it (the registry lookup
parses one lock per registered version).
"""

from __future__ import annotations

from typing import Any

import yaml

_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class LockFormatError(ValueError):
    """The bytes are not a ``dvc.lock``: not UTF-8 YAML, or no ``stages`` mapping."""


def parse_lock(data: bytes | str) -> dict[str, Any]:
    """The lock as a dict, or :class:`LockFormatError` with a one-line reason."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        lock = yaml.load(text, Loader=_LOADER)  # noqa: S506  # nosec B506 - a safe loader
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        one_line = " ".join(str(exc).split())
        raise LockFormatError(f"not valid YAML: {one_line}") from None
    if not isinstance(lock, dict) or not isinstance(lock.get("stages"), dict):
        raise LockFormatError("no 'stages' mapping")
    return lock


def find_out(
    lock: dict[str, Any], lock_path: str
) -> tuple[str, dict[str, Any], dict[str, Any]] | None:
    """The stage name, stage entry and ``outs`` entry that record ``lock_path``, or None."""
    for stage_name, stage in lock["stages"].items():
        if not isinstance(stage, dict):
            continue
        for out in stage.get("outs") or []:
            if isinstance(out, dict) and out.get("path") == lock_path:
                return str(stage_name), stage, out
    return None
