"""Schemathesis hooks (``SCHEMATHESIS_HOOKS``) for test_fuzz.py: the two OIP rules JSON Schema
cannot state.

The inference request's schema (:mod:`serving.protocol.oip_schema`) says everything about
a request except two relations between its parts, which its descriptions state instead:
``data`` holds exactly ``prod(shape)`` values in a regular array, and no output is named
twice. Left alone, schemathesis draws ``shape`` and ``data`` independently, so nearly
every schema-valid request breaks the first rule and is rightly refused (400), and
the negative cases are refused for that size mismatch before the service ever looks at
the mutation they carry.

This hook makes every drawn case keep both rules, in positive and negative mode alike:
it rebuilds ``data`` at the drawn depth from the drawn values (repeated or cut to
``prod(shape)``) and drops repeated output names. It never touches a value's type or
range, ``shape``, or anything else. Schemathesis re-validates an edited case against the
schema and relabels it, so a negative case whose only violation the hook removed is
then tested as positive (and must be accepted). A case whose ``shape`` or ``data`` is not
of the documented form is left as drawn: it is schema-invalid anyway.
"""

from __future__ import annotations

from itertools import cycle, islice
from typing import Any

import schemathesis

from serving.schemas import GRID, N_FEATURES

PIXEL_SHAPES = ([N_FEATURES], [GRID, GRID])
MAX_DEPTH = 3


def _depth(data: Any) -> int | None:
    """The depth of a tree of non-empty lists with JSON scalars at one depth (None: not one)."""
    if isinstance(data, dict) or data == []:
        return None
    if not isinstance(data, list):
        return 0
    depths = {_depth(item) for item in data}
    if len(depths) != 1 or None in depths:
        return None
    (inner,) = depths
    assert inner is not None
    return inner + 1


def _is_whole(size: Any) -> bool:
    """An integer as JSON Schema means it: 3 or 3.0 (schemathesis draws both)."""
    if isinstance(size, bool):
        return False
    return isinstance(size, int) or (isinstance(size, float) and size.is_integer())


def _leaves(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    return [leaf for item in data for leaf in _leaves(item)]


def _row_limit(operation: Any) -> int:
    """The most rows the operation's own schema documents (``shape[0]``'s maximum)."""
    body = operation.definition.raw["requestBody"]["content"]["application/json"]["schema"]
    tensor = body["properties"]["inputs"]["items"]["oneOf"][0]
    return int(tensor["properties"]["shape"]["oneOf"][0]["prefixItems"][0]["maximum"])


def fit_data(tensor: dict[str, Any], max_rows: int) -> None:
    """``tensor["data"]`` rebuilt to ``prod(shape)`` values at its depth, if both are of form."""
    shape, data = tensor.get("shape"), tensor.get("data")
    depth = _depth(data)
    if (
        not isinstance(shape, list)
        or not all(_is_whole(size) for size in shape)
        or shape[1:] not in PIXEL_SHAPES
        or not 1 <= shape[0] <= max_rows
        or depth is None
        or not 1 <= depth <= MAX_DEPTH
    ):
        return
    rows = int(shape[0])
    values = list(islice(cycle(_leaves(data)), rows * N_FEATURES))
    if depth == 1:
        tensor["data"] = values
        return
    grid = [values[row * N_FEATURES : (row + 1) * N_FEATURES] for row in range(rows)]
    if depth == 2:
        tensor["data"] = grid
        return
    tensor["data"] = [[pixels[i * GRID : (i + 1) * GRID] for i in range(GRID)] for pixels in grid]


def drop_repeated_outputs(body: dict[str, Any]) -> None:
    outputs = body.get("outputs")
    if not isinstance(outputs, list):
        return
    seen: set[str] = set()
    kept = []
    for output in outputs:
        name = output.get("name") if isinstance(output, dict) else None
        if isinstance(name, str):
            if name in seen:
                continue
            seen.add(name)
        kept.append(output)
    body["outputs"] = kept


Case = schemathesis.Case[Any]


@schemathesis.hook
def map_case(context: schemathesis.HookContext, case: Case) -> Case:
    """Keep the two cross-field rules of every OIP inference request (see the module doc)."""
    operation = context.operation
    if operation is None or not operation.path.endswith("/infer"):
        return case
    if not isinstance(case.body, dict):
        return case
    body = dict(case.body)
    inputs = body.get("inputs")
    if isinstance(inputs, list):
        max_rows = _row_limit(operation)
        fitted = []
        for tensor in inputs:
            if isinstance(tensor, dict):
                tensor = dict(tensor)
                fit_data(tensor, max_rows)
            fitted.append(tensor)
        body["inputs"] = fitted
    drop_repeated_outputs(body)
    case.body = body  # an assignment: schemathesis re-validates the case and its mode
    return case
