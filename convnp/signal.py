"""2-D correlation and convolution of plain arrays: the signal-processing view of a CNN layer.

``correlate2d(image, kernel)`` slides the kernel over the image and sums the products (what a CNN
"convolution" layer computes); ``convolve2d`` does the same with the kernel flipped in both axes, as
in a signal-processing textbook. Both take SciPy's argument names and values and give the same
numbers as ``scipy.signal.correlate2d`` / ``scipy.signal.convolve2d`` (SciPy is not needed), plus two
extra boundaries, "replicate" and "reflect".

The computation is im2col-style over kernel offsets: pad the image once, then for every kernel tap
(p, q) add ``kernel[p, q] * padded[p:p+OH, q:q+OW]`` to the output. Works on NumPy and CuPy arrays.

Example::

    >>> import numpy as np
    >>> from convnp.signal import correlate2d
    >>> x = np.array([[1, 2, 3, 0], [0, 1, 2, 3], [3, 0, 1, 2], [2, 3, 0, 1]])
    >>> correlate2d(x, np.array([[2, 0, 1], [0, 1, 2], [1, 0, 2]]), mode="valid")
    array([[15, 16],
           [ 6, 15]])
"""
from __future__ import annotations

import numbers

import numpy as np

from .backend import get_array_module

MODES = ("full", "same", "valid")
#: boundary name -> canonical name; SciPy's names and aliases first, then convnp's extras
BOUNDARIES = {
    "fill": "fill", "pad": "fill",
    "wrap": "wrap", "circular": "wrap",
    "symm": "symm", "symmetric": "symm",
    "replicate": "replicate", "repeat": "replicate", "edge": "replicate",
    "reflect": "reflect",
}


def _check_mode(mode, where):
    if not isinstance(mode, str) or mode not in MODES:
        raise ValueError(f"{where}: unknown mode {mode!r}; expected 'full', 'same' or 'valid'")
    return mode


def _check_boundary(boundary, where):
    if not isinstance(boundary, str) or boundary not in BOUNDARIES:
        raise ValueError(f"{where}: unknown boundary {boundary!r}; expected 'fill' (or 'pad'), 'wrap' (or "
                         "'circular'), 'symm' (or 'symmetric'), 'replicate' (or 'repeat', 'edge') or 'reflect'")
    return BOUNDARIES[boundary]


def _as_2d(a, name, where, xp):
    a = xp.asarray(a)
    if a.ndim != 2:
        raise ValueError(f"{where}: {name} must be a 2-D array, got {a.ndim}-D with shape {tuple(a.shape)}")
    if a.dtype == bool or a.dtype.kind not in "uifc":
        raise TypeError(f"{where}: {name} must have a numeric dtype (int, float or complex), got {a.dtype}")
    return a


def _swap_needed(mode, shape1, shape2, where):
    """SciPy's rule: in 'valid' mode one input must be at least as large as the other in every
    dimension; when in2 is the larger one the inputs are swapped."""
    if mode != "valid":
        return False
    ok1 = all(a >= b for a, b in zip(shape1, shape2))
    ok2 = all(b >= a for a, b in zip(shape1, shape2))
    if not (ok1 or ok2):
        raise ValueError(f"{where}: in 'valid' mode one input must be at least as large as the other in every "
                         f"dimension, got shapes {tuple(shape1)} and {tuple(shape2)}")
    return not ok1


def _fill_scalar(fillvalue, dtype, where):
    """fillvalue as a scalar of the output dtype (SciPy: scalar or one-element array; no complex -> real)."""
    arr = np.asarray(getattr(fillvalue, "get", lambda: fillvalue)())
    if arr.size != 1:
        raise ValueError(f"{where}: fillvalue must be a scalar or an array with one element, got shape "
                         f"{arr.shape}")
    value = arr.reshape(()).item()
    if isinstance(value, complex) and dtype.kind != "c":
        if value.imag != 0:
            raise ValueError(f"{where}: cannot use the complex fillvalue {value!r} with {dtype} inputs")
        value = value.real
    if not isinstance(value, numbers.Number):
        raise TypeError(f"{where}: fillvalue must be a number, got {type(value).__name__}")
    if dtype.kind in "iu":
        value = int(value)  # truncates toward zero, as SciPy's cast does
    return np.array(value).astype(dtype)[()]


def _source_index(n, before, after, boundary, xp):
    """Index into a length-n axis for each of the n + before + after padded positions."""
    i = xp.arange(-before, n + after)
    if boundary == "wrap":
        return i % n
    if boundary == "replicate":
        return xp.clip(i, 0, n - 1)
    if boundary == "symm":  # d c b a | a b c d | d c b a (edge repeated), period 2n
        j = i % (2 * n)
        return xp.where(j < n, j, 2 * n - 1 - j)
    # reflect: d c b | a b c d | c b a (edge not repeated), period 2n - 2
    if n == 1:
        return xp.zeros_like(i)
    j = i % (2 * n - 2)
    return xp.where(j < n, j, 2 * n - 2 - j)


