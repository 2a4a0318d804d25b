"""The parser of every subcommand and ``main``: the exit codes (0 done, 1 an unexpected error,
2 the project's own error, 130 cancelled) and the one-line error messages."""

from __future__ import annotations

import argparse
import sys

from . import demo, embed, evaluate, info, mesh, propagate, train

COMMANDS = (demo, info, mesh, embed, propagate, train, evaluate)
DESCRIPTION = "The ``napari-scroll-sam`` command."


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="napari-scroll-sam", description=DESCRIPTION)
    parser.add_argument("--debug", action="store_true", help="print tracebacks of errors")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="print tracebacks of errors")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name, **kw):  # every command takes --debug, before or after its name
        return sub.add_parser(name, parents=[common], **kw)

    for module in COMMANDS:
        module.register(command)
    return parser


def main(argv=None) -> int:
    """Run a command. The project's errors print as one line (exit 2), anything else as one
    line naming its type (exit 1), Ctrl-C exits 130; ``--debug`` adds the traceback."""
    args = build_parser().parse_args(argv)
    debug = bool(getattr(args, "debug", False))
    import logging

    if not logging.getLogger().handlers:  # warnings (e.g. a read-only cache) as one line each
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    from ..errors import ScrollSamError

    try:
        return args.func(args)
    except KeyboardInterrupt:
        if debug:
            import traceback

            traceback.print_exc()
        print("cancelled (Ctrl-C)", file=sys.stderr)
        return 130
    except ScrollSamError as exc:
        _print_error(f"error: {exc}", debug)
        return 2
    except Exception as exc:  # noqa: BLE001 - one line for the user; --debug for the traceback
        text = str(exc).strip().splitlines()
        where = f" ({exc.filename})" if isinstance(exc, OSError) and getattr(exc, "filename", None) else ""
        _print_error(f"error: {type(exc).__name__}{where}: {text[0] if text else ''}"
                     + ("" if debug else "  (run again with --debug for the traceback)"), debug)
        return 1


def _print_error(line: str, debug: bool) -> None:
    if debug:
        import traceback

        traceback.print_exc()
    print(" ".join(line.split("\n")), file=sys.stderr)
