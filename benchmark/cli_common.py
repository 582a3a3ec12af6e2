"""What every command module of the ``phantombench`` CLI shares: consoles, the user-error type and its handler,
``--set``/``--param`` parsing and the progress bar. Command modules import this, never :mod:`phantombench.cli`."""

from __future__ import annotations

import functools
import json
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


class CliError(Exception):
    """An error the user can act on: printed as one line, exit code 2."""


def one_line(e: BaseException) -> str:
    """The error as one line (a pydantic validation error as ``field: message; ...``)."""
    from pydantic import ValidationError

    if isinstance(e, ValidationError):
        parts = [f"{'.'.join(str(x) for x in d['loc']) or 'config'}: {d['msg']}" for d in e.errors()]
        return "invalid config: " + "; ".join(parts)
    return " ".join(str(e).split())


def handle_errors(fn):
    """User errors (bad arguments, missing files, invalid configs) -> one red line and exit code 2."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from pydantic import ValidationError

        from phantombench.store import StoreError

        try:
            return fn(*args, **kwargs)
        except (CliError, ValueError, StoreError, ValidationError, FileNotFoundError, KeyError, IndexError,
                PermissionError) as e:
            err.print(f"[bold red]error:[/] {one_line(e)}", soft_wrap=True, highlight=False)
            raise typer.Exit(2) from None
    return wrapper


def parse_sets(items: list[str] | None) -> dict[str, Any]:
    """``KEY=VALUE`` items (JSON values, else the raw string) -> dict."""
    overrides: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise CliError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            overrides[key] = json.loads(raw)
        except json.JSONDecodeError:
            overrides[key] = raw
    return overrides


def progress() -> Progress:
    """A progress bar on stderr: description, bar, done/total, elapsed, eta."""
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=err,
                    transient=False)
