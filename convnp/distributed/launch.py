"""Start a convnp command on several MPI ranks of this machine without typing the mpiexec line.

    python -m convnp.distributed.launch -n 2 train --model lenet5 --epochs 1
    # runs: mpiexec -n 2 <this python> -m mpi4py -m convnp train --model lenet5 --epochs 1

``python -m mpi4py`` makes any unhandled exception on one rank abort the whole job. On a cluster,
call ``mpiexec``/``srun`` directly instead (see docs/distributed.md).
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path


def find_mpiexec() -> str:
    """The ``mpiexec`` on PATH, else the one next to this Python (the mpich wheel installs it there)."""
    exe = shutil.which("mpiexec") or shutil.which("mpiexec", path=str(Path(sys.executable).parent))
    if exe is None:
        raise RuntimeError("convnp.distributed.launch: no mpiexec found on PATH or next to "
                           f"{sys.executable}; `pip install \"convnp[dist]\"` installs mpi4py and the mpich wheel")
    return exe


def mpiexec_command(nprocs: int, args, mpiexec: str | None = None, python: str | None = None) -> list:
    """The argument list ``mpiexec -n nprocs python -m mpi4py -m convnp *args``.

    Example: ``mpiexec_command(2, ["train"], mpiexec="mpiexec", python="python")`` ->
    ``['mpiexec', '-n', '2', 'python', '-m', 'mpi4py', '-m', 'convnp', 'train']``.
    """
    if isinstance(nprocs, bool) or int(nprocs) != nprocs or int(nprocs) < 1:
        raise ValueError(f"convnp.distributed.launch: the number of ranks must be a positive integer, got {nprocs!r}")
    return [mpiexec or find_mpiexec(), "-n", str(int(nprocs)), python or sys.executable,
            "-m", "mpi4py", "-m", "convnp", *args]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m convnp.distributed.launch",
                                     description="Run a convnp command on N MPI ranks of this machine.")
    parser.add_argument("-n", "--np", dest="nprocs", type=int, required=True, help="number of ranks")
    parser.add_argument("--mpiexec", default=None, help="the mpiexec to use (default: found on PATH)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="convnp command and its arguments")
    args = parser.parse_args(argv)
    if not args.command:
        parser.error("give the convnp command to run, e.g. `train --model lenet5`")
    try:
        cmd = mpiexec_command(args.nprocs, args.command, mpiexec=args.mpiexec)
    except (ValueError, RuntimeError) as e:
        print(e, file=sys.stderr)
        return 1
    print(" ".join(cmd), file=sys.stderr)
    return subprocess.call(cmd)


if __name__ == "__main__":
    sys.exit(main())
