"""convnp.signal: correlate2d/convolve2d against SciPy on a grid, the textbook example, extra boundaries,
named kernels and every error path."""
import itertools
import warnings

import numpy as np
import pytest

from convnp import signal
from convnp.signal import convolve2d, correlate2d, kernels

scipy_signal = pytest.importorskip("scipy.signal")

SIZES = [1, 2, 3, 5]
KSIZES = [1, 2, 3, 4, 6]
SCIPY_BOUNDARIES = ["fill", "pad", "wrap", "circular", "symm", "symmetric"]
PAIRS = [(correlate2d, "correlate2d"), (convolve2d, "convolve2d")]


def _both(ours, theirs, *args, **kwargs):
    """Run both; return (ours, theirs) results or the exception types when SciPy raises."""
    try:
        expected = theirs(*args, **kwargs)
    except ValueError:
        with pytest.raises(ValueError):
            ours(*args, **kwargs)
        return None, None
    return ours(*args, **kwargs), expected


@pytest.mark.parametrize("fn,name", PAIRS)
@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize("boundary", SCIPY_BOUNDARIES)
def test_equals_scipy_real_grid(fn, name, mode, boundary):
    rng = np.random.default_rng(hash((name, mode, boundary)) % 2**32)
    theirs = getattr(scipy_signal, name)
    checked = 0
    for m, n, p, q in itertools.product(SIZES, SIZES[1:], KSIZES, KSIZES[:4]):
        a = rng.standard_normal((m, n))
        k = rng.standard_normal((p, q))
        for x, y in ((a, k), (k, a)):  # both orders: kernels larger than the image, swaps in 'valid'
            ours, expected = _both(fn, theirs, x, y, mode, boundary, fillvalue=0.75)
            if expected is None:
                continue
            assert ours.shape == expected.shape, (x.shape, y.shape)
            assert ours.dtype == expected.dtype
            np.testing.assert_allclose(ours, expected, rtol=1e-10, atol=1e-12, err_msg=f"{x.shape} {y.shape}")
            checked += 1
    assert checked >= 250  # the grid really ran (in "valid" mode some pairs raise, as in SciPy)


@pytest.mark.parametrize("fn,name", PAIRS)
@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize("boundary", ["fill", "wrap", "symm"])
def test_equals_scipy_complex_and_integer(fn, name, mode, boundary):
    rng = np.random.default_rng(7)
    theirs = getattr(scipy_signal, name)
    for m, n, p, q in [(4, 5, 2, 3), (3, 3, 3, 3), (2, 6, 4, 2), (5, 4, 1, 1), (1, 3, 3, 4)]:
        a = rng.standard_normal((m, n)) + 1j * rng.standard_normal((m, n))
        k = rng.standard_normal((p, q)) + 1j * rng.standard_normal((p, q))
        ai, ki = rng.integers(-9, 9, (m, n)), rng.integers(-9, 9, (p, q))
        cases = [(a, k, 1 - 2j), (k, a, 0.5j), (ai, ki, 3), (ki, ai, 2.7),  # 2.7 truncates to 2 for ints
                 (a.astype(np.complex64), k.real.astype(np.float32), 0), (ai.astype(np.uint8), k.real, 1)]
        for x, y, fill in cases:
            ours, expected = _both(fn, theirs, x, y, mode, boundary, fillvalue=fill)
            if expected is None:
                continue
            assert ours.dtype == expected.dtype, (x.dtype, y.dtype)
            if expected.dtype.kind in "iu":
                np.testing.assert_array_equal(ours, expected)
            else:
                tol = 1e-5 if expected.dtype in (np.complex64, np.float32) else 1e-10
                np.testing.assert_allclose(ours, expected, rtol=tol, atol=tol)


def test_textbook_example_valid():
    x = np.array([[1, 2, 3, 0], [0, 1, 2, 3], [3, 0, 1, 2], [2, 3, 0, 1]])
    k = np.array([[2, 0, 1], [0, 1, 2], [1, 0, 2]])
    np.testing.assert_array_equal(correlate2d(x, k, mode="valid"), [[15, 16], [6, 15]])
    # convolution flips the kernel: same numbers with the flipped kernel, different ones without
    np.testing.assert_array_equal(convolve2d(x, k[::-1, ::-1], mode="valid"), [[15, 16], [6, 15]])
    assert not np.array_equal(convolve2d(x, k, mode="valid"), [[15, 16], [6, 15]])


def test_textbook_example_with_padding_one():
    x = np.array([[1, 2, 3, 0], [0, 1, 2, 3], [3, 0, 1, 2], [2, 3, 0, 1]])
    k = np.array([[2, 0, 1], [0, 1, 2], [1, 0, 2]])
    expected = [[7, 12, 10, 2], [4, 15, 16, 10], [10, 6, 15, 6], [8, 10, 4, 3]]
    np.testing.assert_array_equal(correlate2d(x, k, mode="same"), expected)


