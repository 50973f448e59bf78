"""numba kernels: pure functions of arrays, numbers and keys. No I/O, no Polars, no globals.

numba runs ``parallel=True`` kernels on OpenMP here. Its threads spin after each call by
default, taking the cores from Polars' writer that runs next: on this 2-core machine, 32 small
runs took 9.0 s spinning and 4.2 s with passive waiting. So, unless the user chose otherwise,
OpenMP threads sleep when idle; this must be set before the OpenMP runtime starts.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def start_numba_without_blas() -> None:
    """Load numba's array functions without BLAS, for a command-line process.

    When numba's CPU target first starts (the first kernel call, even from the cache) it
    imports scipy.linalg wherever scipy is installed, only to offer BLAS to ``np.dot`` and
    friends: 0.4 s of a 1 s start here, and no kernel of fastgen uses BLAS. Loading
    ``numba.np.arraymath`` while that import is refused makes numba record "no BLAS" once;
    scipy stays importable afterwards. Not done on ``import fastgen``: a library user's own
    kernels may want BLAS.
    """
    import sys

    blas = "scipy.linalg.cython_blas"
    if "numba.np.arraymath" in sys.modules or blas in sys.modules:
        return
    sys.modules[blas] = None  # an import of it fails at once, before scipy.linalg loads
    try:
        import numba.np.arraymath  # noqa: F401
    finally:
        del sys.modules[blas]
