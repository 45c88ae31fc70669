"""A terminal-sized summary of the last pipeline run (what `make run` prints).

    python -m tools.summary [--root DIR]

Reads reports/metrics.json, reports/robustness.json, reports/ood.json and dvc.lock and
prints the accuracy, every gate with its threshold, measured value and verdict (``*``:
marginal), the model version and where the full reports are, in at most 80 columns. Gates
are read as stages/lib/gates.py writes them: each report's ``gates`` object, keyed by gate
name, of verdicts with ``kind`` (``min`` or ``max``), ``threshold``, ``value`` (null: not
measured), ``passed`` and ``marginal``.

Exit status: 0 every gate passed, 1 a gate failed, 2 the reports cannot be read.
The full metric table stays available via ``dvc metrics show``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPORTS = ("reports/metrics.json", "reports/robustness.json", "reports/ood.json")
MODEL = "models/model.onnx"
VERSION_LENGTH = 12
NAME_WIDTH = 34
FULL_REPORTS = (
    "reports/metrics.json  reports/robustness.json  reports/ood.json",
    "reports/model_selection.json  reports/per_class.md",
    "docs/model_card.md  docs/evaluation_protocol.md  docs/risk_register.md",
    "dvc metrics show  (every metric: one wide table)",
    "dvc plots show    (confusion matrix and robustness curves)",
)


class SummaryError(Exception):
    """A report is missing or has no readable gates."""


@dataclass(frozen=True)
class Gate:
    name: str
    threshold: float
    value: float | None  # None: not measured (the gate failed)
    passed: bool
    source: str
    kind: str  # "min" (value >= threshold) or "max" (value <= threshold)
    marginal: bool = False  # the 95 % interval straddles the threshold

    @property
    def comparison(self) -> str:
        return ">=" if self.kind == "min" else "<="


def parse_gate(name: str, gate: Any, source: str) -> Gate:
    """One gate verdict (stages/lib/gates.py ``verdict``)."""
    if not isinstance(gate, dict) or not isinstance(gate.get("passed"), bool):
        raise SummaryError(f"{source}: gate {name!r} has no boolean 'passed'")
    missing = [key for key in ("kind", "threshold", "value") if key not in gate]
    if missing:
        raise SummaryError(f"{source}: gate {name!r} has no {missing[0]}")
    if gate["kind"] not in ("min", "max"):
        raise SummaryError(f"{source}: gate {name!r} has kind {gate['kind']!r}, not min or max")
    try:
        threshold = float(gate["threshold"])
        value = None if gate["value"] is None else float(gate["value"])
    except (TypeError, ValueError):
        raise SummaryError(f"{source}: gate {name!r} threshold/value are not numbers") from None
    marginal = gate.get("marginal") is True
    return Gate(name, threshold, value, gate["passed"], source, gate["kind"], marginal)


def gates_in(report: dict[str, Any], source: str) -> list[Gate]:
    """Every gate of one report, in report order."""
    gates = report.get("gates", {})
    if not isinstance(gates, dict):
        raise SummaryError(f"{source}: 'gates' is not an object keyed by gate name")
    return [parse_gate(str(name), gate, source) for name, gate in gates.items()]


def model_md5(lock: dict[str, Any]) -> str:
    """md5 of models/model.onnx as dvc.lock records it (the served model's version)."""
    for stage in (lock.get("stages") or {}).values():
        for out in stage.get("outs", []):
            if out.get("path") == MODEL and out.get("md5"):
                return str(out["md5"])
    raise SummaryError(f"dvc.lock records no md5 for {MODEL}: run `make pipeline`")


def _load_json(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SummaryError(f"{path} is missing: run `make pipeline` first") from None
    except json.JSONDecodeError as exc:
        raise SummaryError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise SummaryError(f"{path}: expected a JSON object")
    return document


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if not value.is_integer() or abs(value) < 1 else f"{value:g}"


def render(root: Path) -> tuple[str, bool]:
    """The summary text and whether every gate passed."""
    reports = {name: _load_json(root / name) for name in REPORTS}
    metrics = reports["reports/metrics.json"]
    try:
        lock = yaml.safe_load((root / "dvc.lock").read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise SummaryError(f"{root / 'dvc.lock'} is missing: run `make pipeline` first") from None
    md5 = model_md5(lock)
    gates = [gate for name, report in reports.items() for gate in gates_in(report, name)]
    if not gates:
        raise SummaryError(f"no gates found in {' or '.join(REPORTS)}")
    if "accuracy" not in metrics:
        raise SummaryError("reports/metrics.json has no accuracy")
    headline = f"accuracy {_number(float(metrics['accuracy']))}"
    if "macro_f1" in metrics:
        headline += f"   macro-F1 {_number(float(metrics['macro_f1']))}"
    if "n_test" in metrics:
        headline += f"   on {metrics['n_test']} held-out digits"
    lines = [
        f"model version {md5[:VERSION_LENGTH]}  (what /model reports)",
        f"  md5 of {MODEL} in dvc.lock: {md5}",
        headline,
        "",
        f"{'gate':<{NAME_WIDTH}} {'threshold':>12} {'measured':>10}  verdict",
    ]
    for gate in gates:
        name = gate.name if len(gate.name) <= NAME_WIDTH else gate.name[: NAME_WIDTH - 1] + "~"
        threshold = f"{gate.comparison} {_number(gate.threshold)}".strip()
        verdict = ("pass" if gate.passed else "FAIL") + ("*" if gate.marginal else "")
        lines.append(f"{name:<{NAME_WIDTH}} {threshold:>12} {_number(gate.value):>10}  {verdict}")
    failed = [gate.name for gate in gates if not gate.passed]
    lines.append(f"all {len(gates)} gates passed" if not failed else f"FAILED: {', '.join(failed)}")
    if any(gate.marginal for gate in gates):
        lines.append("* marginal: the 95 % interval straddles the threshold")
    lines += ["", "full reports:", *(f"  {line}" for line in FULL_REPORTS)]
    return "\n".join(lines) + "\n", not failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="repository root")
    args = parser.parse_args(argv)
    try:
        text, passed = render(args.root)
    except SummaryError as exc:
        print(f"summary: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(text)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
