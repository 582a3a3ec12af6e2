"""The ``phantombench`` command line: builds the typer app from the data commands defined here and the
command modules :mod:`~phantombench.cli_bench` (tasks, solvers, evaluate, submit, leaderboard) and
:mod:`~phantombench.cli_papers` (reproduce). Nothing imports this module but the ``phantombench`` script."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from phantombench import cli_bench, cli_io, cli_papers
from phantombench.cli_common import CliError, err, handle_errors, out, parse_sets, progress

app = typer.Typer(
    name="phantombench",
    help="Generate FEM phantoms as versioned datasets (brain-slice elastography, liver MRE, EIT), "
         "inspect, verify, show and export them.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
)


@app.command()
@handle_errors
def generate(
    generator: Annotated[str, typer.Argument(help="Generator: brain-slice, eit or liver-mre (see `presets`).")],
    preset: Annotated[str, typer.Option("--preset", "-p", help="Named configuration of the generator.")],
    n: Annotated[int, typer.Option("--n", help="Number of samples.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Dataset folder to create (or to finish, if a run "
                                                        "into it was interrupted).")],
    seed: Annotated[int, typer.Option("--seed", help="Dataset seed; sample i uses the i-th spawned stream.")] = 0,
    workers: Annotated[int | None, typer.Option(
        "--workers", help="Local dask worker processes (default: one per core, at most n); 0 = in this process.")] = None,
    scheduler: Annotated[str | None, typer.Option(
        "--scheduler", help="Address of a running dask scheduler (tcp://host:8786); workers must share the "
                            "file system.")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Override a config field, KEY=VALUE (JSON values), repeatable.")] = None,
    split: Annotated[str | None, typer.Option(
        "--split", help="Sample count per split in index order, e.g. train=16,val=2,test=50 (must add up to "
                        "--n); default: the generator's rule (80/10/10 for most).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Generate a dataset: FEM solves per sample, rasterised, written atomically (kill-safe, resumable)."""
    from phantombench import runner

    if workers is not None and scheduler is not None:
        raise CliError("give either --workers or --scheduler, not both")
    if workers is not None and workers < 0:
        raise CliError(f"--workers must be >= 0 (got {workers})")
    overrides = parse_sets(set_)
    splits = runner.parse_split_counts(split) if split is not None else None
    runner.resolve(generator, preset, overrides, n, seed, splits)  # validate before any progress UI
    runner.check_out(out_dir)
    runner.check_scheduler(scheduler)
    if quiet:
        manifest = runner.generate(generator, preset, n, out_dir, seed, overrides, workers, scheduler,
                                   splits=splits)
    else:
        with progress() as prog:
            task = prog.add_task(f"{generator}/{preset}", total=n)
            manifest = runner.generate(generator, preset, n, out_dir, seed, overrides, workers, scheduler,
                                       progress=lambda done, total: prog.update(task, completed=done),
                                       splits=splits)
    wall = manifest["provenance"].get("generation_wall_seconds")
    out.print(f"[green]done[/] {out_dir}  ({manifest['n']} samples, content {manifest['content_hash'][:12]}"
              + (f", {wall:.1f} s" if wall is not None else "") + ")")


