"""The `deft-tune` command line.

Every module in this package with a ``register(subparsers)`` function is one subcommand; it adds
its parser and sets ``func(args) -> int``. User errors (:class:`DeftError`) become one line on
stderr and exit code 2; other exceptions are bugs and keep their traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

from deft_tune import __version__
from deft_tune.errors import DeftError

EXIT_USER_ERROR = 2


class _OneLineParser(argparse.ArgumentParser):
    """argparse prints usage plus an error; users get the one line that says what is wrong."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message} (see --help)\n")


class RenamedOption(argparse.Action):
    """A renamed option's old spelling, kept for one release: hidden from --help, it still
    works and says its new name in one line on stderr (``add_argument(OLD, action=
    RenamedOption, new="--NEW", dest=...)``)."""

    def __init__(self, option_strings: list[str], dest: str, *, new: str, **kwargs) -> None:
        self.new = new
        kwargs.update(help=argparse.SUPPRESS, default=argparse.SUPPRESS)
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(
            f"{parser.prog}: warning: {option_string} is now {self.new}; "
            f"{option_string} goes in the next release",
            file=sys.stderr,
        )
        setattr(namespace, self.dest, values)


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog="deft-tune", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"deft-tune {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=_OneLineParser
    )
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "register"):
            module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USER_ERROR
    try:
        return int(args.func(args) or 0)
    except DeftError as exc:
        print(f"deft-tune: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("deft-tune: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
