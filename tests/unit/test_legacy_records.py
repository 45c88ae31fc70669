"""Records of the older schema versions (1 and 2) are still read by the query tool, next to
version 3, and each one is valid against the JSON schema of its own version."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import msgspec
import pytest

from serving.decisions.__main__ import main as decisions_main
from serving.decisions.legacy import DecisionRecordV1, DecisionRecordV2
from serving.decisions.query import Catalog, select
from serving.decisions.record import DecisionRecord, RecordRegistry

pytestmark = pytest.mark.unit
SCHEMAS = Path(__file__).resolve().parents[2] / "serving" / "decisions"
COMMON: dict[str, Any] = {
    "time": "2026-11-30T12:00:00.000000Z",
    "client_id": "alice",
    "route": "/predict",
    "method": "POST",
    "status": 200,
    "model_version": "0123456789ab",
    "rows": 1,
    "input_sha256": "ab" * 32,
    "labels": [3],
    "top_probability": [0.9],
    "ood": [False],
    "ood_score": [0.4],
    "latency_ms": 1.5,
}
V1 = {"schema_version": 1, "request_id": "old-1", **COMMON, "registry_tag": None}
V2 = {
    "schema_version": 2,
    "request_id": "audit-7",
    **COMMON,
    "registry": {"version": "v1.0.0", "stage": "prod", "commit": "cd" * 20},
}


def test_versions_1_and_2_validate_against_their_schemas_and_are_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for record, version in ((V1, 1), (V2, 2)):
        schema = json.loads((SCHEMAS / f"decision_record.v{version}.schema.json").read_text())
        jsonschema.validate(record, schema)
    (tmp_path / "decisions-host-1-0000.jsonl").write_text(
        json.dumps(V1) + "\n" + json.dumps(V2) + "\n", encoding="utf-8"
    )
    with Catalog(tmp_path) as catalog:
        found = list(select(catalog))
    assert [type(record) for record in found] == [DecisionRecordV1, DecisionRecordV2]
    v1, v2 = (msgspec.structs.asdict(record) for record in found)
    assert (v1["request_id"], v1["registry_tag"], v1["labels"], v1["inputs"]) == (
        "old-1",
        None,
        [3],
        None,
    )
    assert isinstance(v2["registry"], RecordRegistry)
    assert (v2["request_id"], v2["registry"].version, v2["latency_ms"]) == (
        "audit-7",
        "v1.0.0",
        1.5,
    )
    assert decisions_main(["--dir", str(tmp_path), "list", "--client", "alice"]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [record["request_id"] for record in listed] == ["old-1", "audit-7"]
    assert listed[1]["registry"]["stage"] == "prod"


def test_an_unknown_field_in_an_old_record_is_a_bad_line_not_a_record(tmp_path: Path) -> None:
    (tmp_path / "decisions-host-1-0000.jsonl").write_text(
        json.dumps({**V2, "surprise": 1}) + "\n" + json.dumps(V1) + "\n", encoding="utf-8"
    )
    with Catalog(tmp_path) as catalog:
        assert [record.request_id for record in select(catalog)] == ["old-1"]
        (bad,) = catalog.bad_lines()
    assert (bad.path.name, bad.line) == ("decisions-host-1-0000.jsonl", 1)
    assert "unknown field `surprise`" in bad.reason


def json_types(schema: dict[str, Any], defs: dict[str, Any]) -> set[str]:
    """The JSON types a property schema allows, items included (``array of integer``)."""
    if "$ref" in schema:
        return json_types(defs[schema["$ref"].rpartition("/")[2]], defs)
    if "anyOf" in schema:
        return set().union(*(json_types(each, defs) for each in schema["anyOf"]))
    if "enum" in schema:
        return {f"enum {value}" for value in schema["enum"]}
    kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    items = json_types(schema["items"], defs) if "items" in schema else set()
    return {f"array of {item}" for item in items} if kinds == ["array"] else set(kinds)


@pytest.mark.parametrize(
    ("version", "struct"), [(1, DecisionRecordV1), (2, DecisionRecordV2), (3, DecisionRecord)]
)
def test_each_version_struct_has_exactly_its_schemas_fields(version: int, struct: Any) -> None:
    """The struct of each version (1 and 2 derived from version 3, serving.decisions.legacy)
    has the fields its own JSON schema names, the same ones required, and accepts every
    type the schema allows: a change to version 3 that leaks into the older versions
    fails here."""
    schema = json.loads((SCHEMAS / f"decision_record.v{version}.schema.json").read_text())
    generated = msgspec.json.schema(struct)
    defs = generated["$defs"]
    mine = defs[struct.__name__]
    assert mine["properties"].pop("schema_version") == {"enum": [version]}
    assert schema["properties"].pop("schema_version") == {"const": version}
    assert set(mine["properties"]) == set(schema["properties"])
    assert set(mine["required"]) - {"schema_version"} == set(schema["required"]) - {
        "schema_version"
    }
    for name, wanted in schema["properties"].items():
        allowed = json_types(mine["properties"][name], defs)
        assert json_types(wanted, {}) <= allowed, name
