"""``mlserver start FOLDER`` with OpenBLAS and OpenMP limited to one thread (threadpoolctl).

Run by ``.venv-mlserver/bin/python`` (bench/mlserver_anchor.py), not by the project's venv.
The limit is set at import, after scikit-learn has loaded its BLAS libraries: MLServer's
parallel inference workers are spawned processes, which import this file again (as
``__mp_main__``) and so get the same limit. No OPENBLAS_* variable is set.
"""

from __future__ import annotations

import sys

import sklearn.neural_network  # noqa: F401 - loads the BLAS/OpenMP libraries to limit
from threadpoolctl import threadpool_limits

threadpool_limits(limits=1)

if __name__ == "__main__":
    from mlserver.cli.main import main  # type: ignore[import-not-found]

    sys.argv = ["mlserver", "start", *sys.argv[1:]]
    main()