def _pad(x, pads, boundary, fill, xp):
    """Pad a 2-D array by ((top, bottom), (left, right)) with the given boundary rule."""
    (top, bottom), (left, right) = pads
    m, n = x.shape
    if boundary == "fill":
        out = xp.full((m + top + bottom, n + left + right), fill, dtype=x.dtype)
        out[top:top + m, left:left + n] = x
        return out
    if m == 0 or n == 0:
        raise ValueError(f"cannot pad an empty array of shape {tuple(x.shape)} with boundary {boundary!r}")
    rows = _source_index(m, top, bottom, boundary, xp)
    cols = _source_index(n, left, right, boundary, xp)
    return x[rows[:, None], cols[None, :]]  # (m + top + bottom, n + left + right)


def _correlate_core(x, k, mode, boundary, fill, xp, same_flip):
    """out[i, j] = sum_{p,q} padded[i + p, j + q] * k[p, q] (no conjugation here).

    ``same_flip``: True for a convolution (the kernel was flipped), which moves the centre of an
    even-sized kernel in 'same' mode by one, as SciPy does.
    """
    m, n = x.shape
    kh, kw = k.shape
    if k.size == 0:  # a sum over no taps: zeros of the mode's size (as SciPy)
        size = {"full": (m + kh - 1, n + kw - 1), "same": (m, n), "valid": (m - kh + 1, n - kw + 1)}[mode]
        return xp.zeros(tuple(max(s, 0) for s in size), dtype=x.dtype)
    if mode == "valid":
        pads = ((0, 0), (0, 0))
    elif mode == "full":
        pads = ((kh - 1, kh - 1), (kw - 1, kw - 1))
    else:  # same: output has x's shape, centred as in SciPy
        top = kh // 2 if same_flip else (kh - 1) // 2
        left = kw // 2 if same_flip else (kw - 1) // 2
        pads = ((top, kh - 1 - top), (left, kw - 1 - left))
    xpad = _pad(x, pads, boundary, fill, xp) if mode != "valid" else x
    oh, ow = xpad.shape[0] - kh + 1, xpad.shape[1] - kw + 1
    out = xp.zeros((oh, ow), dtype=x.dtype)  # (OH, OW)
    if oh <= 0 or ow <= 0:
        return out
    for p in range(kh):  # one shifted view per kernel tap: im2col without storing the columns
        for q in range(kw):
            out += k[p, q] * xpad[p:p + oh, q:q + ow]
    return out


def _prepare(in1, in2, mode, boundary, fillvalue, where):
    xp = get_array_module(in1, in2)
    in1 = _as_2d(in1, "in1", where, xp)
    in2 = _as_2d(in2, "in2", where, xp)
    mode = _check_mode(mode, where)
    boundary = _check_boundary(boundary, where)
    dtype = np.result_type(in1.dtype, in2.dtype)
    fill = _fill_scalar(fillvalue, dtype, where)
    swapped = _swap_needed(mode, in1.shape, in2.shape, where)
    return xp, in1.astype(dtype, copy=False), in2.astype(dtype, copy=False), mode, boundary, fill, swapped


def correlate2d(in1, in2, mode: str = "full", boundary: str = "fill", fillvalue=0):
    """Cross-correlate two 2-D arrays (what a CNN "convolution" layer computes), as scipy.signal.correlate2d.

    Args:
        in1: the image, shape (M, N); int, float or complex.
        in2: the kernel (template), shape (P, Q); complex kernels are conjugated, as in SciPy.
        mode: "full" (every overlap), "same" (output the size of in1, centred as SciPy) or "valid"
            (only where the kernel fits; in this mode one input must be at least as large as the other
            in every dimension, and when in2 is the larger the two are swapped, as in SciPy).
        boundary: how in1 is extended beyond its edges: "fill" (fillvalue; alias "pad"), "wrap"
            (periodic; alias "circular"), "symm" (mirror with the edge repeated; alias "symmetric"),
            and two not in SciPy: "replicate" (edge value; aliases "repeat", "edge") and "reflect"
            (mirror without repeating the edge).
        fillvalue: the padding value for boundary="fill" (a scalar or a one-element array).

    Shape: full (M + P - 1, N + Q - 1); same (M, N); valid (M - P + 1, N - Q + 1).
    ``out[i, j] = sum_{p,q} in1_padded[i + p, j + q] * conj(in2[p, q])``; the dtype is the common
    dtype of the inputs (integers stay integers).

    Example: ``correlate2d(image, kernels.sobel_x(), mode="same", boundary="symm")``.
    """
    xp, in1, in2, mode, boundary, fill, swapped = _prepare(in1, in2, mode, boundary, fillvalue, "correlate2d")
    if swapped:  # SciPy: correlate the larger with the conjugated smaller, then flip the result
        in1, in2 = in2, in1
    out = _correlate_core(in1, in2.conj(), mode, boundary, fill, xp, same_flip=False)
    return out[::-1, ::-1].copy() if swapped else out


