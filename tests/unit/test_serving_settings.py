"""serving.settings: DIGITS_* variables, defaults and one-line errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from serving.settings import _FIELDS as SETTING_NAMES
from serving.settings import NOT_SETTINGS, Settings, SettingsError, load_settings

pytestmark = pytest.mark.unit


def test_defaults() -> None:
    settings = load_settings({})
    assert settings == Settings()
    assert settings.lock_file == Path("dvc.lock")
    assert settings.resolved_model_dir == Path("models")
    assert (settings.max_rows, settings.host, settings.port, settings.workers) == (
        1000,
        "127.0.0.1",
        8000,
        1,
    )
    assert settings.max_body_bytes == 4 * 1024 * 1024
    assert settings.log_level == "info"


def test_values_from_environment() -> None:
    settings = load_settings(
        {
            "DIGITS_LOCK_FILE": "/srv/project/dvc.lock",
            "DIGITS_MAX_ROWS": "10",
            "DIGITS_MAX_BODY_BYTES": "65536",
            "DIGITS_HOST": "::1",
            "DIGITS_PORT": "9000",
            "DIGITS_WORKERS": "4",
            "DIGITS_LOG_LEVEL": "DEBUG",
            "UNRELATED": "x",
        }
    )
    assert settings.lock_file == Path("/srv/project/dvc.lock")
    assert settings.resolved_model_dir == Path("/srv/project/models")
    assert (settings.max_rows, settings.max_body_bytes, settings.port) == (10, 65536, 9000)
    assert (settings.host, settings.workers, settings.log_level) == ("::1", 4, "debug")


def test_model_dir_override() -> None:
    settings = load_settings({"DIGITS_MODEL_DIR": "/models"})
    assert settings.resolved_model_dir == Path("/models")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DIGITS_PORT", "eighty"),
        ("DIGITS_PORT", "70000"),
        ("DIGITS_WORKERS", "0"),
        ("DIGITS_MAX_ROWS", "-1"),
        ("DIGITS_MAX_BODY_BYTES", "1.5"),
        ("DIGITS_LOG_LEVEL", "loud"),
    ],
)
def test_invalid_value_names_the_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({variable: value})
    message = str(caught.value)
    assert message.startswith(f"{variable}=")
    assert value.lower() in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("variable", "value"), [("DIGITS_PORT", "not-a-port"), ("DIGITS_PORTT", "1")]
)
def test_launcher_exits_non_zero_with_one_line(repo_root: Path, variable: str, value: str) -> None:
    env = {**os.environ, variable: value}
    result = subprocess.run(
        [sys.executable, "-m", "serving"],
        cwd=repo_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert variable in lines[0]


@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        ("DIGITS_RATE_LIMTI", "DIGITS_RATE_LIMIT"),
        ("DIGITS_OOD_POLCY", "DIGITS_OOD_POLICY"),
        ("DIGITS_WORKER", "DIGITS_WORKERS"),
        ("DIGITS_DECISION_LOG", "DIGITS_DECISION_LOG_DIR"),
    ],
)
def test_an_unknown_variable_stops_the_service_with_the_closest_name(typo: str, meant: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({typo: "2/minute", "DIGITS_PORT": "8000"})
    message = str(caught.value)
    assert message == f"{typo} is not a setting of the service: did you mean {meant}?"


def test_a_name_like_nothing_known_says_where_the_settings_are() -> None:
    expected = r"^DIGITS_XYZZY is not a setting .*docs/configuration\.md"
    with pytest.raises(SettingsError, match=expected):
        load_settings({"DIGITS_XYZZY": "1"})


def test_digits_names_the_project_reads_elsewhere_are_not_typos(repo_root: Path) -> None:
    from serving.lineage.registry_lookup import RESULT_ENV as REGISTRY_RESULT
    from serving.lineage.signature import RESULT_ENV as SIGNATURE_RESULT

    assert {REGISTRY_RESULT, SIGNATURE_RESULT} <= set(NOT_SETTINGS)
    compose = (repo_root / "compose.yaml").read_text(encoding="utf-8")
    substituted = set(re.findall(r"\$\{(DIGITS_[A-Z_]+)", compose))
    read = set(NOT_SETTINGS) | set(SETTING_NAMES.values())
    assert substituted - set(SETTING_NAMES.values()), "compose.yaml has host-only variables"
    assert substituted <= read, substituted - read
    load_settings(dict.fromkeys(NOT_SETTINGS, "x"))  # none of them is refused
