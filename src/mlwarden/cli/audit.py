"""``mlwarden audit``: query the record with filters, follow it, export it for a SIEM.

Reading the record needs workspace access only (as ``ledger verify``); whoever runs the
command is the OS account. Everything printed comes from entry texts, and text that a
caller chose (principals, subjects) is made inert for the terminal and for spreadsheets.
"""

from __future__ import annotations

import csv
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer

from mlwarden.audit.export import ExportFormat, export_entries
from mlwarden.audit.filters import parse_filter
from mlwarden.audit.query import AuditRow, follow, query_page
from mlwarden.cli.context import state
from mlwarden.errors import InvalidInput

app = typer.Typer(help="Query, follow and export the decision record.", no_args_is_help=True)

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_TABLE = (("index", 8), ("time", 27), ("kind", 26), ("principal", 28), ("subject", 40))


def _inert(text: str) -> str:
    """``text`` with control characters (terminal escapes, newlines) shown as ``?``."""
    return "".join(c if c.isprintable() else "?" for c in text)


def _csv_cell(value: Any) -> str:
    """A CSV cell that a spreadsheet will not run as a formula."""
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return "'" + text if text.startswith(_FORMULA_START) else text


class _Printer:
    """Prints rows as a table, JSON lines or CSV, one at a time (so ``--follow`` streams)."""

    def __init__(self, out: TextIO, mode: str) -> None:
        self.out = out
        self.mode = mode
        self.count = 0
        self._csv = csv.writer(out, lineterminator="\n") if mode == "csv" else None

    def header(self) -> None:
        if self._csv is not None:
            self._csv.writerow(["index", "time", "kind", "principal", "subject", "body"])
        elif self.mode == "table":
            self.out.write("  ".join(name.upper().ljust(w) for name, w in _TABLE).rstrip() + "\n")

    def row(self, row: AuditRow) -> None:
        self.count += 1
        if self._csv is not None:
            cells = (row.index, row.time, row.kind, row.principal, row.subject, row.body)
            self._csv.writerow([_csv_cell(c) if not isinstance(c, int) else c for c in cells])
        elif self.mode == "json":
            self.out.write(json.dumps(row.to_json(), separators=(",", ":")) + "\n")
        else:
            shown = row.to_json()
            columns = []
            for name, width in _TABLE:
                text = _inert(str(shown[name]))
                columns.append((text if len(text) <= width else text[: width - 1] + "…").ljust(width))
            self.out.write("  ".join(columns).rstrip() + "\n")
        self.out.flush()


def _stop_on_signals() -> threading.Event:
    """An event set by SIGTERM/SIGINT, so ``--follow`` ends cleanly (exit 0) between polls."""
    stop = threading.Event()

    def handler(_signum: int, _frame: object) -> None:
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)
    return stop


@app.command("query")
def query(
    ctx: typer.Context,
    kind: Annotated[
        list[str] | None, typer.Option("--kind", help="Entry kind (repeat, or comma-separate, for several).")
    ] = None,
    principal: Annotated[str | None, typer.Option("--principal", help="Who acted (token:…, spiffe://…).")] = None,
    subject: Annotated[str | None, typer.Option("--subject", help="Subject prefix, e.g. model:bc.")] = None,
    model: Annotated[str | None, typer.Option("--model", help="A model name, or name:version.")] = None,
    decision: Annotated[
        str | None, typer.Option("--decision", help="A decision id: its prediction and feedback.")
    ] = None,
    since: Annotated[str | None, typer.Option("--since", help="ISO time, or that long ago: 30m, 1h, 7d.")] = None,
    until: Annotated[str | None, typer.Option("--until", help="ISO time or 1h (entries before it).")] = None,
    since_index: Annotated[int | None, typer.Option("--since-index", help="Start at this ledger index.")] = None,
    status: Annotated[int | None, typer.Option("--status", help="HTTP status of rejections (e.g. 401).")] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="At most this many entries (default 100).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV with a header row.")] = False,
    keep_following: Annotated[
        bool, typer.Option("--follow", help="Keep printing new entries (like tail -f) until interrupted.")
    ] = False,
) -> None:
    """Entries matching every filter, oldest first; the table shows index, time, kind, principal, subject."""
    if as_json and as_csv:
        raise InvalidInput("choose one of --json and --csv")
    flt = parse_filter(kinds=kind, principal=principal, subject=subject, model=model, decision=decision,
                       since=since, until=until, since_index=since_index, status=status, limit=limit)  # fmt: skip
    printer = _Printer(sys.stdout, "json" if as_json else "csv" if as_csv else "table")
    ws = state(ctx).open(check=False)
    try:
        printer.header()
        if keep_following:
            stop = _stop_on_signals()
            for row in follow(ws.engine, flt, stop.wait):
                printer.row(row)
            return
        page = query_page(ws.engine, flt)
        for row in page.rows:
            printer.row(row)
    finally:
        ws.close()
    if page.next_since_index is not None:
        typer.echo(f"more entries may match: add --since-index {page.next_since_index}", err=True)
    elif printer.count == 0 and printer.mode == "table":
        typer.echo("no entries match", err=True)


@app.command("export")
def export(
    ctx: typer.Context,
    fmt: Annotated[ExportFormat, typer.Option("--format", help="ocsf, ecs or jsonl.", case_sensitive=False)],
    since_index: Annotated[int, typer.Option("--since-index", min=0, help="Start at this ledger index.")] = 0,
    keep_following: Annotated[
        bool, typer.Option("--follow", help="Keep writing new entries until interrupted.")
    ] = False,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write to this file (appended), not standard output.")
    ] = None,
) -> None:
    """Every entry from --since-index on, one JSON object per line, in a SIEM's format."""
    ws = state(ctx).open(check=False)
    try:
        stop = _stop_on_signals() if keep_following else None
        wait = stop.wait if stop is not None else None
        if out is None:
            written = export_entries(ws.engine, sys.stdout, fmt, since_index=since_index, wait=wait)
        else:
            try:
                handle = out.open("a", encoding="utf-8")
            except OSError as exc:
                raise InvalidInput(f"cannot write {out}: {exc.strerror}") from exc
            with handle:
                written = export_entries(ws.engine, handle, fmt, since_index=since_index, wait=wait)
    finally:
        ws.close()
    if out is not None:
        typer.echo(f"exported {written} entries to {out} as {fmt.value}", err=True)
