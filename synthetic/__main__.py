"""``python -m synthetic <command>``: casting parts, their contact sheet, melting-tank series."""

from __future__ import annotations

import argparse
import sys

from store.cli_errors import cli_main
from synthetic import casting, sheet, writer


def _run_melting(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from synthetic import melting

    status = melting.main(args)
    return status if isinstance(status, int) else 0


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    """The dispatcher; the melting generator is imported only when it is asked for."""
    parser = argparse.ArgumentParser(prog="python -m synthetic", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module, doc, help_text in (
        (
            "casting",
            writer,
            casting.__doc__,
            "cast impellers with exact defect masks, in every layout",
        ),
        (
            "sheet",
            sheet,
            sheet.__doc__,
            "labelled contact sheet of good parts and every defect type",
        ),
    ):
        sub = commands.add_parser(name, help=help_text, description=doc)
        module.add_arguments(sub)
        sub.set_defaults(handler=module.main, subparser=sub)
    sub = commands.add_parser("melting", help="melting-tank sensor series (KAMP schema)")
    sub.set_defaults(handler=_run_melting, subparser=sub)
    if argv[:1] == ["melting"]:
        try:
            from synthetic import melting
        except ModuleNotFoundError as err:
            if err.name != "synthetic.melting":
                raise
            parser.error("melting: synthetic/melting.py is missing from this checkout")
        melting.add_arguments(sub)
    return parser


@cli_main
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv).parse_args(argv)
    return args.handler(args, args.subparser)


if __name__ == "__main__":
    sys.exit(main())
