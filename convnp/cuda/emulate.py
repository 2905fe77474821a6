"""Run convnp's CUDA kernel sources on the CPU (for checking them without a GPU), and compile-check them.

The kernels (:mod:`convnp.cuda.kernels`) share no memory between threads and use no atomics or
barriers, so running their threads one after another is exactly what a GPU computes. :func:`launch`
compiles the very same source with g++ after a short prelude (``__global__`` removed, ``blockIdx``,
``threadIdx``, ``blockDim``, ``gridDim`` as globals) and calls each kernel once per (block, thread)
pair of a small grid through ctypes. It is a drop-in ``launcher=`` for every op of
:mod:`convnp.cuda.ops`, with NumPy arrays::

    from convnp.cuda import emulate, ops
    col = ops.im2col(xpad, geom, launcher=emulate.launch)   # the kernel's index arithmetic, on the CPU

:func:`nvcc_compile` builds the kernel modules with nvcc for a real GPU architecture (syntax, types);
:func:`nvrtc_compile` compiles them with NVRTC, the runtime compiler CuPy uses, to PTX (libnvrtc from the
``nvidia-cuda-nvrtc`` wheel, ``$CONVNP_NVRTC`` or the CUDA toolkit).
"""
from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import tempfile

import numpy as np

from ..utils import build
from .kernels import DTYPES, KERNELS, NVRTC_OPTIONS, module_source

__all__ = ["cpu_compiler", "launch", "nvcc_compile", "find_nvrtc", "nvrtc_compile", "GRID", "BLOCK"]

#: the emulated launch configuration (small and odd, so the grid-stride loop wraps several times)
GRID, BLOCK = 3, 5

_PRELUDE = """
#include <cmath>
using std::sqrt;
struct convnp_dim3 { unsigned int x, y, z; };
static convnp_dim3 blockIdx, threadIdx, blockDim, gridDim;
extern "C" void convnp_set_thread(unsigned int block, unsigned int thread, unsigned int block_dim,
                                  unsigned int grid_dim) {
    blockIdx.x = block; threadIdx.x = thread; blockDim.x = block_dim; gridDim.x = grid_dim;
    blockIdx.y = blockIdx.z = threadIdx.y = threadIdx.z = 0;
    blockDim.y = blockDim.z = gridDim.y = gridDim.z = 1;
}
#define __global__
#define __device__
"""

_libraries: dict = {}
_CTYPES = {"i32": ctypes.c_int, "i64": ctypes.c_longlong}


def cpu_compiler():
    """Path of the C++ compiler used for the emulation (``$CXX``, g++ or clang++), or None."""
    return build.c_compiler(cxx=True)


def _library(dtype):
    dtype = np.dtype(dtype)
    if dtype in _libraries:
        return _libraries[dtype]
    if cpu_compiler() is None:
        raise RuntimeError("convnp.cuda.emulate: no C++ compiler found (g++ or clang++, or set $CXX)")
    source = _PRELUDE + module_source(dtype)  # built like the CPU kernels: cached, keyed, written atomically
    lib, how = build.compile_library(f"cuda_emulate_{DTYPES[dtype]}", [("kernels.cpp", source)],
                                     ["-O1", "-shared", "-fPIC", "-Wall", "-Werror", "-Wno-unused-variable"], cxx=True)
    if lib is None:
        raise RuntimeError(f"convnp.cuda.emulate: compiling the kernels failed: {how}")
    lib.convnp_set_thread.argtypes = [ctypes.c_uint] * 4
    _libraries[dtype] = lib
    return lib


def _arg(kind, value, dtype):
    if kind in ("ptr", "cptr", "iptr", "ciptr"):
        want = np.int32 if kind in ("iptr", "ciptr") else dtype
        if not isinstance(value, np.ndarray) or value.dtype != want or not value.flags.c_contiguous:
            raise TypeError(f"convnp.cuda.emulate: a {kind} argument must be a C-contiguous NumPy array of "
                            f"{np.dtype(want)}, got {type(value).__name__} "
                            f"{getattr(value, 'dtype', '')}")
        return ctypes.c_void_p(value.ctypes.data)
    if kind == "T":
        return (ctypes.c_float if dtype == np.float32 else ctypes.c_double)(float(value))
    return _CTYPES[kind](int(value))