def test_valid_swap_rule_matches_scipy():
    rng = np.random.default_rng(3)
    small, big = rng.standard_normal((2, 3)), rng.standard_normal((4, 5))
    for fn, name in PAIRS:
        out = fn(small, big, mode="valid")
        np.testing.assert_allclose(out, getattr(scipy_signal, name)(small, big, mode="valid"))
        assert out.shape == (3, 3)
    # correlation with swapped inputs is the flipped correlation of the larger with the smaller
    np.testing.assert_allclose(correlate2d(small, big, "valid"), correlate2d(big, small, "valid")[::-1, ::-1])
    np.testing.assert_allclose(convolve2d(small, big, "valid"), convolve2d(big, small, "valid"))


def test_valid_needs_one_input_larger_in_every_dimension():
    with pytest.raises(ValueError, match=r"correlate2d: in 'valid' mode one input must be at least as large as "
                                         r"the other in every dimension, got shapes \(2, 5\) and \(3, 3\)"):
        correlate2d(np.ones((2, 5)), np.ones((3, 3)), mode="valid")
    with pytest.raises(ValueError, match="convolve2d: in 'valid' mode"):
        convolve2d(np.ones((5, 2)), np.ones((3, 3)), mode="valid")
    with pytest.raises(ValueError):  # SciPy agrees
        scipy_signal.correlate2d(np.ones((2, 5)), np.ones((3, 3)), mode="valid")


@pytest.mark.parametrize("ours,numpy_mode", [("replicate", "edge"), ("repeat", "edge"), ("edge", "edge"),
                                             ("reflect", "reflect"), ("symm", "symmetric"), ("wrap", "wrap")])
