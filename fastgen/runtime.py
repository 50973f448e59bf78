"""How a command-line process of fastgen sets up numba and numpy before its first kernel.

Both settings are for processes that fastgen starts (the ``fastgen`` command and the workers
it spawns), not on ``import fastgen``: a library user's own code may want the defaults.
"""

from __future__ import annotations

import os
import sys

HUGEPAGE = "NUMPY_MADVISE_HUGEPAGE"


def start() -> None:
    _small_pages()
    _numba_without_blas()


def _small_pages() -> None:
    """Ask numpy not to back its large arrays with transparent huge pages.

    numpy madvises huge pages for every large array. Here a day makes arrays of hundreds of
    megabytes in a row, and faulting them in as huge pages cost more system time than the
    work itself: the frames of a 10M-row day took 1.1 s (1.6 s of system time) against 0.2 s
    with small pages, its sampling 0.5-2.7 s against 0.8 s. A user who sets
    NUMPY_MADVISE_HUGEPAGE keeps their choice; the variable also reaches worker processes,
    where numpy reads it on import.
    """
    if HUGEPAGE in os.environ:
        return
    os.environ[HUGEPAGE] = "0"
    numpy = sys.modules.get("numpy")
    if numpy is not None:  # already imported: it read the variable before it was set
        core = getattr(numpy, "_core", None) or numpy.core  # numpy 2, or 1.26
        core.multiarray._set_madvise_hugepage(False)


def _numba_without_blas() -> None:
    """Load numba's array functions without BLAS.

    When numba's CPU target first starts (the first kernel call, even from the cache) it
    imports scipy.linalg wherever scipy is installed, only to offer BLAS to ``np.dot`` and
    friends: 0.4 s of a 1 s start here, and no kernel of fastgen uses BLAS. Loading
    ``numba.np.arraymath`` while that import is refused makes numba record "no BLAS" once;
    scipy stays importable afterwards.
    """
    blas = "scipy.linalg.cython_blas"
    if "numba.np.arraymath" in sys.modules or blas in sys.modules:
        return
    sys.modules[blas] = None  # an import of it fails at once, before scipy.linalg loads
    try:
        import numba.np.arraymath  # noqa: F401
    finally:
        del sys.modules[blas]
