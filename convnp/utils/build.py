"""Compile C sources into a shared library once, cache it, and load it: the one build helper of convnp.

Two users (it imports nothing of convnp, so any layer may use it): :mod:`convnp.accel.direct` (the CPU kernels, one build per instruction-set variant) and
:mod:`convnp.cuda.emulate` (the CUDA kernels compiled for the CPU, to test them without a GPU).

Variants of the CPU kernels (``isa.h`` sets their register blocking):

=========  ==================================================  ==============================================
variant    compiler flags                                      runs on
=========  ==================================================  ==============================================
avx512     -mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma    x86-64 CPUs with AVX-512 (F, BW, VL, DQ)
avx2       -mavx2 -mfma                                        x86-64 CPUs with AVX2 and FMA
generic    (the compiler's default target)                     any CPU the compiler targets (x86-64, ARM, ...)
=========  ==================================================  ==============================================

:func:`isa_variant` picks the best one the CPU has; ``CONVNP_ISA=avx2|avx512|generic`` forces one (a machine with
AVX-512 can build and time the AVX2 variant; a variant the CPU lacks is refused with a notice). Libraries are
cached in ``$CONVNP_CACHE_DIR`` (default ``$XDG_CACHE_HOME/convnp`` or ``~/.cache/convnp``) under a name keyed by
the sources, the flags and the compiler: a change of any of them builds anew. The first build prints one line
on stderr; a build that fails leaves the caller on its reference path with a one-line notice, never an error.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["VARIANTS", "cache_dir", "cpu_features", "supported_variants", "isa_variant", "c_compiler",
           "compile_library", "notice"]

_COMMON = ["-O3", "-fno-math-errno", "-shared", "-fPIC"]
#: compiler flags of each variant, best first
VARIANTS = {
    "avx512": ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mavx2", "-mfma", "-mf16c",
               "-mprefer-vector-width=512"],
    "avx2": ["-mavx2", "-mfma", "-mf16c"],
    "generic": [],
}
#: CPU flags (as /proc/cpuinfo names them) a variant needs
_NEEDS = {"avx512": {"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx2", "fma"}, "avx2": {"avx2", "fma"},
          "generic": set()}
_noticed: set = set()


def notice(message: str) -> None:
    """Print ``convnp: message`` on stderr once per process (build progress and fallbacks)."""
    if message not in _noticed:
        _noticed.add(message)
        print(f"convnp: {message}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    """Where compiled libraries (and the planner's measurements) are kept."""
    root = os.environ.get("CONVNP_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "convnp")
    return Path(root)


def cpu_features() -> dict:
    """``{"model": str, "machine": str, "flags": set}`` of this CPU (flags from /proc/cpuinfo on Linux; on other
    systems only the machine name is known and the flags are empty, so the generic variant is used)."""
    model, flags = platform.processor() or "unknown CPU", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model in ("", "unknown CPU", platform.processor()):
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return {"model": model, "machine": platform.machine(), "flags": flags}


def supported_variants() -> list:
    """The variants this CPU can run, best first (``generic`` always)."""
    features = cpu_features()
    x86 = features["machine"].lower() in ("x86_64", "amd64", "i686", "i386")
    return [name for name in VARIANTS if name == "generic" or (x86 and _NEEDS[name] <= features["flags"])]


def isa_variant() -> str:
    """The variant to build: ``$CONVNP_ISA`` when the CPU can run it, else the best one it supports."""
    supported = supported_variants()
    forced = os.environ.get("CONVNP_ISA", "").strip().lower()
    if forced and forced != "auto":
        if forced not in VARIANTS:
            notice(f"CONVNP_ISA={forced!r} is not one of {', '.join(VARIANTS)}; using {supported[0]}")
        elif forced not in supported:
            notice(f"CONVNP_ISA={forced}: this CPU lacks {', '.join(sorted(_NEEDS[forced] - cpu_features()['flags']))}"
                   f"; using {supported[0]}")
        else:
            return forced
    return supported[0]


def c_compiler(cxx: bool = False):
    """Path of the C (or C++) compiler: ``$CC`` / ``$CXX`` as given, else cc, gcc, clang (g++, clang++); None if none."""
    chosen = os.environ.get("CXX" if cxx else "CC")
    if chosen:  # the user's choice, used as given (a missing one fails the build with its name)
        return shutil.which(chosen) or chosen
    for name in ("g++", "clang++") if cxx else ("cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def compile_library(name: str, sources, flags, *, cxx: bool = False, directory=None, announce: str | None = None,
                    timeout: float = 300):
    """Compile ``sources`` (paths, or ``(filename, text)`` pairs) with ``flags`` into a cached shared library.

    Returns ``(ctypes.CDLL or None, message)``: the message says where it was built or why it was not. The file
    name is keyed by a hash of the sources, the flags and the compiler; it is written to a temporary file and
    renamed (a concurrent process sees no library or the whole one). ``announce``: a line printed once on stderr
    before a real compilation (not when the cache has the library).
    """
    compiler = c_compiler(cxx)
    if compiler is None:
        return None, "no C compiler (" + ("g++ or clang++" if cxx else "cc, gcc or clang") + ") on PATH"
    texts = []
    try:
        for src in sources:
            if isinstance(src, tuple):
                texts.append((src[0], src[1].encode()))
            else:
                texts.append((Path(src).name, Path(src).read_bytes()))
    except OSError as e:
        return None, f"reading the kernel sources failed: {e}"
    digest = hashlib.sha256()
    for fname, data in texts:
        digest.update(fname.encode() + b"\0" + data)
    digest.update(" ".join([compiler, *flags]).encode())
    folder = Path(directory) if directory is not None else cache_dir()
    target = folder / f"{name}_{digest.hexdigest()[:16]}.so"
    if not target.exists():
        if announce:
            notice(announce)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=folder) as work:
                paths = []
                for fname, data in texts:  # sources and the headers next to them, in one folder
                    (Path(work) / fname).write_bytes(data)
                    if not fname.endswith(".h"):
                        paths.append(str(Path(work) / fname))
                tmp = Path(work) / "out.so"
                res = subprocess.run([compiler, *flags, *paths, "-o", str(tmp), "-lm"], capture_output=True,
                                     text=True, timeout=timeout)
                if res.returncode != 0:
                    return None, f"{compiler} failed: {res.stderr.strip()[-800:]}"
                os.replace(tmp, target)  # atomic
        except (OSError, subprocess.SubprocessError) as e:
            return None, f"building {target} failed: {type(e).__name__}: {e}"
    try:
        return ctypes.CDLL(str(target)), f"built with {compiler} at {target}"
    except OSError as e:
        return None, f"loading {target} failed: {e}"


def kernel_flags(variant: str) -> list:
    """The full flag list of a CPU-kernel variant, plus ``$CONVNP_CFLAGS`` (extra compiler flags, for experiments)."""
    return [*_COMMON, *VARIANTS[variant], *os.environ.get("CONVNP_CFLAGS", "").split()]
