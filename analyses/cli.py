"""The ``belle-rare`` command line.

Each sub-command lives in the module that owns its job and registers itself here through a
``register(subparsers)`` function; this file only wires them together and turns user errors
into one-line messages with a non-zero exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from belle_rare.core.errors import UserError
from belle_rare.configs.loader import ConfigError

# module path -> provides register(subparsers); order is the order of `belle-rare --help`
COMMAND_MODULES = (
    "belle_rare.simulation.cli",
    "belle_rare.analyses.run_command",
    "belle_rare.analyses.train_command",
    "belle_rare.stats.cli",
    "belle_rare.analyses.demo",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="belle-rare",
        description="Rare tau, B and dark-sector searches at Belle / Belle II on coffea.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name == module_name:  # command not built yet
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except (UserError, ConfigError, FileNotFoundError) as err:
        print(f"belle-rare {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"belle-rare {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
