"""A CNN "convolution" layer computes a cross-correlation: a short demonstration with numbers.

Signal processing defines convolution with the kernel flipped, (x * k)[i, j] = sum x[i + p, j + q] k[P-1-p, Q-1-q]
(valid part); CNN frameworks (convnp, PyTorch, Keras) slide the kernel *unflipped*:
y[i, j] = sum x[i + p, j + q] k[p, q], which is ``correlate2d``. Learned kernels do not care (the network
would learn the flipped kernel instead), but hand-made ones do: an asymmetric kernel such as Sobel gives
the opposite sign under convolution.

    python examples/correlation_vs_convolution.py
"""
from __future__ import annotations

import numpy as np

import convnp
from convnp import nn
from convnp.signal import convolve2d, correlate2d, kernels


def conv_layer_with(kernel, in_channels=1, bias=0.0):
    """A Conv2D with one filter whose weight we set by hand (valid padding, stride 1)."""
    kernel = np.asarray(kernel, np.float64)
    if kernel.ndim == 2:
        kernel = kernel[None]
    layer = nn.Conv2D(1, kernel.shape[-2:], in_channels=in_channels).astype(np.float64)
    layer.weight.data[0] = kernel
    layer.bias.data[:] = bias
    return layer


def show(title, array):
    print(f"{title}:\n{np.array2string(np.asarray(array), precision=3, suppress_small=True)}\n")


def main() -> int:
    # 1. The textbook example: a 4x4 input and a 3x3 filter, no padding, stride 1.
    x = np.array([[1, 2, 3, 0], [0, 1, 2, 3], [3, 0, 1, 2], [2, 3, 0, 1]], dtype=np.float64)
    k = np.array([[2, 0, 1], [0, 1, 2], [1, 0, 2]], dtype=np.float64)
    with convnp.no_grad():
        y_layer = conv_layer_with(k)(x[None, None])[0, 0]
    y_corr = correlate2d(x, k, mode="valid")
    y_conv = convolve2d(x, k, mode="valid")
    show("Conv2D layer output", y_layer)
    show("correlate2d(x, k, 'valid')", y_corr)
    show("convolve2d(x, k, 'valid')   (the kernel flipped: different numbers)", y_conv)
    show("convolve2d(x, k[::-1, ::-1], 'valid')   (flip it back: the layer's numbers)",
         convolve2d(x, k[::-1, ::-1], "valid"))
    assert np.array_equal(y_layer, [[15, 16], [6, 15]])
    assert np.allclose(y_layer, y_corr)
    assert not np.allclose(y_layer, y_conv)
    assert np.allclose(y_layer, convolve2d(x, k[::-1, ::-1], "valid"))

    # 2. Why it matters for hand-made kernels: Sobel x on an image that gets brighter to the right.
    ramp = np.tile(np.arange(6.0), (5, 1))
    with convnp.no_grad():
        edge_layer = conv_layer_with(kernels.sobel_x())(ramp[None, None])[0, 0]
    show("Sobel x by the Conv2D layer (positive: brighter to the right)", edge_layer)
    show("Sobel x by convolve2d (the flip turns the sign around)", convolve2d(ramp, kernels.sobel_x(), "valid"))
    assert np.allclose(edge_layer, 8.0) and np.allclose(convolve2d(ramp, kernels.sobel_x(), "valid"), -8.0)

    # 3. Several input channels: the layer sums one correlation per channel, then adds the bias.
    rng = np.random.default_rng(0)
    image = rng.standard_normal((3, 7, 7))
    weights = rng.standard_normal((3, 3, 3))
    with convnp.no_grad():
        y = conv_layer_with(weights, in_channels=3, bias=0.5)(image[None])[0, 0]
    by_hand = sum(correlate2d(image[c], weights[c], mode="valid") for c in range(3)) + 0.5
    print(f"3 channels + bias: max |Conv2D - (sum of correlate2d + b)| = {np.abs(y - by_hand).max():.2e}")
    assert np.allclose(y, by_hand)

    # 4. Padding: Conv2D(padding="same") with zero padding is correlate2d(mode="same", boundary="fill").
    same = nn.Conv2D(1, 3, padding="same", in_channels=1).astype(np.float64)
    same.weight.data[0, 0] = k
    same.bias.data[:] = 0.0
    with convnp.no_grad():
        y_same = same(x[None, None])[0, 0]
    show("Conv2D(padding='same') = correlate2d(x, k, 'same')", y_same)
    assert np.allclose(y_same, correlate2d(x, k, mode="same"))
    print("All checks passed: a CNN convolution layer is a cross-correlation.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
