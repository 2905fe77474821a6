"""Tolerances that follow the summation order: how far two float32 results of the same sums may differ.

A float32 sum of n products, added in any order, is within gamma_n * sum|terms| of the exact value, with
gamma_n = n*u / (1 - n*u) and u = 2**-24 (Higham, "Accuracy and Stability of Numerical Algorithms", 3.1).
Two implementations that add the same terms in different orders (a blocked C kernel, OpenBLAS, the im2col
reference) therefore differ by at most 2 * gamma_n * sum|terms|, element by element. sum|terms| is the same
computation run in float64 on the absolute values of the inputs (every op here is linear in each input), so
the bound holds on AVX2, AVX-512 and with the kernels off, and a wrong index or a dropped term (an error of
the size of a term) still fails.
"""
import numpy as np

U32 = 2.0 ** -24


def gamma(n):
    """gamma_n = n*u / (1 - n*u) for float32."""
    return n * U32 / (1 - n * U32)


def assert_close_in_sum_order(a, b, magnitude, n_terms, dtype):
    """|a - b| <= 2*gamma_n*magnitude (+ a few ulps of the magnitude) for float32; float64 to 1e-12."""
    if a is None or b is None:
        assert a is None and b is None
        return
    assert a.shape == b.shape and a.dtype == b.dtype, (a.shape, b.shape, a.dtype, b.dtype)
    if np.dtype(dtype) == np.float64:
        scale = max(1.0, float(np.abs(magnitude).max()) if magnitude.size else 1.0)
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12 * scale)
        return
    limit = 2 * gamma(n_terms) * np.asarray(magnitude, np.float64) + 4 * U32 * np.abs(np.asarray(b, np.float64))
    err = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))
    worst = np.unravel_index(np.argmax(err - limit), err.shape) if err.size else None
    assert np.all(err <= limit), (f"differ beyond the float32 summation bound at {worst}: |{a[worst]} - {b[worst]}| "
                                  f"= {err[worst]:.3g} > {limit[worst]:.3g} (n = {n_terms} terms)")