@pytest.mark.parametrize("fn", [correlate2d, convolve2d])
def test_boundaries_equal_numpy_pad_then_valid(ours, numpy_mode, fn):
    rng = np.random.default_rng(5)
    for (m, n), (p, q) in [((5, 6), (3, 3)), ((4, 4), (2, 5)), ((3, 2), (7, 6)), ((2, 3), (4, 4))]:
        if numpy_mode == "reflect" and (m == 1 or n == 1):
            continue
        x, k = rng.standard_normal((m, n)), rng.standard_normal((p, q))
        kk = k if fn is correlate2d else k[::-1, ::-1]
        padded = np.pad(x, ((p - 1, p - 1), (q - 1, q - 1)), mode=numpy_mode)
        full = fn(x, k, mode="full", boundary=ours)
        np.testing.assert_allclose(full, correlate2d(padded, kk, mode="valid"), atol=1e-12)
        # 'same' is the centred window of the padded image (top = (P-1)//2 for correlation, P//2 for convolution)
        top, left = ((p - 1) // 2, (q - 1) // 2) if fn is correlate2d else (p // 2, q // 2)
        pad_same = np.pad(x, ((top, p - 1 - top), (left, q - 1 - left)), mode=numpy_mode)
        np.testing.assert_allclose(fn(x, k, mode="same", boundary=ours),
                                   correlate2d(pad_same, kk, mode="valid"), atol=1e-12)


def test_reflect_on_a_single_row_repeats_it():
    x = np.array([[1.0, 2.0, 3.0]])
    out = correlate2d(x, np.array([[1.0], [0.0], [0.0]]), mode="same", boundary="reflect")
    np.testing.assert_allclose(out, x)  # the row above the only row is the row itself


def test_empty_kernel_gives_zeros_like_scipy():
    for fn, name in PAIRS:
        for mode in ("full", "same"):
            ours = fn(np.ones((2, 2)), np.ones((0, 3)), mode=mode)
            theirs = getattr(scipy_signal, name)(np.ones((2, 2)), np.ones((0, 3)), mode=mode)
            assert ours.shape == theirs.shape
            np.testing.assert_array_equal(ours, theirs)


def test_accepts_lists_and_fillvalue_arrays():
    out = correlate2d([[1, 2], [3, 4]], [[1]], mode="full", fillvalue=np.array([5]))
    np.testing.assert_array_equal(out, [[1, 2], [3, 4]])
    out = correlate2d(np.zeros((1, 1)), np.ones((2, 2)), mode="full", fillvalue=np.array(2.0))
    np.testing.assert_array_equal(out, [[6, 6], [6, 6]])  # each window: three fills of 2 and the zero


def test_float32_stays_float32():
    x = np.ones((4, 4), np.float32)
    assert correlate2d(x, np.ones((3, 3), np.float32)).dtype == np.float32
    assert convolve2d(x, np.ones((3, 3), np.float64)).dtype == np.float64


def test_errors_name_the_function_and_the_input():
    with pytest.raises(ValueError, match=r"correlate2d: in1 must be a 2-D array, got 3-D with shape \(1, 2, 2\)"):
        correlate2d(np.ones((1, 2, 2)), np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"convolve2d: in2 must be a 2-D array, got 1-D with shape \(3,\)"):
        convolve2d(np.ones((3, 3)), np.ones(3))
    with pytest.raises(ValueError, match=r"correlate2d: unknown mode 'sam'; expected 'full', 'same' or 'valid'"):
        correlate2d(np.ones((3, 3)), np.ones((2, 2)), mode="sam")
    with pytest.raises(ValueError, match=r"convolve2d: unknown boundary 'zeros'; expected 'fill'"):
        convolve2d(np.ones((3, 3)), np.ones((2, 2)), boundary="zeros")
    with pytest.raises(TypeError, match="correlate2d: in1 must have a numeric dtype .* got bool"):
        correlate2d(np.ones((3, 3), bool), np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"fillvalue must be a scalar or an array with one element, got shape \(2,\)"):
        correlate2d(np.ones((3, 3)), np.ones((2, 2)), fillvalue=[1, 2])
    with pytest.raises(ValueError, match=r"correlate2d: cannot use the complex fillvalue \(1\+2j\) with float64"):
        correlate2d(np.ones((3, 3)), np.ones((2, 2)), fillvalue=1 + 2j)
    with pytest.raises(ValueError, match=r"cannot pad an empty array of shape \(0, 3\) with boundary 'wrap'"):
        correlate2d(np.ones((0, 3)), np.ones((2, 2)), boundary="wrap")


def test_works_on_the_array_module_of_the_input(xp):
    x = xp.asarray(np.arange(20.0).reshape(4, 5))
    k = xp.asarray(kernels.sobel_x())
    out = correlate2d(x, k, mode="same", boundary="symm")
    assert type(out) is type(x)
    expected = scipy_signal.correlate2d(np.arange(20.0).reshape(4, 5), kernels.sobel_x(), "same", "symm")
    np.testing.assert_allclose(getattr(out, "get", lambda: out)(), expected)


# ---------------------------------------------------------------------------- named kernels
def test_sobel_responds_to_edges_in_the_right_direction():
    ramp_right = np.tile(np.arange(6.0), (6, 1))  # brighter to the right
    gx = correlate2d(ramp_right, kernels.sobel_x(), mode="valid")
    gy = correlate2d(ramp_right, kernels.sobel_y(), mode="valid")
    np.testing.assert_allclose(gx, 8.0)  # (1 + 2 + 1) * 2 pixels of rise
    np.testing.assert_allclose(gy, 0.0)
    np.testing.assert_allclose(correlate2d(ramp_right.T, kernels.sobel_y(), mode="valid"), 8.0)
    np.testing.assert_array_equal(kernels.sobel_y(), kernels.sobel_x().T)


def test_laplacian_sharpen_emboss_box_gaussian_properties():
    ramp = np.add.outer(np.arange(6.0), 2 * np.arange(7.0))  # a linear ramp: no curvature
    for lap in (kernels.laplacian(), kernels.laplacian(diagonal=True)):
        assert lap.sum() == 0
        np.testing.assert_allclose(correlate2d(ramp, lap, mode="valid"), 0.0, atol=1e-12)
    assert kernels.laplacian()[1, 1] == -4 and kernels.laplacian(diagonal=True)[1, 1] == -8
    for k in (kernels.sharpen(), kernels.emboss(), kernels.box(4), kernels.gaussian(5, 1.0)):
        assert k.sum() == pytest.approx(1.0)  # flat regions keep their value
    np.testing.assert_allclose(kernels.box(3), np.full((3, 3), 1 / 9))
    g = kernels.gaussian(5, 1.0)
    np.testing.assert_allclose(g, g.T)
    np.testing.assert_allclose(g, g[::-1, ::-1])
    assert np.unravel_index(g.argmax(), g.shape) == (2, 2)
    assert g[2, 3] / g[2, 2] == pytest.approx(np.exp(-0.5))  # exp(-1 / (2 sigma^2)) one step from the centre
    assert kernels.gaussian(4, 2.0).shape == (4, 4)
    assert kernels.sobel_x(np.float32).dtype == np.float32
    assert set(kernels.named()) == {"sobel_x", "sobel_y", "laplacian", "gaussian", "box", "sharpen", "emboss"}


def test_kernel_argument_errors():
    with pytest.raises(ValueError, match="kernels.gaussian: size must be a positive integer, got 0"):
        kernels.gaussian(0)
    with pytest.raises(ValueError, match="kernels.gaussian: sigma must be positive, got -1"):
        kernels.gaussian(3, -1)
    with pytest.raises(ValueError, match=r"kernels.box: size must be a positive integer, got 2.5"):
        kernels.box(2.5)


def test_module_exports():
    import convnp
    assert convnp.signal is signal
    assert {"correlate2d", "convolve2d", "kernels"} <= set(signal.__all__)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        correlate2d(np.ones((2, 2)), np.ones((2, 2)))


def test_correlation_vs_convolution_example_runs(capsys):
    import runpy
    from pathlib import Path
    example = Path(__file__).resolve().parents[1] / "examples" / "correlation_vs_convolution.py"
    module = runpy.run_path(str(example))
    assert module["main"]() == 0
    assert "All checks passed" in capsys.readouterr().out
