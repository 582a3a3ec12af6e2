"""Benchmark commands of the ``phantombench`` CLI: tasks, solvers, official, evaluate, submit, leaderboard.

:func:`register` adds them to the app that :mod:`phantombench.cli` builds."""

from __future__ import annotations

import os

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from phantombench.cli_common import CliError, err, handle_errors, out, parse_sets, progress


def _solver_errors(fn):
    """SolverError / TaskError are user errors too: one line, exit 2."""
    import functools

    @functools.wraps(fn)
    def wrapper(*a, **k):
        from phantombench.evaluate import EvaluationError
        from phantombench.solvers.base import SolverError
        from phantombench.tasks import TaskError

        try:
            return fn(*a, **k)
        except (SolverError, EvaluationError, TaskError) as e:
            raise CliError(str(e)) from None
    return wrapper


def _check_device(device: str | None) -> None:
    """--device accepts auto, cpu, cuda or cuda:N (whether CUDA is present is checked when the solver starts)."""
    import re

    if device is not None and not re.fullmatch(r"auto|cpu|cuda(:\d+)?", device):
        raise CliError(f"--device must be auto, cpu, cuda or cuda:N (got {device!r})")


def _metrics_table(record: dict, task) -> Table:
    t = Table("metric", "mean", "std", "median", "n", "better", box=None, pad_edge=False)
    for m in task.metrics:
        st = record["metrics"][m.name]
        f = (lambda v: "-" if v is None else f"{v:.4g}")
        t.add_row(escape(m.name + (f" [{m.unit}]" if m.unit else "")), f(st["mean"]), f(st["std"]), f(st["median"]),
                  str(st["n"]), m.direction)
    return t


@handle_errors
def tasks(name: Annotated[str | None, typer.Argument(help="Task name (default: all).")] = None,
          as_json: Annotated[bool, typer.Option("--json", help="Print the task descriptions as JSON.")] = False,
          ) -> None:
    """List the benchmark tasks: what a solver sees, what it returns, how it is scored."""
    from phantombench.tasks import TASKS, get_task

    ts = [get_task(name)] if name else list(TASKS.values())
    if as_json:
        sys.stdout.write(json.dumps([t.describe() for t in ts], indent=2) + "\n")
        return
    for t in ts:
        out.print(f"[bold]{t.name}[/] v{t.version}  (datasets of {', '.join(t.generators)}; main metric "
                  f"{t.main_metric}; at most {t.max_time_budget_s:g} s per case)")
        out.print(f"  {t.description}", highlight=False)
        out.print(escape("  sees:    " + ", ".join(f"{o.name} [{o.unit}]" if o.unit else o.name
                                                  for o in t.observations)), soft_wrap=True)
        out.print(escape("  returns: " + ", ".join(f"{p.name} [{p.unit}]" for p in t.predictions) + "  (each (H, W))"))
        out.print("  metrics: " + ", ".join(f"{m.name} {'↓' if m.direction == 'lower' else '↑'}" for m in t.metrics),
                  soft_wrap=True)


@handle_errors
def solvers() -> None:
    """List the solvers found (built in and installed entry points)."""
    from phantombench.solvers.base import SolverError, load_solver_class, solver_names

    t = Table("name", "version", "tasks", "budget s/case", "fit", box=None, pad_edge=False)
    for n in solver_names():
        try:
            c = load_solver_class(n)
        except (SolverError, ImportError) as e:
            t.add_row(n, "-", f"[red]not loadable: {e}[/]", "", "")
            continue
        t.add_row(n, c.version, ", ".join(c.tasks) or "any", f"{c.time_budget_s:g}",
                  "yes" if c.has_fit() else "no")
    out.print(t)


@handle_errors
def official_cmd(task: Annotated[list[str] | None, typer.Option("--task", "-t", help="Only this task "
                                                                                   "(repeatable).")] = None,
                 preset: Annotated[list[str] | None, typer.Option("--preset", help="Only the official datasets "
                                                                             "of this preset (repeatable).")] = None,
                 root: Annotated[Path, typer.Option("--root", help="Data root folder.")] = Path("data"),
                 generate_: Annotated[bool, typer.Option("--generate", help="Generate missing or unfinished "
                                                                            "official datasets.")] = False,
                 workers: Annotated[int | None, typer.Option("--workers", help="Local dask workers (0: in "
                                                                               "process).")] = None,
                 pin: Annotated[bool, typer.Option("--pin", help="Maintainers: pin the fingerprints of the "
                                                                 "official datasets under ROOT as the reference "
                                                                 "every regeneration is checked against.")] = False,
                 ) -> None:
    """List the official datasets of each task (their tier and state under ROOT); --generate makes them."""
    from phantombench import official as off

    ods = [od for t in task for od in off.official(t)] if task else off.all_official()
    ods = off.with_presets(ods, preset, f"{'/'.join(task)} " if task else "")
    if pin:
        ods = [od for od in ods if od.tier == "public" or os.environ.get(off.SECRET_ENV)]
        refs = off.pin(ods, root)
        for od in ods:
            out.print(f"pinned {od.key:34s} {refs[od.key]['fingerprint']}", highlight=False)
        return
    for od in ods:
        st = off.status(od, root)
        if generate_ and st != "ok":
            with progress() as prog:
                bar = prog.add_task(od.key, total=od.n)
                off.ensure(od, root, workers=workers, progress=lambda d, t: prog.update(bar, completed=d))
            st = off.status(od, root)
        colour = "green" if st == "ok" else "yellow"
        seed = od.seed if od.tier == "public" else "secret"
        out.print(f"{od.task:18s} {od.key:34s} n={od.n:<4d} {od.tier:8s} seed={seed}  {od.folder(root)}  "
                  f"[{colour}]{st}[/]",
                  highlight=False)


