"""Reading msgspec's ValidationError text: the message, the ``$.path`` it names, the field.

msgspec reports e.g. ``Expected `float` <= 16.0 - at `$.samples[3][12]``` and
``Object contains unknown field `x```. Shared by request decoding (:mod:`serving.inference.inputs`)
and settings (:mod:`serving.settings`).
"""

from __future__ import annotations

import re

_AT = re.compile(r" - at `\$\.?([^`]*)`$")
_FIELD = re.compile(r"field `([^`]*)`")


def split_location(text: str) -> tuple[str, str | None]:
    """``(message, location)``: the location without ``$.`` (``""`` for the root), or None."""
    match = _AT.search(text)
    if match is None:
        return text, None
    return text[: match.start()], match.group(1)


def field_name(message: str) -> str | None:
    """The field an unknown- or missing-field message names."""
    match = _FIELD.search(message)
    return match.group(1) if match else None
