"""Run the convnp CLI (``python tests/mpi/cli_main.py ARGS...``), for tests under mpiexec."""
import sys

from convnp.cli import main

raise SystemExit(main(sys.argv[1:]))