@handle_errors
@_solver_errors
def evaluate(
    solver: Annotated[str, typer.Argument(help="Solver: a name (see `solvers`), an entry point, module:Class or "
                                               "path/to/file.py:Class.")],
    task: Annotated[str, typer.Option("--task", "-t", help="Task (see `tasks`).")],
    dataset: Annotated[Path, typer.Option("--dataset", "-d", help="Dataset folder.")],
    split: Annotated[str, typer.Option("--split", help="Split to evaluate on.")] = "test",
    out_dir: Annotated[Path | None, typer.Option("--out", "-o", help="Output folder (default "
                                                                     "results/<record id>).")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", help="Solver parameter KEY=VALUE (JSON values), "
                                                                    "repeatable.")] = None,
    device: Annotated[str | None, typer.Option("--device", help="auto (CUDA if present), cpu or cuda[:k].")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed handed to the solver.")] = 0,
    timeout: Annotated[float | None, typer.Option("--timeout", help="Per-case time limit in s (default: the "
                                                                    "solver's budget + 10 % + 1 s).")] = None,
    time_limit: Annotated[float | None, typer.Option("--time-limit", help="Limit for the whole run in s.")] = None,
    train_dataset: Annotated[Path | None, typer.Option("--train-dataset", help="Dataset whose train/val splits "
                                                                               "fit() gets (default: --dataset).")]
    = None,
    limit: Annotated[int | None, typer.Option("--limit", help="Evaluate only the first N cases.")] = None,
    in_process: Annotated[bool, typer.Option("--in-process", help="Run the solver in this process (no "
                                                                  "isolation; for debugging).")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Evaluate a solver on a dataset split: per-case metrics, a result record and a figure."""
    from phantombench import evaluate as ev_mod
    from phantombench.tasks import get_task

    t = get_task(task)
    params = parse_sets(param)
    _check_device(device)
    if limit is not None and limit < 1:
        raise CliError(f"--limit must be at least 1 (got {limit})")
    kw = dict(split=split, params=params, device=device, seed=seed, isolate=not in_process, timeout_s=timeout,
              time_limit_s=time_limit, train_dataset=train_dataset, limit=limit)
    if quiet or not err.is_terminal:
        ev = ev_mod.evaluate(solver, t, dataset, **kw)
    else:
        with progress() as prog:
            prog.live.transient = True  # the summary below replaces the bar
            bar = prog.add_task(f"{solver} on {dataset.name}", total=None)
            ev = ev_mod.evaluate(solver, t, dataset, **kw,
                                 progress=lambda d, n, c: prog.update(bar, completed=d, total=n))
    target = out_dir or Path("results") / ev.record["id"]
    paths = ev_mod.write_outputs(ev, t, target)
    r = ev.record
    out.print(f"[bold]{r['solver']['name']} {r['solver']['version']}[/] on {r['dataset']['name']} "
              f"({r['dataset']['split']}, {r['cases']['n']} cases; device {r['solver']['device']})")
    out.print(_metrics_table(r, t))
    tm = r["timing"]
    out.print(f"fit {tm['fit_s']:.2f} s, solve {tm['solve_s_total']:.2f} s total, harness "
              f"{(tm['harness_s_per_case'] or 0) * 1e3:.1f} ms/case, wall {tm['wall_s']:.1f} s")
    for f in r["cases"]["failures"]:
        err.print(f"[red]failed[/] case {f['case']}: {f['reason']}", highlight=False, soft_wrap=True)
    if r["cases"]["failed"]:
        err.print(f"[yellow]{r['cases']['failed']} of {r['cases']['n']} cases failed[/]")
    out.print("wrote " + ", ".join(str(p) for p in paths.values()), highlight=False, soft_wrap=True)
    if r["cases"]["failed"]:
        raise typer.Exit(1)      # the outputs are written, but a run with a failed case is not a success


@handle_errors
@_solver_errors
def submit(
    solver: Annotated[str, typer.Argument(help="path/to/file.py:Class (or a name, entry point, module:Class).")],
    task: Annotated[str, typer.Option("--task", "-t", help="Task (see `tasks`).")],
    preset: Annotated[list[str] | None, typer.Option("--preset", help="Only these official datasets (by preset; "
                                                                      "repeatable). Default: all of the task.")]
    = None,
    board: Annotated[Path, typer.Option("--board", help="Leaderboard folder.")] = Path("leaderboard"),
    data_root: Annotated[Path, typer.Option("--data", help="Root of the official datasets (made if missing).")]
    = Path("data"),
    param: Annotated[list[str] | None, typer.Option("--param", help="Solver parameter KEY=VALUE.")] = None,
    device: Annotated[str | None, typer.Option("--device", help="auto, cpu or cuda[:k].")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed handed to the solver.")] = 0,
    time_limit: Annotated[float | None, typer.Option("--time-limit", help="Limit for the whole submission in "
                                                                          "s.")] = None,
    timeout: Annotated[float | None, typer.Option("--timeout", help="Per-case limit in s (default: the "
                                                                    "solver's budget + 10 % + 1 s).")] = None,
    workers: Annotated[int | None, typer.Option("--workers", help="Workers for generating missing data.")] = None,
    sandbox: Annotated[bool, typer.Option("--sandbox", help="Require the bubblewrap sandbox (default: use it "
                                                            "when it can start, else record `sandbox: none`).")]
    = False,
    train_n: Annotated[int | None, typer.Option(
        "--train-n", help="Learned solvers: train on N phantoms generated with the public generator (90 % train, "
                          "10 % val) instead of the official train split; the record states it.")] = None,
    train_seed: Annotated[int, typer.Option(
        "--train-seed", help="Dataset seed of the generated training phantoms; must differ from every official "
                             "test seed of the generator.")] = 1,
) -> None:
    """Run the official evaluation of a solver and add it to the leaderboard -- or reject it with one line.

    The solver runs in a bubblewrap sandbox that hides the data root and the board and has no network; each
    official dataset is checked against its pinned fingerprint first. Learned solvers train on the official
    train split, or (--train-n) on phantoms generated from a seed disjoint from the test seeds."""
    from phantombench.submit import SubmitError, submit as do_submit

    params = parse_sets(param)
    _check_device(device)
    if train_n is not None and train_n < 2:
        raise CliError(f"--train-n must be at least 2 (got {train_n})")
    import contextlib

    show = err.is_terminal
    try:
        with (progress() if show else contextlib.nullcontext()) as prog:
            if prog is not None:
                prog.live.transient = True  # the verdict below replaces the bars
            bars: dict[str, int] = {}

            def cb(key, d, n):
                if prog is None:
                    return
                if key not in bars:
                    bars[key] = prog.add_task(key, total=n)
                prog.update(bars[key], completed=d, total=n)

            def gen_cb(key, d, n):
                cb(f"generating {key}", d, n)

            evs = do_submit(solver, task, board=board, data_root=data_root, presets=preset, params=params,
                            device=device, seed=seed, time_limit_s=time_limit, timeout_s=timeout, workers=workers,
                            progress=cb, dataset_progress=gen_cb, sandbox=True if sandbox else None,
                            train=None if train_n is None else (train_n, train_seed))
    except SubmitError as e:
        err.print(f"[bold red]{e}[/]", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    for ev in evs:
        r = ev.record
        mm = r["task"]["main_metric"]
        out.print(f"[green]accepted[/] {r['solver']['name']} {r['solver']['version']} on {r['dataset']['name']}: "
                  f"{mm} = {r['metrics'][mm]['mean']:.4g}", highlight=False)
    out.print(f"board updated: {board / 'README.md'}, {board / 'index.html'}")


@handle_errors
def leaderboard(
    board: Annotated[Path, typer.Option("--board", help="Leaderboard folder.")] = Path("leaderboard"),
    check: Annotated[bool, typer.Option("--check", help="Only check that README.md and index.html match the "
                                                        "records (exit 1 if not).")] = False,
    remove: Annotated[str | None, typer.Option("--remove", help="Delete the record with this id, then "
                                                                "render.")] = None,
) -> None:
    """Render leaderboard/README.md and leaderboard/index.html from the result records."""
    from phantombench import leaderboard as lb

    if check:
        stale = lb.check(board)
        if stale:
            err.print(f"[bold red]stale:[/] {', '.join(stale)} differ from the records; run `phantombench "
                      "leaderboard`")
            raise typer.Exit(1)
        out.print(f"[green]ok[/] {board} is up to date ({len(lb.load_records(board))} records)")
        return
    if remove:
        if not lb.remove_record(board, remove):
            raise CliError(f"no record {remove!r} in {board}")
    md, page = lb.render(board)
    out.print(f"rendered {md} and {page} from {len(lb.load_records(board))} records")


def register(app: typer.Typer) -> None:
    """Add the benchmark commands to ``app``."""
    app.command()(tasks)
    app.command()(solvers)
    app.command("official")(official_cmd)
    app.command()(evaluate)
    app.command()(submit)
    app.command()(leaderboard)
