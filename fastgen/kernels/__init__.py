"""numba kernels: pure functions of arrays, numbers and keys. No I/O, no Polars, no globals."""
