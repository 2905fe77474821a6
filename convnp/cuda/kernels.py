"""CUDA C sources of convnp's custom GPU kernels (compiled by CuPy with NVRTC, one module per dtype).

Every kernel is a plain ``extern "C" __global__`` function over a flat index with a grid-stride loop,
so any launch configuration computes the same result, and no kernel uses atomics, shared memory or
``__syncthreads``: each thread owns the output elements it writes. The sources use only CUDA built-ins
(no ``#include``, no ``INFINITY``), which NVRTC compiles without headers.

A kernel is described once, by :class:`Kernel`: its parameter list (name and kind) and its body. The
same description generates the source given to CuPy, the ``.cu`` file the nvcc compile test builds,
and the C++ that :mod:`convnp.cuda.emulate` compiles with g++ to run the kernels on the CPU; the
launcher (:mod:`convnp.cuda.ops`) casts scalars from the same parameter kinds.

Parameter kinds: ``"ptr"`` (device pointer to T), ``"cptr"`` (``const T*``), ``"iptr"`` / ``"ciptr"``
(``int*`` / ``const int*``), ``"i32"`` (int), ``"i64"`` (long long), ``"T"`` (a scalar of the float type).

Kernels (T is ``float`` or ``double``):

* ``convnp_im2col``: one thread per patch element; col (N, C*kh*kw, OH*OW) from a padded (N, C, Hp, Wp).
* ``convnp_col2im``: one thread per padded input pixel, gathering the kh*kw patch entries that read it
  (the adjoint of im2col without atomics); writes or adds into (N, C, Hp, Wp).
* ``convnp_maxpool_fwd``: one thread per output; max of the window and the row-major index of its
  first maximum (int32) in one pass over a (-inf padded) input.
* ``convnp_maxpool_bwd``: one thread per (unpadded) input pixel, summing dy of the windows whose
  argmax is this pixel.
* ``convnp_bias_act``: y = act(y + b[channel]) in place (act: identity or ReLU).
* ``convnp_relu_bwd``: dx = dy * (y > 0).
* ``convnp_adam``: one fused Adam/AdamW step (PyTorch formulas, optional AMSGrad).
* ``convnp_sgd``: one fused SGD step with weight decay, momentum, dampening and Nesterov (PyTorch).
"""
from __future__ import annotations

from collections import namedtuple

import numpy as np

#: C type of each parameter kind
C_TYPES = {"ptr": "T* __restrict__", "cptr": "const T* __restrict__", "iptr": "int* __restrict__",
           "ciptr": "const int* __restrict__", "i32": "int", "i64": "long long", "T": "T"}

#: extra NVRTC options for the modules (none: CuPy adds the architecture; NVRTC's default C++ standard);
#: the NVRTC compile check uses the same
NVRTC_OPTIONS = ()

#: C name of each supported float dtype
DTYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}

Kernel = namedtuple("Kernel", "name params body")

_LOOP = "for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total; " \
        "i += (long long)blockDim.x * gridDim.x)"

IM2COL = Kernel("convnp_im2col", (
    ("x", "cptr"), ("col", "ptr"), ("total", "i64"), ("C", "i32"), ("Hp", "i32"), ("Wp", "i32"),
    ("kh", "i32"), ("kw", "i32"), ("sh", "i32"), ("sw", "i32"), ("dh", "i32"), ("dw", "i32"),
    ("OH", "i32"), ("OW", "i32")), """
    // i runs over col (N, C, kh, kw, OH, OW) == (N, C*kh*kw, OH*OW)
    LOOP {
        long long t = i;
        const int ow = (int)(t % OW); t /= OW;
        const int oh = (int)(t % OH); t /= OH;
        const int j = (int)(t % kw); t /= kw;
        const int r = (int)(t % kh); t /= kh;          // t = n*C + c
        const long long row = (long long)oh * sh + (long long)r * dh;
        const long long column = (long long)ow * sw + (long long)j * dw;
        col[i] = x[(t * Hp + row) * Wp + column];
    }
""")

