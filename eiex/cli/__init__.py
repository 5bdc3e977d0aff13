"""The ``eiex`` command line: one module per command, each with ``add_parser(sub)`` and the
function its parser runs. Every failure is one line on stderr and a non-zero exit."""

from __future__ import annotations

import argparse
import sys

from eiex.cli import bench, binarize, build, compress, demo, explore, export, run, sim, synth, verilog
from eiex.cli.common import Parser
from eiex.errors import EiexError

#: the commands, in the order ``eiex --help`` lists them
COMMANDS = (compress, binarize, export, verilog, build, explore, sim, run, synth, bench, demo)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="eiex", description="Compressed neural networks on FPGAs.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except EiexError as e:
        print(f"eiex: error: {e}", file=sys.stderr)
    except OSError as e:
        print(f"eiex: error: {e.strerror or e}{f': {e.filename}' if e.filename else ''}", file=sys.stderr)
    except KeyboardInterrupt:
        print("eiex: interrupted; no output was written", file=sys.stderr)
        return 130
    return 1