@app.command()
@handle_errors
def info(path: Annotated[Path, typer.Argument(help="Dataset folder.")],
         as_json: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON.")] = False) -> None:
    """Summarise a dataset: generator, preset, splits, schema, provenance."""
    from phantombench import open_dataset

    ds = open_dataset(path)
    m = ds.manifest
    if as_json:
        sys.stdout.write(json.dumps(m, indent=2) + "\n")
        return
    out.print(f"[bold]{m['name']}[/] v{m['version']}  seed {m['seed']}  n {m['n']}  "
              f"splits {m['counts']}")
    out.print(f"content sha256 {m['content_hash']}")
    prov = m["provenance"]
    out.print(f"created {prov['created']}  commit {prov.get('git_commit')}  "
              f"dolfinx {prov['packages'].get('dolfinx-solver-real')}  gmsh {prov['packages'].get('gmsh')}")
    t = Table("field", "shape", "dtype", "unit", "description", box=None, pad_edge=False)
    for name, s in m["schema"].items():
        t.add_row(name, " x ".join(map(str, s["shape"])) or "()", s["dtype"], s["unit"], s["description"])
    out.print(t)
    attrs = m["samples"][ds.ids[0]]["attrs"]
    if attrs:
        out.print("sample 000000 attributes: " + json.dumps(attrs, default=str)[:800])


@app.command()
@handle_errors
def verify(path: Annotated[Path, typer.Argument(help="Dataset folder.")],
           regenerate: Annotated[int, typer.Option(
               "--regenerate", help="Also regenerate this many samples (spread over the dataset) and compare "
                                    "them with the stored arrays within the manifest's regen_rtol.")] = 0) -> None:
    """Check every file of the dataset (manifest seal, plan, card, zarr metadata, chunks, sha256 of every array,
    sample counts, content hash, fingerprint); exit 1 naming each damaged file."""
    from phantombench import open_dataset, runner
    from phantombench.verify import verify_dataset

    if regenerate < 0:
        raise CliError("--regenerate must be >= 0")
    problems, summary = verify_dataset(path)
    if problems and not summary:   # the manifest itself is unusable: nothing more to check
        for p in problems:
            err.print(f"[red]corrupt[/] {p}", highlight=False)
        err.print(f"[bold red]error:[/] {len(problems)} problem(s) in {path}")
        raise typer.Exit(1)
    ds = open_dataset(path)
    n_arrays = summary["arrays"]
    if regenerate < 0:
        raise CliError("--regenerate must be >= 0")
    if regenerate:
        idx = sorted({int(round(x)) for x in
                      __import__("numpy").linspace(0, len(ds) - 1, min(regenerate, len(ds)))})
        with progress() as prog:
            task = prog.add_task("regenerating", total=len(idx))
            for i in idx:
                problems += runner.regenerate_and_compare(ds, [i])
                prog.advance(task)
    for p in problems:
        err.print(f"[red]corrupt[/] {p}", highlight=False)
    if problems:
        err.print(f"[bold red]error:[/] {len(problems)} problem(s) in {path}")
        raise typer.Exit(1)
    msg = (f"[green]ok[/] {n_arrays} arrays in {len(ds)} samples match their sha256; "
           f"{summary['files']} files, manifest seal, plan and fingerprint check")
    if regenerate:
        msg += f"; {len(idx)} regenerated sample(s) agree within rtol {ds.manifest['regen_rtol']:g}"
    out.print(msg)


@app.command()
@handle_errors
def show(path: Annotated[Path, typer.Argument(help="Dataset folder.")],
         sample: Annotated[int, typer.Option("--sample", "-i", help="Sample index.")] = 0,
         out_file: Annotated[Path, typer.Option("--out", "-o", help="Figure file (.png, .pdf, .svg).")] = Path(
             "sample.png"),
         fields: Annotated[str | None, typer.Option(help="Comma-separated grid fields (default: all).")] = None,
         ) -> None:
    """Plot a sample's grid fields and its FE mesh into one figure."""
    from phantombench import open_dataset
    from phantombench.show import plot_sample

    ds = open_dataset(path)
    names = [f.strip() for f in fields.split(",")] if fields else None
    plot_sample(ds, sample, out_file, names)
    out.print(f"wrote {out_file}")


@app.command()
@handle_errors
def export(path: Annotated[Path, typer.Argument(help="Dataset folder.")],
           sample: Annotated[int, typer.Option("--sample", "-i", help="Sample index.")] = 0,
           fmt: Annotated[str, typer.Option("--format", "-f", help="vtu or xdmf.")] = "vtu",
           out_file: Annotated[Path | None, typer.Option("--out", "-o", help="Output file (default "
                                                          "sample-<i>.<format>).")] = None) -> None:
    """Export a sample's FE mesh with its nodal and cell fields for ParaView (meshio)."""
    from phantombench import open_dataset
    from phantombench.export import export_sample

    if fmt not in ("vtu", "xdmf"):
        raise CliError(f"--format must be vtu or xdmf (got {fmt!r})")
    ds = open_dataset(path)
    target = out_file or Path(f"sample-{sample:06d}.{fmt}")
    export_sample(ds, sample, target, fmt)
    out.print(f"wrote {target}")


def _version(value: bool) -> None:
    if value:
        from phantombench import __version__

        out.print(f"phantombench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Print the version and exit.")] = False) -> None:
    """Generate FEM phantoms as versioned datasets, evaluate inverse solvers on them, render the board."""


def _short(v) -> str:
    text = json.dumps(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _preset_table(gen) -> Table:
    defaults = gen.Config().model_dump(mode="json")
    t = Table(title=f"{gen.name} v{gen.version}: presets (settings that differ from the defaults)",
              title_justify="left", show_lines=False)
    t.add_column("preset", style="cyan", no_wrap=True)
    t.add_column("settings")
    for p in gen.presets:
        cfg = gen.config(p).model_dump(mode="json")
        diff = {k: v for k, v in cfg.items() if defaults.get(k) != v}
        t.add_row(p, ", ".join(f"{k}={_short(v)}" for k, v in diff.items()) or "(defaults)")
    return t


def _field_table(gen) -> Table:
    t = Table(title=f"{gen.name}: configuration fields (--set KEY=VALUE)", title_justify="left")
    for col in ("field", "default", "description"):
        t.add_column(col, no_wrap=col == "field")
    defaults = gen.Config().model_dump(mode="json")
    for name, f in gen.Config.model_fields.items():
        t.add_row(name, _short(defaults.get(name)), f.description or "")
    return t


@app.command()
@handle_errors
def presets(generator: Annotated[str | None, typer.Argument(help="Generator name (default: all).")] = None,
            fields: Annotated[bool, typer.Option("--fields", help="Also list every configuration field with "
                                                              "its default and description.")] = False,
            as_json: Annotated[bool, typer.Option("--json", help="The resolved configuration of every preset "
                                                                 "as JSON.")] = False) -> None:
    """List generators and their presets (what each preset changes); --fields explains every setting."""
    from phantombench.registry import generator_names, get_generator

    for name in [generator] if generator else generator_names():
        try:
            gen = get_generator(name)
        except ImportError as e:
            out.print(f"[bold]{name}[/]: not available ({e})")
            continue
        if as_json:
            out.print_json(json.dumps({p: gen.config(p).model_dump(mode="json") for p in gen.presets}))
            continue
        out.print(_preset_table(gen))
        if fields:
            out.print(_field_table(gen))


# the other command modules add theirs (they import cli_common, never this module)
cli_bench.register(app)
cli_papers.register(app)
cli_io.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
