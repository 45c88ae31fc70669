"""Records of the older schema versions (1 and 2) are still read by the query tool, next to
version 3, and each one is valid against the JSON schema of its own version."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from serving.decisions.__main__ import main as decisions_main
from serving.decisions.legacy import DecisionRecordV1, DecisionRecordV2
from serving.decisions.query import Catalog, select

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
    v1, v2 = found
    assert isinstance(v1, DecisionRecordV1)
    assert (v1.request_id, v1.registry_tag, v1.labels, v1.inputs) == ("old-1", None, [3], None)
    assert isinstance(v2, DecisionRecordV2)
    assert v2.registry is not None
    assert (v2.request_id, v2.registry.version, v2.latency_ms) == ("audit-7", "v1.0.0", 1.5)
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
