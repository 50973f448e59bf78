"""numba kernels: pure functions of arrays, numbers and keys. No I/O, no Polars, no globals.

numba runs ``parallel=True`` kernels on OpenMP here. Its threads spin after each call by
default, taking the cores from Polars' writer that runs next: on this 2-core machine, 32 small
runs took 9.0 s spinning and 4.2 s with passive waiting. So, unless the user chose otherwise,
OpenMP threads sleep when idle; this must be set before the OpenMP runtime starts.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

