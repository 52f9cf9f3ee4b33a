"""The ``opt-outs`` commands: see and correct the opt-out register from a shell.

On Airflow 3.3, which lets a provider add commands (the ``cli`` section of ``get_provider_info``), they
are ``airflow sms opt-outs list|add|remove|import FILE|export [FILE]``; everywhere (Airflow 2.11 too)
the console script ``airflow-sms opt-outs ...`` runs the same functions. Both reach the register through
the ORM, as Airflow's own CLI does. Importing this module imports nothing of Airflow: the Airflow CLI
builds its parser from ``get_cli_commands`` on every invocation, so it stays cheap.

Files are CSV with a header row: ``number`` and, optionally, ``at`` (ISO 8601 with an offset),
``source``, ``word`` and ``by``; ``export`` writes those five columns, which ``import`` reads back. A
file of bare numbers, one a line, imports too.
"""

from __future__ import annotations

import argparse
import csv
import getpass
import io
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from airflow_provider_sms.state.opt_outs import OptOutRegister

COLUMNS = ("number", "at", "source", "word", "by")


def _register() -> OptOutRegister:
    from airflow_provider_sms.state.opt_outs import OptOutRegister

    return OptOutRegister()


def _number(raw: str, region: str | None) -> str:
    from airflow_provider_sms.core.phone import normalize_number

    return normalize_number(raw, region)


def _who(args: argparse.Namespace) -> str:
    return str(getattr(args, "by", None) or getpass.getuser())


def opt_outs_list(args: argparse.Namespace) -> None:
    """Print every opted-out number, newest first."""
    entries = _register().entries()
    if getattr(args, "output", "table") == "json":
        print(json.dumps([entry.to_dict() for entry in entries], indent=2))
        return
    if not entries:
        print("The opt-out register is empty.")
        return
    rows = [(e.number, e.at.isoformat(), e.source, e.word or "", e.by or "") for e in entries]
    widths = [max(len(str(row[i])) for row in [COLUMNS, *rows]) for i in range(len(COLUMNS))]
    for row in [COLUMNS, *rows]:
        print("  ".join(str(value).ljust(width) for value, width in zip(row, widths, strict=True)).rstrip())
    print(f"{len(entries)} number(s) opted out")


def opt_outs_add(args: argparse.Namespace) -> None:
    """Opt numbers out by hand (a request by phone or email, say)."""
    register, who = _register(), _who(args)
    for raw in args.numbers:
        number = _number(raw, args.region)
        changed = register.add(number, source=args.source or "cli", word=args.word, by=who)
        print(f"{number}: {'opted out' if changed else 'already opted out'}")


def opt_outs_remove(args: argparse.Namespace) -> None:
    """Opt numbers back in (only when the person asked for it)."""
    register, who = _register(), _who(args)
    for raw in args.numbers:
        number = _number(raw, args.region)
        changed = register.remove(number, source=args.source or "cli", by=who)
        print(f"{number}: {'removed from the register' if changed else 'was not opted out'}")