def convolve2d(in1, in2, mode: str = "full", boundary: str = "fill", fillvalue=0):
    """Convolve two 2-D arrays (correlation with the kernel flipped in both axes), as scipy.signal.convolve2d.

    Args:
        in1, in2: 2-D arrays (int, float or complex); convolution is commutative in "full" mode.
        mode, boundary, fillvalue: as in :func:`correlate2d` (in "valid" mode the larger input is used
            as the image, as in SciPy).

    Shape: full (M + P - 1, N + Q - 1); same (M, N); valid (M - P + 1, N - Q + 1).
    ``out[i, j] = sum_{p,q} in1_padded[i + p, j + q] * in2[P-1-p, Q-1-q]``.

    Example: ``convolve2d(x, k, mode="valid")`` equals ``correlate2d(x, k[::-1, ::-1], mode="valid")``.
    """
    xp, in1, in2, mode, boundary, fill, swapped = _prepare(in1, in2, mode, boundary, fillvalue, "convolve2d")
    if swapped:
        in1, in2 = in2, in1
    return _correlate_core(in1, in2[::-1, ::-1], mode, boundary, fill, xp, same_flip=True)


# ---------------------------------------------------------------------------- named kernels
class kernels:  # noqa: N801  (a namespace: kernels.sobel_x(), kernels.gaussian(5, 1.0), ...)
    """Classic 2-D filters as float arrays, for :func:`correlate2d` and ``viz.plot_kernel_response``.

    Example: ``correlate2d(image, kernels.gaussian(5, 1.0), mode="same", boundary="symm")``.
    """

    @staticmethod
    def sobel_x(dtype=np.float64):
        """3x3 Sobel filter responding to horizontal intensity changes (vertical edges); correlating
        gives a positive response where the image gets brighter to the right."""
        return np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=dtype)

    @staticmethod
    def sobel_y(dtype=np.float64):
        """3x3 Sobel filter responding to vertical intensity changes (horizontal edges); positive
        where the image gets brighter downwards."""
        return np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], dtype=dtype)

    @staticmethod
    def laplacian(diagonal: bool = False, dtype=np.float64):
        """3x3 Laplacian (second derivative; zero on flat regions and linear ramps): the 4-neighbour
        stencil, or the 8-neighbour one with ``diagonal=True``."""
        if diagonal:
            return np.array([[1, 1, 1], [1, -8, 1], [1, 1, 1]], dtype=dtype)
        return np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=dtype)

    @staticmethod
    def gaussian(size: int = 5, sigma: float = 1.0, dtype=np.float64):
        """size x size Gaussian blur, exp(-(x^2 + y^2) / (2 sigma^2)) normalised to sum 1."""
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(f"kernels.gaussian: size must be a positive integer, got {size!r}")
        if not sigma > 0:
            raise ValueError(f"kernels.gaussian: sigma must be positive, got {sigma!r}")
        r = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
        g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2.0 * float(sigma) ** 2))
        return (g / g.sum()).astype(dtype)

    @staticmethod
    def box(size: int = 3, dtype=np.float64):
        """size x size mean filter (every weight 1 / size^2)."""
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(f"kernels.box: size must be a positive integer, got {size!r}")
        return np.full((size, size), 1.0 / (size * size), dtype=dtype)

    @staticmethod
    def sharpen(dtype=np.float64):
        """3x3 sharpening filter (identity plus a negative Laplacian); sums to 1."""
        return np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], dtype=dtype)

    @staticmethod
    def emboss(dtype=np.float64):
        """3x3 emboss filter (a diagonal derivative plus the identity); sums to 1."""
        return np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], dtype=dtype)

    @staticmethod
    def named():
        """The default set {name: kernel} drawn by ``viz.plot_kernel_response``."""
        return {"sobel_x": kernels.sobel_x(), "sobel_y": kernels.sobel_y(), "laplacian": kernels.laplacian(),
                "gaussian": kernels.gaussian(5, 1.0), "box": kernels.box(3), "sharpen": kernels.sharpen(),
                "emboss": kernels.emboss()}


__all__ = ["correlate2d", "convolve2d", "kernels", "MODES", "BOUNDARIES"]
