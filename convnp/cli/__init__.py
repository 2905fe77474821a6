"""The ``convnp`` command line: thin argument parsing that calls library code.

Each subcommand lives in a module of this package that defines ``register(subparsers)``; the
parser's ``func`` receives the parsed arguments and returns an exit code. Errors print one line
(``convnp: error: ...``) and exit 1; ``--debug`` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import importlib
import sys

#: modules that add subcommands (each defines register(subparsers))
COMMAND_MODULES = ["convnp.cli.demo", "convnp.cli.zoo", "convnp.cli.train", "convnp.cli.viz", "convnp.cli.serve"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="convnp", description="Convolutional networks in NumPy.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return _abort_other_ranks(int(args.func(args) or 0))
    except KeyboardInterrupt:
        print("convnp: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # one clear line unless --debug
        if args.debug:
            raise
        print(f"convnp: error: {e}", file=sys.stderr)
        return _abort_other_ranks(1)


def _abort_other_ranks(code: int) -> int:
    """Return ``code``; under MPI (convnp.distributed in use with more than one rank) a non-zero status
    aborts every rank, so one failing rank ends the job instead of leaving the others waiting."""
    world = sys.modules.get("convnp.distributed.world")
    return world.abort_if_failed(code) if world is not None else code
