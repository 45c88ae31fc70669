"""How the service makes a metric family: outside prometheus_client's default registry.

In multiprocess mode the exposition reads every worker's files
(:func:`serving.monitoring.metrics.render_latest`), not a registry, so the families are
never registered: a second app in one process (tests, a reload) makes them again without a
duplicate-registration error.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

from prometheus_client import Counter, Gauge, Histogram

Family = TypeVar("Family", Counter, Gauge, Histogram)


def unregistered(kind: type[Family]) -> Callable[..., Family]:
    """``kind`` (prometheus_client's ``Counter``, ``Gauge`` or ``Histogram``) with
    ``registry=None``: call it with the family's name, help text, labels and options. The
    result is typed as ``kind``, so the families' uses are checked."""
    return functools.partial(kind, registry=None)
