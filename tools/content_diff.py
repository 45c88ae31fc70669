"""How two versions of one pipeline file differ, by format (tools/lock_diff.py).

- ``.json``: both documents walked (dictdiffer), numbers paired by JSON path; keys, list items,
  strings and types that differ are structural;
- ``.npz`` (tools/array_diff.py): per array, shape and dtype changes are structural, values
  compared numerically (``allow_pickle=False``: an object array is reported, never unpickled);
- ``.onnx`` (tools/array_diff.py): initializers (and tensor attributes of nodes) compared by
  name with ``onnx.numpy_helper``; anything else in the model (nodes, inputs, outputs, opsets,
  producer, metadata) is structural;
- other UTF-8 text (Markdown, CSV, YAML...): a unified diff, limited; when only numbers and
  hashes (hex strings: md5s, fingerprints of other outputs) in otherwise equal lines changed,
  the numbers are compared too;
- anything else (joblib, pickles, unknown binary): "differs, not compared". Never unpickled.

The verdict is "numeric noise only" when every number that changed is within the noise
thresholds (tools/numeric_diff.py) and nothing structural changed, "only hashes changed" when a
text differs only in hex hashes (it follows other outputs), else "substantive change".
"""

from __future__ import annotations

import difflib
import json
import re
from pathlib import PurePosixPath
from typing import Any

import dictdiffer

from tools.array_diff import compare_npz, compare_onnx
from tools.diff_result import ContentDiff, short
from tools.numeric_diff import Noise

MAX_DIFF_LINES = 40
NEVER_LOADED = frozenset({".joblib", ".pkl", ".pickle"})
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# A number standing alone: not part of a word, a hash or a version string.
_NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.])")
# A hex hash (md5, a fingerprint or version prefix): 8 to 64 hex digits, letters and digits.
_HASH = re.compile(r"(?<!\w)(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{8,64}(?!\w)")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def json_path(parts: Any) -> str:
    if isinstance(parts, str):  # dictdiffer gives a top-level key as a string
        parts = [parts]
    path = "$"
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        elif _IDENTIFIER.fullmatch(str(part)):
            path += f".{part}"
        else:
            path += f"[{json.dumps(part)}]"
    return path


def compare_json(old: bytes, new: bytes, noise: Noise) -> ContentDiff:
    result = ContentDiff("json")
    try:
        before, after = json.loads(old), json.loads(new)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        text = compare_text(old, new, noise)
        text.structural.insert(0, f"not valid JSON on both sides: {error}")
        return text
    labels: list[str] = []
    pairs: list[tuple[float, float]] = []
    for action, node, change in dictdiffer.diff(before, after, tolerance=None, dot_notation=False):
        if action == "change":
            was, now = change
            if _is_number(was) and _is_number(now):
                labels.append(json_path(node))
                pairs.append((was, now))
            else:
                result.structural.append(f"{json_path(node)}: {short(was)} -> {short(now)}")
        else:  # "add" / "remove": (key or index, value) pairs under node
            verb = "added" if action == "add" else "removed"
            for key, value in change:
                path = json_path([*([node] if isinstance(node, str) else node), key])
                result.structural.append(f"{path}: {verb} {short(value)}")
    if pairs:
        olds, news = zip(*pairs, strict=True)
        numeric = noise.compare(olds, news, labels.__getitem__, counted=False)
        if numeric is not None:
            result.numeric.append(("numbers", numeric))
    return result


def _decode(data: bytes) -> str | None:
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _text_skeleton(line: str) -> str:
    return _NUMBER.sub("#", _HASH.sub("<hash>", line))


def _numbers(line: str) -> list[str]:
    return _NUMBER.findall(_HASH.sub("<hash>", line))


def compare_text(old: bytes, new: bytes, noise: Noise, path: str = "") -> ContentDiff:
    before, after = _decode(old), _decode(new)
    if before is None or after is None:
        return ContentDiff("binary", compared=False)
    result = ContentDiff("text")
    a, b = before.splitlines(), after.splitlines()
    diff = list(
        difflib.unified_diff(a, b, f"HEAD/{path}", f"working tree/{path}", n=1, lineterm="")
    )
    if len(diff) > MAX_DIFF_LINES:
        diff = [*diff[:MAX_DIFF_LINES], f"... ({len(diff) - MAX_DIFF_LINES} more diff lines)"]
    result.diff = diff
    if len(a) != len(b) or any(
        _text_skeleton(x) != _text_skeleton(y) for x, y in zip(a, b, strict=True)
    ):
        result.structural.append("lines differ beyond their numbers and hashes")
        return result
    labels: list[str] = []
    pairs: list[tuple[float, float]] = []
    for line_number, (x, y) in enumerate(zip(a, b, strict=True), start=1):
        if x == y:
            continue
        result.hashes += _HASH.findall(x) != _HASH.findall(y)
        numbers = zip(_numbers(x), _numbers(y), strict=True)
        for k, (u, v) in enumerate(numbers, start=1):
            labels.append(f"line {line_number}, number {k}")
            pairs.append((float(u), float(v)))
    if pairs:
        olds, news = zip(*pairs, strict=True)
        numeric = noise.compare(olds, news, labels.__getitem__, counted=False)
        if numeric is not None:
            result.numeric.append(("numbers", numeric))
    return result


def compare(path: str, old: bytes, new: bytes, noise: Noise) -> ContentDiff:
    """Compare two versions of the file at ``path`` (its suffix picks the format)."""
    suffix = PurePosixPath(path).suffix.lower()
    if old == new:
        return ContentDiff(suffix.lstrip(".") or "file", identical=True)
    if suffix == ".json":
        return compare_json(old, new, noise)
    if suffix == ".npz":
        return compare_npz(old, new, noise)
    if suffix == ".onnx":
        return compare_onnx(old, new, noise)
    if suffix in NEVER_LOADED:
        return ContentDiff("binary", compared=False)
    return compare_text(old, new, noise, path)
