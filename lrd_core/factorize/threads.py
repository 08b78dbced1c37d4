"""One BLAS thread for small factorizations.

The data-aware factorizations run many small dense solves (Cholesky, triangular solves, eigh of
matrices of a few hundred rows). With NumPy's and SciPy's OpenBLAS at 2 threads on a shared 2-core
machine (load ~11) a 36 x 36 positive solve took 38 ms instead of 0.08 ms with one thread: the
threads mostly wait for each other. :func:`blas_threads` caps them for problems below ``limit``
rows (larger products still use every core). Without ``threadpoolctl`` it does nothing.
"""
from __future__ import annotations

import contextlib

SMALL = 1024
_CONTROLLER = []


def _controller():
    if not _CONTROLLER:
        try:
            from threadpoolctl import ThreadpoolController
            _CONTROLLER.append(ThreadpoolController())
        except ImportError:                  # optional: scikit-learn brings it
            _CONTROLLER.append(None)
    return _CONTROLLER[0]


@contextlib.contextmanager
def blas_threads(dim: int, limit: int = SMALL):
    """Run the block with one BLAS thread when ``dim < limit``."""
    ctl = _controller() if dim < limit else None
    if ctl is None:
        yield
        return
    with ctl.limit(limits=1, user_api="blas"):
        yield
