"""``phantombench reproduce <paper>``: rerun a paper's table under its protocol, scaled by a budget.

The papers live in :mod:`phantombench.papers` (one module and one ``PAPER`` object each); this module only parses
the options and hands them to the paper's ``run``. :func:`register` adds the command to the app.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from phantombench.cli_common import CliError, err, handle_errors, out


@handle_errors
def reproduce(
    paper: Annotated[str, typer.Argument(help="Paper to reproduce: elunet (P1), dime (P2), cnn-pinn-eit (P3).")],
    budget: Annotated[str, typer.Option("--budget", help="smoke (minutes, CI) or paper (the paper's protocol); "
                                        "cnn-pinn-eit also has medium (10x the smoke training data).")] = "smoke",
    repeats: Annotated[int | None, typer.Option("--repeats", help="Runs per model and case (seeds 0..N-1); "
                                                                  "default: the budget's.")] = None,
    data_root: Annotated[Path, typer.Option("--data", help="Root of the datasets (made if missing).")
                         ] = Path("data"),
    out_dir: Annotated[Path, typer.Option("--out", help="Where the report and figures go.")
                       ] = Path("leaderboard/papers"),
    seconds: Annotated[float | None, typer.Option("--seconds", help="Override the training seconds per model "
                                                                    "per case.")] = None,
    width: Annotated[int | None, typer.Option("--width", help="Override the El-UNet base width.")] = None,
    device: Annotated[str | None, typer.Option("--device", help="auto (default), cpu or cuda.")] = None,
    threads: Annotated[int | None, typer.Option("--threads", help="torch CPU threads (0: torch's default); "
                                                                  "default: the budget's.")] = None,
    clock: Annotated[str | None, typer.Option("--clock", help="wall or cpu (process CPU seconds); default: the "
                                                              "budget's.")] = None,
) -> None:
    """Reproduce a paper's table: make the datasets, run its models under its protocol, write the report."""
    from phantombench.papers import get_paper

    try:
        p = get_paper(paper)
    except ValueError as e:
        raise CliError(str(e)) from None
    p.check_budget(budget)
    if repeats is not None and repeats < 1:
        raise CliError("--repeats must be at least 1")
    if clock not in (None, "wall", "cpu"):
        raise CliError(f"--clock must be wall or cpu (got {clock!r})")
    path = p.run(budget=budget, repeats=repeats, data_root=data_root, out_dir=out_dir, seconds=seconds, width=width,
                 device=device, threads=threads, clock=clock, log=lambda msg: err.print(msg, highlight=False))
    out.print(f"wrote {path}")


def register(app: typer.Typer) -> None:
    """Add ``reproduce`` to ``app``."""
    app.command("reproduce")(reproduce)
