"""The ``convnp`` command line: thin argument parsing that calls library code.

Each subcommand lives in a module of this package that defines ``register(subparsers)``; the
parser's ``func`` receives the parsed arguments and returns an exit code. Errors print one line
(``convnp: error: ...``) and exit 1; ``--debug`` shows the traceback instead. A reader that closes the
pipe early (``convnp summary vgg16 | head``) ends the command quietly with status 0.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

#: modules that add subcommands (each defines register(subparsers))
COMMAND_MODULES = ["convnp.cli.demo", "convnp.cli.zoo", "convnp.cli.train", "convnp.cli.viz", "convnp.cli.serve",
                   "convnp.cli.info"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="convnp", description="Convolutional networks in NumPy.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument("--version", action="version", version=f"convnp {_version()}")
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
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows up here for output still in the buffer
        return _abort_other_ranks(code)
    except BrokenPipeError:
        return _closed_pipe()
    except KeyboardInterrupt:
        print("convnp: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # one clear line unless --debug
        if args.debug:
            raise
        print(f"convnp: error: {e}", file=sys.stderr)
        return _abort_other_ranks(1)


def _version() -> str:
    from .. import __version__
    return __version__


def _closed_pipe() -> int:
    """The reader of stdout went away (``| head``): stop quietly. stdout is pointed at /dev/null so that
    Python's final flush at exit does not raise again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return 0


def _abort_other_ranks(code: int) -> int:
    """Return ``code``; under MPI (convnp.distributed in use with more than one rank) a non-zero status
    aborts every rank, so one failing rank ends the job instead of leaving the others waiting."""
    world = sys.modules.get("convnp.distributed.world")
    return world.abort_if_failed(code) if world is not None else code
