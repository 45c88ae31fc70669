"""docs/configuration.md is generated from the settings, and every setting is documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving.settings import Settings
from serving.settings_variables import VARIABLES
from tools import configuration_doc

pytestmark = pytest.mark.unit


def test_every_setting_has_one_variable_with_a_meaning() -> None:
    fields = {field.name for field in configuration_doc.settings_fields()}
    assert fields == set(Settings.__struct_fields__)
    assert set(VARIABLES) == fields
    names = [variable.name for variable in VARIABLES.values()]
    assert len(set(names)) == len(names)
    for variable in VARIABLES.values():
        assert variable.name.startswith("DIGITS_")
        assert variable.default
        assert len(variable.meaning) > 10


def test_the_committed_document_is_what_the_settings_generate() -> None:
    assert configuration_doc.main(["--check"]) == 0, "run python -m tools.configuration_doc"


def test_a_stale_document_is_caught(tmp_path: Path) -> None:
    stale = tmp_path / "configuration.md"
    stale.write_text(configuration_doc.render().replace("port to bind", "port"), encoding="utf-8")
    assert configuration_doc.main(["--check", "--output", str(stale)]) == 1
    assert configuration_doc.main(["--output", str(stale)]) == 0
    assert configuration_doc.main(["--check", "--output", str(stale)]) == 0


def test_limits_come_from_the_settings_constraints() -> None:
    text = configuration_doc.render()
    row = next(line for line in text.splitlines() if line.startswith("| `DIGITS_WORKERS`"))
    assert "integer >= 1, <= 64" in row
    row = next(line for line in text.splitlines() if line.startswith("| `DIGITS_OOD_POLICY`"))
    assert "`flag` / `reject`" in row
