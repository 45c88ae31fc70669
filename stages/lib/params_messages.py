"""One-line messages for params that fail validation: ``key: problem, got value``."""

from __future__ import annotations

import re

import msgspec

_PATH_IN_MESSAGE = re.compile(r" - at `\$\.?([^`]*)`$")
_UNKNOWN_FIELD = re.compile(r"^Object contains unknown field `([^`]*)`$")
_MISSING = object()


def _lookup(raw: object, dotted_key: str) -> object:
    """The raw value at a dotted key, or ``_MISSING``."""
    node = raw
    for part in dotted_key.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    return node


def one_line(error: msgspec.ValidationError, raw: object) -> str:
    """Rewrite msgspec's message as ``key: problem, got value`` on one line."""
    message = str(error).replace("\n", " ")
    match = _PATH_IN_MESSAGE.search(message)
    key = ""
    if match is not None:
        key = match.group(1).replace("[", ".").replace("]", "")
        message = message[: match.start()]
    unknown = _UNKNOWN_FIELD.match(message)
    if unknown is not None:
        return f"{key + '.' if key else ''}{unknown.group(1)}: unknown key"
    value = _lookup(raw, key) if key else _MISSING
    redundant = (
        value is _MISSING
        or ", got " in message
        or (isinstance(value, str) and repr(value) in message)
    )
    got = "" if redundant else f", got {value!r}"
    return f"{key or '<top level>'}: {message}{got}"
