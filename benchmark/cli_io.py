"""``phantombench import``: external data as a dataset of a task (:mod:`phantombench.importers`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from phantombench.cli_common import CliError, handle_errors, out, parse_sets


@handle_errors
def import_cmd(
    fmt: Annotated[str, typer.Argument(metavar="FORMAT", help="ktc2023 (task eit) or elunet (task brain-elasticity).")],
    src: Annotated[Path, typer.Argument(help="Folder holding the files (see `phantombench.importers`).")],
    task: Annotated[str, typer.Option("--task", help="Task the data are for (must match the format's).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Dataset folder to create (must not exist or be empty).")],
    option: Annotated[list[str] | None, typer.Option(
        "--option", "-o", help="Format option KEY=VALUE (JSON values), repeatable: ktc2023 level, order, truth, "
                               "truth_row0, contrast, split; elunet rows, spacing, youngs_unit, truth, split.")] = None,
) -> None:
    """Import external data (real measurements, released grids) as a dataset of a task, checking its conventions."""
    from phantombench.importers import import_dataset

    try:
        opts = parse_sets(option)
    except CliError as e:
        raise CliError(str(e).replace("--set", "--option")) from None
    ds = import_dataset(fmt, src, task, out_dir, **opts)
    m = ds.manifest
    out.print(f"[green]imported[/] {out_dir}  ({m['name']}, {m['n']} samples, splits {m['counts']}, "
              f"content {m['content_hash'][:12]})")
    card = (Path(out_dir) / "README.md").read_text()
    section = card[card.find("## Imported data"):].split("\n## ")[0]
    for line in section.splitlines():
        if line.startswith("- "):
            out.print("  " + line, highlight=False)


def register(app: typer.Typer) -> None:
    """Add the data-exchange commands to ``app``."""
    app.command("import")(import_cmd)
