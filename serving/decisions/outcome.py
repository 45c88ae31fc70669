"""What a deciding request decided, handed from its handler to the decision step.

A deciding handler (a route declared with ``needs(..., decides=True)``, :mod:`serving.access`)
returns a :class:`DecidedResponse`: its encoded answer and the
:class:`~serving.decisions.decided.Decided` arrays the answer was built from. The fast
dispatch (:mod:`serving.http.dispatch`) puts the outcome in the request's scope under
:data:`OUTCOME`, where the decision step's answer hook reads it.
Nothing travels through a context variable, and a deciding route that answers 2xx without
an outcome is an error, not a silently missing record.
"""

from __future__ import annotations

from typing import Any

from litestar import Response

from serving.decisions.decided import Decided

OUTCOME = "digits.outcome"  # scope key: the Decided of the request's answer


class DecidedResponse(Response[bytes]):
    """A deciding handler's answer: the encoded body and what it decided."""

    __slots__ = ("outcome",)

    def __init__(self, content: bytes, outcome: Decided, **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self.outcome = outcome