def _rows(handle: TextIO) -> Iterator[dict[str, str]]:
    text = handle.read()
    first = text.lstrip().splitlines()[:1]
    if first and "number" in [c.strip().lower() for c in first[0].split(",")]:
        for row in csv.DictReader(io.StringIO(text)):
            yield {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
        return
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            yield {"number": line.strip()}


def opt_outs_import(args: argparse.Namespace) -> None:
    """Add every number of a CSV file (``number`` column; ``at``, ``source``, ``word``, ``by`` kept when
    given) or of a file of bare numbers. Rows that are not phone numbers are listed and skipped."""
    from airflow_provider_sms.core.errors import SmsValidationError

    register, who = _register(), _who(args)
    added = known = 0
    bad: list[str] = []
    with Path(args.file).open(encoding="utf-8-sig", newline="") as handle:
        for line, row in enumerate(_rows(handle), start=1):
            try:
                number = _number(row.get("number", ""), args.region)
                changed = register.add(
                    number,
                    source=row.get("source") or args.source or f"import:{Path(args.file).name}",
                    word=row.get("word") or None,
                    by=row.get("by") or who,
                    at=row.get("at") or None,
                )
            except (SmsValidationError, ValueError) as err:
                bad.append(f"row {line}: {err}")
                continue
            added += changed
            known += not changed
    if added:
        register.save_snapshot()  # so that the next sends read the import in one snapshot, not as events
    print(f"{added} number(s) opted out, {known} already in the register or superseded, {len(bad)} skipped")
    for problem in bad[:20]:
        print(f"  skipped {problem}", file=sys.stderr)
    if bad:
        raise SystemExit(1)


def opt_outs_export(args: argparse.Namespace) -> None:
    """Write the register as CSV (``number,at,source,word,by``) to FILE, or to standard output."""
    entries = _register().entries()
    target = args.file

    def write(handle: TextIO) -> None:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for entry in entries:
            writer.writerow([entry.number, entry.at.isoformat(), entry.source, entry.word or "", entry.by or ""])

    if target in (None, "-"):
        write(sys.stdout)
        return
    with Path(target).open("w", encoding="utf-8", newline="") as handle:
        write(handle)
    print(f"{len(entries)} number(s) written to {target}", file=sys.stderr)


# --- the command table, shared by both front ends -------------------------------------------------

Handler = Callable[[argparse.Namespace], None]
_REGION = (("--region",), {"help": "the region of numbers written without a country code, e.g. AU"})
_SOURCE = (("--source",), {"help": "where the request came from (default: cli)"})
_BY = (("--by",), {"help": "who makes the change (default: the current user)"})
_NUMBERS = (("numbers",), {"nargs": "+", "metavar": "NUMBER", "help": "phone numbers, with their country code"})
COMMANDS: tuple[tuple[str, str, Handler, tuple[tuple[tuple[str, ...], dict[str, Any]], ...]], ...] = (
    (
        "list",
        "List the opted-out numbers",
        opt_outs_list,
        ((("-o", "--output"), {"choices": ("table", "json"), "default": "table", "help": "output format"}),),
    ),
    (
        "add",
        "Opt numbers out",
        opt_outs_add,
        (_NUMBERS, _REGION, _SOURCE, _BY, (("--word",), {"help": "what the person said, e.g. STOP"})),
    ),
    (
        "remove",
        "Opt numbers back in (only at the person's request)",
        opt_outs_remove,
        (_NUMBERS, _REGION, _SOURCE, _BY),
    ),
    (
        "import",
        "Opt out every number of a CSV file (number[,at,source,word,by])",
        opt_outs_import,
        ((("file",), {"metavar": "FILE", "help": "a CSV file, or one number a line"}), _REGION, _SOURCE, _BY),
    ),
    (
        "export",
        "Write the register as CSV to FILE, or to standard output",
        opt_outs_export,
        ((("file",), {"metavar": "FILE", "nargs": "?", "default": None, "help": "where to write (default: stdout)"}),),
    ),
)
_HELP = "See and correct the SMS opt-out register (numbers that replied STOP)"


def get_cli_commands() -> list[Any]:
    """``airflow sms opt-outs ...``: the provider's commands, for Airflow 3.3's ``cli`` section."""
    from airflow.cli.cli_config import ActionCommand, Arg, GroupCommand

    actions = [
        ActionCommand(
            name=name,
            help=text,
            func=_in_airflow(handler),
            args=tuple(Arg(flags, **options) for flags, options in args),
        )
        for name, text, handler, args in COMMANDS
    ]
    opt_outs = GroupCommand(name="opt-outs", help=_HELP, subcommands=actions)
    return [GroupCommand(name="sms", help="SMS provider commands", subcommands=[opt_outs])]


def _in_airflow(handler: Handler) -> Handler:
    """A handler as Airflow's CLI runs it: with the providers' configuration loaded, as its own commands."""

    def command(args: argparse.Namespace) -> None:
        from airflow.utils.providers_configuration_loader import providers_configuration_loaded

        providers_configuration_loaded(handler)(args)

    command.__name__ = handler.__name__
    command.__doc__ = handler.__doc__
    return command


def parser() -> argparse.ArgumentParser:
    """The console script's parser: ``airflow-sms opt-outs ...``."""
    top = argparse.ArgumentParser(prog="airflow-sms", description="airflow-provider-sms commands")
    groups = top.add_subparsers(dest="group", metavar="COMMAND", required=True)
    opt_outs = groups.add_parser("opt-outs", help=_HELP, description=_HELP)
    actions = opt_outs.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, text, handler, args in COMMANDS:
        action = actions.add_parser(name, help=text, description=text)
        for flags, options in args:
            action.add_argument(*flags, **options)
        action.set_defaults(func=handler)
    return top


def main(argv: Sequence[str] | None = None) -> None:
    """``airflow-sms``: the same commands where ``airflow sms`` is not available (Airflow 2.11)."""
    from airflow_provider_sms.core.errors import SmsError

    args = parser().parse_args(argv)
    try:
        args.func(args)
    except SmsError as err:
        raise SystemExit(f"airflow-sms: {err}") from None


if __name__ == "__main__":
    main()
