"""The ``docs`` section of ``params.yaml``: owner and approval of the audit documents.

Part of the one params schema (:class:`stages.lib.params.Params` holds it; only
``audit-docs`` reads it). An approval names who approved, when, and the input
fingerprint of the documents they reviewed; when the inputs change, the documents
render the approval as lapsed instead of carrying it over to evidence nobody approved.
"""

from __future__ import annotations

import datetime as dt
import re

import msgspec

FINGERPRINT = re.compile(r"^sha256:[0-9a-f]{12}$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_NAME_LIMIT = 100


def _check_name(field: str, value: str) -> None:
    """A name is one table cell: one line, no ``|``, not padded, at most 100 characters."""
    if "|" in value or "\n" in value or "\r" in value or value != value.strip():
        raise ValueError(f"{field} must be one line without '|' or outer spaces, got {value!r}")
    if len(value) > _NAME_LIMIT:
        raise ValueError(f"{field} must be at most {_NAME_LIMIT} characters, got {len(value)}")


def _is_date(value: str) -> bool:
    """``YYYY-MM-DD`` naming a real day."""
    if not DATE.match(value):
        return False
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return True


class DocsParams(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Document control of the audit documents (model card, evaluation protocol, risk register).

    ``owner`` maintains them. ``approver`` (a name; empty = not approved) approved them on
    ``approved_on`` (a quoted ``"YYYY-MM-DD"``) for ``approved_inputs``, the input
    fingerprint (``sha256:`` and 12 hex digits) shown in their document-control section.
    """

    owner: str = "ML platform engineer"
    approver: str = ""
    # A quoted string: DVC cannot track a YAML date value ("Unsupported value of type 'date'").
    approved_on: str = ""
    approved_inputs: str = ""

    def __post_init__(self) -> None:
        """One-line errors for an incomplete or malformed approval."""
        if not self.owner:
            raise ValueError("owner must name who maintains the documents, got ''")
        _check_name("owner", self.owner)
        _check_name("approver", self.approver)
        if self.approved_on and not _is_date(self.approved_on):
            raise ValueError(
                f"approved_on must be a date written YYYY-MM-DD, got {self.approved_on!r}"
            )
        if self.approved_inputs and not FINGERPRINT.match(self.approved_inputs):
            raise ValueError(
                "approved_inputs must be the input fingerprint shown in the documents "
                f"(sha256: and 12 hex digits), got {self.approved_inputs!r}"
            )
        given = {
            "approved_on": bool(self.approved_on),
            "approved_inputs": bool(self.approved_inputs),
        }
        if self.approver and not all(given.values()):
            missing = " and ".join(name for name, present in given.items() if not present)
            raise ValueError(f"approver needs {missing} too, got approver {self.approver!r}")
        if not self.approver and any(given.values()):
            present = " and ".join(name for name, present in given.items() if present)
            verb = "need" if " and " in present else "needs"
            raise ValueError(f"{present} {verb} an approver (or clear it), got approver ''")