COL2IM = Kernel("convnp_col2im", (
    ("col", "cptr"), ("out", "ptr"), ("total", "i64"), ("C", "i32"), ("Hp", "i32"), ("Wp", "i32"),
    ("kh", "i32"), ("kw", "i32"), ("sh", "i32"), ("sw", "i32"), ("dh", "i32"), ("dw", "i32"),
    ("OH", "i32"), ("OW", "i32"), ("accumulate", "i32")), """
    // i runs over the padded image (N, C, Hp, Wp); gather every patch entry that copied this pixel
    LOOP {
        long long t = i;
        const int w = (int)(t % Wp); t /= Wp;
        const int h = (int)(t % Hp); t /= Hp;          // t = n*C + c
        const long long plane = (long long)OH * OW;
        T sum = 0;
        for (int r = 0; r < kh; ++r) {
            const int dr = h - r * dh;                 // = oh*sh for the window row that reads h
            if (dr < 0) break;
            if (dr % sh != 0) continue;
            const int oh = dr / sh;
            if (oh >= OH) continue;
            for (int j = 0; j < kw; ++j) {
                const int dc = w - j * dw;
                if (dc < 0) break;
                if (dc % sw != 0) continue;
                const int ow = dc / sw;
                if (ow >= OW) continue;
                sum += col[((t * kh + r) * kw + j) * plane + (long long)oh * OW + ow];
            }
        }
        out[i] = accumulate ? out[i] + sum : sum;
    }
""")

MAXPOOL_FWD = Kernel("convnp_maxpool_fwd", (
    ("x", "cptr"), ("y", "ptr"), ("argmax", "iptr"), ("total", "i64"), ("Hp", "i32"), ("Wp", "i32"),
    ("kh", "i32"), ("kw", "i32"), ("sh", "i32"), ("sw", "i32"), ("OH", "i32"), ("OW", "i32")), """
    // i runs over y (N, C, OH, OW); x is the (-inf padded) input (N, C, Hp, Wp)
    LOOP {
        long long t = i;
        const int ow = (int)(t % OW); t /= OW;
        const int oh = (int)(t % OH); t /= OH;          // t = n*C + c
        const T* window = x + (t * Hp + (long long)oh * sh) * Wp + (long long)ow * sw;
        T best = window[0];
        int where = 0;
        for (int r = 0; r < kh; ++r) {
            for (int j = 0; j < kw; ++j) {
                const T v = window[(long long)r * Wp + j];
                if (v > best || (v != v && best == best)) {   // first maximum; a NaN wins (as max does)
                    best = v;
                    where = r * kw + j;
                }
            }
        }
        y[i] = best;
        argmax[i] = where;
    }
""")

MAXPOOL_BWD = Kernel("convnp_maxpool_bwd", (
    ("dy", "cptr"), ("argmax", "ciptr"), ("dx", "ptr"), ("total", "i64"), ("H", "i32"), ("W", "i32"),
    ("top", "i32"), ("left", "i32"), ("kh", "i32"), ("kw", "i32"), ("sh", "i32"), ("sw", "i32"),
    ("OH", "i32"), ("OW", "i32")), """
    // i runs over dx (N, C, H, W); (hp, wp) is the pixel in the padded frame the windows index
    LOOP {
        long long t = i;
        const int w = (int)(t % W); t /= W;
        const int h = (int)(t % H); t /= H;             // t = n*C + c
        const int hp = h + top, wp = w + left;
        const int oh_lo = hp < kh ? 0 : (hp - kh) / sh + 1;
        const int oh_hi = hp / sh < OH - 1 ? hp / sh : OH - 1;
        const int ow_lo = wp < kw ? 0 : (wp - kw) / sw + 1;
        const int ow_hi = wp / sw < OW - 1 ? wp / sw : OW - 1;
        const long long base = t * OH * OW;
        T sum = 0;
        for (int oh = oh_lo; oh <= oh_hi; ++oh) {
            for (int ow = ow_lo; ow <= ow_hi; ++ow) {
                const long long o = base + (long long)oh * OW + ow;
                if (argmax[o] == (hp - oh * sh) * kw + (wp - ow * sw)) sum += dy[o];
            }
        }
        dx[i] = sum;
    }
""")

