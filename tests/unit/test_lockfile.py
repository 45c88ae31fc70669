"""serving/lineage/lockfile.py: the one parser of dvc.lock that the service and its tools share."""

from __future__ import annotations

import pytest

from serving.lineage.lockfile import LockFormatError, find_out, parse_lock

pytestmark = pytest.mark.unit
LOCK = b"""schema: '2.0'
stages:
  train:
    cmd: python -m stages.train
    outs:
    - path: models/model.onnx
      md5: 0123456789abcdef0123456789abcdef
      size: 10
"""


def test_a_lock_parses_and_its_outs_are_found() -> None:
    lock = parse_lock(LOCK)
    assert parse_lock(LOCK.decode()) == lock
    found = find_out(lock, "models/model.onnx")
    assert found is not None
    stage, entry, out = found
    assert (stage, entry["cmd"], out["size"]) == ("train", "python -m stages.train", 10)
    assert find_out(lock, "models/other.onnx") is None


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"stages: [1\n", "not valid YAML"),
        (b"\xff\xfe", "not valid YAML"),
        (b"- a list\n", "no 'stages' mapping"),
        (b"stages: 3\n", "no 'stages' mapping"),
    ],
)
def test_what_is_not_a_lock_is_refused_in_one_line(data: bytes, reason: str) -> None:
    with pytest.raises(LockFormatError, match=reason) as refused:
        parse_lock(data)
    assert "\n" not in str(refused.value)
