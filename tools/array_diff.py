"""Arrays compared numerically: the arrays of an ``.npz`` file and the initializers of an ONNX
model (tools/content_diff.py). Nothing is unpickled and no external data is read."""

from __future__ import annotations

import collections
import io
import zipfile
from typing import Any

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import numpy_helper

from tools.diff_result import ContentDiff, short
from tools.numeric_diff import Noise, index_locator


def compare_npz(old: bytes, new: bytes, noise: Noise) -> ContentDiff:
    result = ContentDiff("npz")
    try:
        before = np.load(io.BytesIO(old), allow_pickle=False)
        after = np.load(io.BytesIO(new), allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        result.structural.append(f"cannot read both sides as .npz: {error}")
        return result
    with before, after:
        for name in sorted(set(before.files) | set(after.files)):
            label = f"array {name!r}"
            try:
                if name not in after.files:
                    x = before[name]
                    result.structural.append(f"{label}: removed ({x.shape} {x.dtype})")
                    continue
                if name not in before.files:
                    y = after[name]
                    result.structural.append(f"{label}: added ({y.shape} {y.dtype})")
                    continue
                x, y = before[name], after[name]
            except ValueError as error:  # an object array: never unpickled
                result.structural.append(f"{label}: not compared ({error})")
                continue
            _compare_arrays(result, label, x, y, noise)
    return result


def _compare_arrays(
    result: ContentDiff, label: str, x: np.ndarray, y: np.ndarray, noise: Noise
) -> None:
    if x.shape != y.shape or x.dtype != y.dtype:
        result.structural.append(f"{label}: {x.shape} {x.dtype} -> {y.shape} {y.dtype}")
    elif x.dtype == np.bool_ or any(np.issubdtype(x.dtype, t) for t in (np.integer, np.floating)):
        numeric = noise.compare(x, y, index_locator(x.shape), x.dtype)
        if numeric is not None:
            result.numeric.append((label, numeric))
    elif not np.array_equal(x, y):
        result.structural.append(f"{label} ({x.dtype}): values differ")


def _tensors(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    tensors = {tensor.name: tensor for tensor in model.graph.initializer}
    for index, node in enumerate(model.graph.node):
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.TENSOR:
                tensors[f"node {node.name or index}/{attribute.name}"] = attribute.t
    return tensors


def _skeleton(model: onnx.ModelProto) -> bytes:
    """The model without tensor values: what must be equal for a numeric-only change."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    del copy.graph.initializer[:]
    for node in copy.graph.node:
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.TENSOR:
                attribute.t.Clear()
    return bytes(copy.SerializeToString(deterministic=True))


def _graph_differences(before: onnx.ModelProto, after: onnx.ModelProto) -> list[str]:
    def summary(model: onnx.ModelProto) -> dict[str, Any]:
        graph = model.graph
        return {
            "ir_version": model.ir_version,
            "opsets": sorted(f"{o.domain or 'ai.onnx'}:{o.version}" for o in model.opset_import),
            "producer": f"{model.producer_name} {model.producer_version}",
            "inputs": [i.name for i in graph.input],
            "outputs": [o.name for o in graph.output],
            "op types": dict(sorted(collections.Counter(n.op_type for n in graph.node).items())),
            "metadata": {p.key: p.value for p in model.metadata_props},
        }

    was, now = summary(before), summary(after)
    lines = [
        f"graph {key}: {short(was[key])} -> {short(now[key])}"
        for key in was
        if was[key] != now[key]
    ]
    return lines or ["graph differs in node names, attributes or wiring"]


def _external(tensor: onnx.TensorProto) -> bool:
    return bool(tensor.data_location == onnx.TensorProto.EXTERNAL)


def compare_onnx(old: bytes, new: bytes, noise: Noise) -> ContentDiff:
    result = ContentDiff("onnx")
    try:
        before, after = onnx.load_model_from_string(old), onnx.load_model_from_string(new)
    except DecodeError as error:
        result.structural.append(f"cannot read both sides as ONNX: {error}")
        return result
    was, now = _tensors(before), _tensors(after)
    for name in sorted(set(was) | set(now)):
        label = f"initializer {name!r}"
        if name not in now:
            result.structural.append(f"{label}: removed")
        elif name not in was:
            result.structural.append(f"{label}: added")
        elif _external(was[name]) or _external(now[name]):
            # Never read: numpy_helper would resolve the file against the working directory.
            if was[name].SerializeToString() != now[name].SerializeToString():
                result.structural.append(f"{label}: external data, not compared")
        else:
            x, y = numpy_helper.to_array(was[name]), numpy_helper.to_array(now[name])
            _compare_arrays(result, label, x, y, noise)
    if _skeleton(before) != _skeleton(after):
        result.structural.extend(_graph_differences(before, after))
    return result