BIAS_ACT = Kernel("convnp_bias_act", (
    ("y", "ptr"), ("b", "cptr"), ("total", "i64"), ("C", "i32"), ("inner", "i64"), ("relu", "i32")), """
    // y (outer, C, inner) in place: y = act(y + b[c])
    LOOP {
        T v = y[i] + b[(i / inner) % C];
        if (relu && v < 0) v = 0;               // NaN stays NaN, as max(x, 0)
        y[i] = v;
    }
""")

RELU_BWD = Kernel("convnp_relu_bwd", (("dy", "cptr"), ("y", "cptr"), ("dx", "ptr"), ("total", "i64")), """
    LOOP {
        dx[i] = y[i] > 0 ? dy[i] : (T)0;
    }
""")

ADAM = Kernel("convnp_adam", (
    ("p", "ptr"), ("g", "cptr"), ("m", "ptr"), ("v", "ptr"), ("vmax", "ptr"), ("total", "i64"),
    ("lr", "T"), ("beta1", "T"), ("beta2", "T"), ("eps", "T"), ("weight_decay", "T"), ("step_size", "T"),
    ("bc2_sqrt", "T"), ("decoupled", "i32"), ("amsgrad", "i32")), """
    // PyTorch Adam (decoupled=0: L2 added to the gradient) / AdamW (decoupled=1: p *= 1 - lr*wd);
    // step_size = lr / (1 - beta1^t), bc2_sqrt = sqrt(1 - beta2^t)
    LOOP {
        T param = p[i];
        T grad = g[i];
        if (weight_decay != 0) {
            if (decoupled) param = param * (1 - lr * weight_decay);
            else grad = grad + weight_decay * param;
        }
        const T m1 = beta1 * m[i] + (1 - beta1) * grad;
        const T v1 = beta2 * v[i] + (1 - beta2) * grad * grad;
        m[i] = m1;
        v[i] = v1;
        T second = v1;
        if (amsgrad) {
            second = vmax[i] > v1 ? vmax[i] : v1;
            vmax[i] = second;
        }
        p[i] = param - step_size * m1 / (sqrt(second) / bc2_sqrt + eps);
    }
""")

SGD = Kernel("convnp_sgd", (
    ("p", "ptr"), ("g", "cptr"), ("buf", "ptr"), ("total", "i64"), ("lr", "T"), ("momentum", "T"),
    ("dampening", "T"), ("weight_decay", "T"), ("nesterov", "i32"), ("first", "i32")), """
    // PyTorch SGD: g += wd*p; buf = g (first step) or momentum*buf + (1-dampening)*g;
    // step direction = g + momentum*buf (Nesterov) or buf; p -= lr * direction
    LOOP {
        T grad = g[i];
        if (weight_decay != 0) grad = grad + weight_decay * p[i];
        if (momentum != 0) {
            const T b = first ? grad : momentum * buf[i] + (1 - dampening) * grad;
            buf[i] = b;
            grad = nesterov ? grad + momentum * b : b;
        }
        p[i] = p[i] - lr * grad;
    }
""")

KERNELS = {k.name: k for k in (IM2COL, COL2IM, MAXPOOL_FWD, MAXPOOL_BWD, BIAS_ACT, RELU_BWD, ADAM, SGD)}


def kernel_source(kernel: Kernel) -> str:
    """The ``extern "C" __global__`` function of one kernel (T must be typedef'd before it)."""
    params = ", ".join(f"{C_TYPES[kind]} {name}" for name, kind in kernel.params)
    body = kernel.body.replace("LOOP", _LOOP)
    return f'extern "C" __global__ void {kernel.name}({params}) {{{body}}}\n'


def module_source(dtype) -> str:
    """All kernels for one float dtype (float32 -> ``float``, float64 -> ``double``) as one CUDA module."""
    dtype = np.dtype(dtype)
    if dtype not in DTYPES:
        raise ValueError(f"convnp.cuda: no kernels for dtype {dtype}; expected float32 or float64")
    head = f"// convnp custom kernels, T = {DTYPES[dtype]}\ntypedef {DTYPES[dtype]} T;\n\n"
    return head + "\n".join(kernel_source(k) for k in KERNELS.values())