def launch(name, dtype, total, args, grid: int = GRID, block: int = BLOCK) -> None:
    """Run kernel ``name`` on NumPy arrays on the CPU, thread by thread over a ``grid`` x ``block`` launch."""
    dtype = np.dtype(dtype)
    kernel = KERNELS[name]
    if len(args) != len(kernel.params):
        raise TypeError(f"{name}: expected {len(kernel.params)} arguments, got {len(args)}")
    lib = _library(dtype)
    fn = getattr(lib, name)
    fn.restype = None
    c_args = [_arg(kind, value, dtype) for (_, kind), value in zip(kernel.params, args)]
    for b in range(grid):
        for t in range(block):
            lib.convnp_set_thread(b, t, block, grid)
            fn(*c_args)


def nvcc_compile(arch: str = "sm_90", nvcc: str | None = None) -> list:
    """Compile every kernel module (float and double) with nvcc for ``arch``; returns the object files'
    paths. Raises RuntimeError with nvcc's output when a source does not compile."""
    nvcc = nvcc or shutil.which("nvcc")
    if nvcc is None:
        raise RuntimeError("convnp.cuda.emulate.nvcc_compile: nvcc is not on PATH")
    out = []
    directory = tempfile.mkdtemp(prefix="convnp-nvcc-")
    for dtype in DTYPES:
        src = os.path.join(directory, f"kernels_{DTYPES[dtype]}.cu")
        with open(src, "w") as f:
            f.write(module_source(dtype))
        obj = src[:-3] + ".o"
        result = subprocess.run([nvcc, "-c", f"-arch={arch}", "-Werror", "all-warnings", "-o", obj, src],
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"nvcc failed on the {DTYPES[dtype]} kernels:\n{result.stdout}{result.stderr}")
        out.append(obj)
    return out


def find_nvrtc():
    """Path of libnvrtc: ``$CONVNP_NVRTC``, an ``nvidia-cuda-nvrtc`` wheel on sys.path, the system, or None."""
    import ctypes.util
    import glob
    import sys
    if os.environ.get("CONVNP_NVRTC"):
        return os.environ["CONVNP_NVRTC"]
    for root in sys.path + [os.environ.get("CUDA_HOME", "/usr/local/cuda")]:
        for pattern in ("nvidia/cu*/lib/libnvrtc.so*", "nvidia/cuda_nvrtc/lib/libnvrtc.so*", "lib64/libnvrtc.so*"):
            hits = sorted(p for p in glob.glob(os.path.join(root or ".", pattern)) if "builtins" not in p)
            if hits:
                return hits[0]
    return ctypes.util.find_library("nvrtc")


def nvrtc_compile(dtype, arch: str = "compute_90", library: str | None = None) -> str:
    """Compile the kernel module for ``dtype`` with NVRTC (as CuPy does) and return the PTX text.

    Raises RuntimeError with NVRTC's log when the source does not compile, or when no libnvrtc is found.
    """
    path = library or find_nvrtc()
    if path is None:
        raise RuntimeError("convnp.cuda.emulate.nvrtc_compile: libnvrtc not found (pip install nvidia-cuda-nvrtc, "
                           "or set CONVNP_NVRTC to the library's path)")
    import glob
    for builtins in glob.glob(os.path.join(os.path.dirname(path), "libnvrtc-builtins.so*")):  # found by soname
        ctypes.CDLL(builtins, mode=ctypes.RTLD_GLOBAL)
    lib = ctypes.CDLL(path)
    size_t_p = ctypes.POINTER(ctypes.c_size_t)
    lib.nvrtcCreateProgram.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_char_p, ctypes.c_char_p,
                                       ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
    lib.nvrtcCompileProgram.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_char_p)]
    lib.nvrtcGetProgramLogSize.argtypes = [ctypes.c_void_p, size_t_p]
    lib.nvrtcGetProgramLog.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.nvrtcGetPTXSize.argtypes = [ctypes.c_void_p, size_t_p]
    lib.nvrtcGetPTX.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.nvrtcDestroyProgram.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
    prog = ctypes.c_void_p()
    rc = lib.nvrtcCreateProgram(ctypes.byref(prog), module_source(dtype).encode(), b"convnp_kernels.cu", 0, None,
                                None)
    if rc != 0:
        raise RuntimeError(f"nvrtcCreateProgram failed with code {rc}")
    try:
        options = [f"--gpu-architecture={arch}".encode()] + [o.encode() for o in NVRTC_OPTIONS]
        rc = lib.nvrtcCompileProgram(prog, len(options), (ctypes.c_char_p * len(options))(*options))
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetProgramLog(prog, log)
        if rc != 0:
            raise RuntimeError(f"NVRTC failed on the {DTYPES[np.dtype(dtype)]} kernels (code {rc}):\n"
                               f"{log.value.decode(errors='replace')}")
        lib.nvrtcGetPTXSize(prog, ctypes.byref(size))
        ptx = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetPTX(prog, ptx)
        return ptx.value.decode()
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))
