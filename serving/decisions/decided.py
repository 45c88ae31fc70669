"""What one answered request decided: the arrays its answer and its decision record are made of.

numpy only: the decision encoder process (:mod:`serving.decisions.encoder`) imports it
through :mod:`serving.decisions.record`, and must not load Litestar to read a dataclass
(the guarded worker's RSS with that child: docs/performance.md, make bench).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class Decided:
    """Arrays of one answered request (references, not copies: they are not mutated)."""

    samples: npt.NDArray[np.float32]
    labels: npt.NDArray[np.int64]
    probabilities: npt.NDArray[np.float32]
    ood: npt.NDArray[np.bool_]
    ood_score: npt.NDArray[np.float32]
