"""The ``moelaw`` command-line program: a thin layer over the Python API.

    moelaw sweep SPEC            run a sweep on Ray (cluster.sweep.run_sweep)
    moelaw train ...             train one configuration (cluster.runner.execute)
    moelaw discover              fit the reference law and discover one (discover.pipeline)
    moelaw fit                   fit one law (discover.fit.fit_law)
    moelaw compare               laws x metrics on one dataset and split (discover.compare)
    moelaw export                a discovered law as sympy, LaTeX, JSON, numpy (discover.export)
    moelaw report                print a saved discovery; --html OUT_DIR draws a page of plots
    moelaw data                  import public data into a store; summarise a store

Each subcommand imports only what it needs, so ``moelaw discover`` runs without torch or Ray.
Errors a user can fix end the program with one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import select
import sys
from pathlib import Path

from results.errors import InputError

EXIT_USER_ERROR = 2
# A reader that stops early (``moelaw data show | head``) closes the pipe. Tools killed by
# SIGPIPE exit with 128 + 13 in the shell's eyes; reporting the same status tells a script that
# the output was cut short, exactly as it would for ``cat`` in that place.
EXIT_BROKEN_PIPE = 141


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def _where(items: list[str], flag="--where", example="extra_step=249000") -> dict[str, str]:
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise InputError(f"{flag} {item!r} is not KEY=VALUE; write e.g. {flag} {example}")
        key, value = key.strip(), value.strip()
        if key in pairs:
            raise InputError(
                f"{flag} gives {key!r} twice ({pairs[key]!r} and {value!r}); give each key once"
            )
        pairs[key] = value
    return pairs


def _ints(text: str, flag: str) -> list[int]:
    try:
        values = [int(x) for x in _names(text)]
    except ValueError:
        raise InputError(f"{flag} {text!r} must be integers, e.g. {flag} 0,1,2") from None
    if not values:
        raise InputError(f"{flag} is empty; give at least one integer, e.g. {flag} 0")
    return values


def _names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


# ----------------------------------------------------------------------------------------------
# sweep


def cmd_sweep(args: argparse.Namespace) -> int:
    from cluster.spec import describe, load_spec, plan
    from cluster.sweep import pending_runs, run_sweep
    from results.store import Store

    spec = load_spec(args.spec)
    planned = plan(spec)  # refuse a bad spec before the store is created
    store_path = Path(args.store or spec.store)
    if args.dry_run:  # writes nothing, not even an empty store
        stored = Store(store_path, create=False).ids() if store_path.exists() else set()
        for p in planned:
            state = "stored" if p.run_id in stored else "todo"
            print(f"{p.run_id}  {state:6s}  seed={p.seed}  {describe(p.point)}")
        todo = sum(p.run_id not in stored for p in planned)
        print(f"{todo} of {len(planned)} runs to train into {store_path}")
        return 0
    if args.address:  # an address where no Ray answers is refused before the store is created
        from cluster.sweep import CONNECT_TIMEOUT_S, check_reachable

        check_reachable(args.address, CONNECT_TIMEOUT_S)
    store = Store(store_path, create=True)

    if spec.adaptive is not None:
        return _adaptive_sweep(spec, store, args)

    bar = _progress_bar(len(pending_runs(spec, store, planned=planned)), args.quiet)
    counts = {"running": 0, "failed": 0}

    def on_update(event, planned, record):
        if bar is None:
            return
        if event == "start":
            return
        if event == "retry":
            bar.set_postfix(failed=counts["failed"], last=f"{planned.run_id} retry", refresh=True)
            return
        counts["failed"] += event == "failed"
        bar.update(1)
        bar.set_postfix(failed=counts["failed"], last=f"{planned.run_id} {event}", refresh=True)

    summary = run_sweep(
        spec,
        store=store,
        address=args.address,
        workers=args.workers,
        max_concurrent=args.max_concurrent,
        on_update=on_update,
    )
    if bar is not None:
        bar.close()
    _print_summary(spec, summary, store)
    return 1 if summary.failed else 0


def _adaptive_sweep(spec, store, args) -> int:
    """A spec with an [adaptive] table: train what the design picks, within its FLOPs budget."""
    from cluster.adaptive import adaptive_sweep

    result = adaptive_sweep(spec, store=store, address=args.address, workers=args.workers)
    budget = spec.adaptive["budget_flops"]
    print(
        f"adaptive sweep '{spec.name}': {len(result['runs'])} runs in the design "
        f"({result['trained']} trained now), {result['flops']:.3g} of {budget:.3g} FLOPs; "
        f"store: {store.path}"
    )
    return 0


def _print_summary(spec, summary, store) -> None:
    """The closing summary: done, failed with reasons (by class), skipped, retries."""
    print(
        f"sweep '{spec.name}': {summary.planned} planned, {summary.skipped} already stored, "
        f"{summary.done} trained, {len(summary.failed)} failed, {summary.retried} retried "
        f"({summary.wall_time_s:.0f} s); store: {store.path}"
    )
    classes: dict[str, int] = {}
    for error in summary.failed.values():
        kind = error.split("]")[0].lstrip("[") if error.startswith("[") else "error"
        classes[kind] = classes.get(kind, 0) + 1
    if classes:
        print("  failures: " + ", ".join(f"{n} {kind}" for kind, n in sorted(classes.items())))
    for run_id, error in summary.failed.items():
        print(f"  failed {run_id}: {error}")


def _progress_bar(total: int, quiet: bool):
    if quiet or total == 0:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="run", desc="training", file=sys.stderr)


# ----------------------------------------------------------------------------------------------
# train


def cmd_train(args: argparse.Namespace) -> int:
    from cluster.runner import execute
    from cluster.spec import parse_spec, plan
    from results.store import Store

    missing = [f for f in args.data if not Path(f).is_file()]
    if missing:
        raise InputError(f"--data file(s) {missing} do not exist; pass text files to train on")
    point = {k: v for k, v in vars(args).items() if k in _TRAIN_POINT_KEYS and v is not None}
    doc = {
        "name": args.source,
        "seeds": [args.seed],
        "data": {"files": [str(Path(f).resolve()) for f in args.data]},
        "defaults": point,
    }
    spec = parse_spec(doc, base_dir=Path.cwd())
    (planned,) = plan(spec)
    from trainer.train import torch_device

    torch_device(args.device)  # a device this machine lacks is refused before the store is touched
    store = Store(args.store, create=True) if args.store else None
    if store is not None and planned.run_id in store.ids() and not args.force:
        print(f"run {planned.run_id} is already in {store.path}; pass --force to train it again")
        return 0

    record = execute(
        planned.run_config.to_dict(),
        planned.run_id,
        args.source,
        planned.achieved,
        device=args.device,
    )
    if store is not None:
        store.write(record)
    achieved = ", ".join(f"{k}={getattr(record, k):.4g}" for k in ("N", "Na", "D", "G", "S", "E"))
    if record.status != "ok":
        print(f"run {record.run_id} failed: {record.error.splitlines()[0]}", file=sys.stderr)
        return 1
    print(f"run {record.run_id}: {achieved}")
    print(f"validation loss {record.loss:.4f} nats/byte in {record.wall_time_s:.1f} s")
    return 0


_TRAIN_POINT_KEYS = (
    "N",
    "Na",
    "Na_ratio",
    "D",
    "G",
    "S",
    "d_model",
    "n_layers",
    "n_heads",
    "seq_len",
    "batch_size",
    "lr",
)


# ----------------------------------------------------------------------------------------------
# discover, fit, compare, export, report


def _data_options(args: argparse.Namespace) -> dict:
    """Keyword arguments shared by the discover, fit and compare jobs."""
    return dict(
        source=args.data,
        target=args.target,
        holdout_factor=args.holdout_factor,
        holdout_quantile=args.holdout_quantile,
        holdout_threshold=args.holdout_above,
        where=_where(args.where),
        columns=_where(args.use, "--use", "N=Na"),
    )


def _print_outcome(outcome, as_json: bool) -> int:
    print(json.dumps(outcome.to_json(), indent=2) if as_json else outcome.format())
    return 0


def _output_folder(path: str | None, option: str) -> None:
    """Refuse an output folder that cannot be written, before any work is done.

    Nothing is created here (a job that fails later leaves no empty folder behind), so the test
    is on the nearest folder that exists: it must be a folder, on a file system mounted for
    writing, and writable by this user. A folder that grants write permission to no one (such
    as /proc, where even root cannot create anything) is refused too.
    """
    if path is None:
        return
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{option} {folder} is a file, not a folder; choose a folder to write to")
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(
            f"{option} {folder} cannot be created: {existing} is a file; choose a writable folder"
        )
    reason = _unwritable(existing)
    if reason:
        verb = "cannot be written" if existing == folder else "cannot be created"
        raise InputError(
            f"{option} {folder} {verb}: {existing} {reason}; choose a folder you can write to, "
            f"e.g. {option} out/{folder.name or 'result'}"
        )


def _unwritable(folder: Path) -> str | None:
    """Why nothing can be created in the existing ``folder``, or None if something can."""
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return "is on a read-only file system"
    except (AttributeError, OSError):  # no statvfs on this platform: rely on the checks below
        pass
    if not os.access(folder, os.W_OK | os.X_OK):
        return "is not writable by this user"
    if not folder.stat().st_mode & 0o222:
        return "grants write permission to no one"
    return None


def cmd_discover(args: argparse.Namespace) -> int:
    from discover.workflow import run_discover

    _output_folder(args.out, "--out")
    _check_time_limit(args.time_limit)
    outcome = run_discover(
        inputs=_names(args.inputs) if args.inputs else None,
        reference=args.law,
        max_constants=args.max_constants,
        seeds=_ints(args.seeds, "--seeds"),
        time_limit=args.time_limit,
        out_dir=args.out,
        engines=_names(args.engines),
        n_jobs=args.jobs,
        **_data_options(args),
    )
    _print_outcome(outcome, args.json)
    if not args.json:
        print(f"\nsaved: {Path(args.out) / 'discovery.json'} and the chosen law in {args.out}/law/")
    return 0


def _check_time_limit(seconds: float | None) -> None:
    if seconds is not None and not seconds > 0:
        raise InputError(f"--time-limit must be a positive number of seconds, got {seconds}")


def cmd_fit(args: argparse.Namespace) -> int:
    from discover.workflow import run_fit

    _output_folder(args.out, "--out")
    outcome = run_fit(
        law=args.law,
        formula=args.formula,
        inputs=_names(args.inputs) if args.inputs else None,
        bounds=_where(args.bounds, "--bounds", "A=1:1e6:log"),
        out_dir=args.out,
        bootstrap=args.bootstrap,
        **_fit_options(args),
        **_data_options(args),
    )
    return _print_outcome(outcome, args.json)


def _fit_options(args: argparse.Namespace) -> dict:
    """Objective options shared by fit and compare."""
    return dict(loss=args.loss, delta=args.delta, residual=args.residual)


def cmd_compare(args: argparse.Namespace) -> int:
    from discover.workflow import run_compare

    outcome = run_compare(laws=_names(args.laws), **_fit_options(args), **_data_options(args))
    return _print_outcome(outcome, args.json)


def cmd_export(args: argparse.Namespace) -> int:
    from discover.workflow import export_saved

    paths = export_saved(args.result, args.out)
    for kind, path in paths.items():
        print(f"{kind:8s} {path}")
    return 0


DEFAULT_RESULT = "out/discover/discovery.json"


def cmd_report(args: argparse.Namespace) -> int:
    if args.html is None:
        from discover.workflow import load_outcome

        if args.data is not None:
            raise InputError("--data is read only with --html OUT_DIR; add --html to draw a page")
        return _print_outcome(load_outcome(args.result or DEFAULT_RESULT), args.json)

    from discover.report import report_from_store

    _output_folder(args.html, "--html")
    _check_time_limit(args.time_limit)
    paths = report_from_store(
        args.html,
        source=args.data,
        result=args.result,
        discover=not args.no_discover,
        time_limit=args.time_limit,
        n_boot=args.bootstrap,
    )
    print(f"page: {paths.pop('page')}")
    for path in paths.values():
        print(f"plot: {path}")
    return 0


# ----------------------------------------------------------------------------------------------
# data


def cmd_data(args: argparse.Namespace) -> int:
    if args.data_command == "import-clark":
        from results.clark import import_clark2022

        written = import_clark2022(args.path, args.store, allow_mixed=args.allow_mixed)
        print(f"imported {written} new runs from {args.path} into {args.store}")
        return 0

    from discover.data import load_table
    from discover.workflow import summarize

    table = load_table(args.source)
    print(summarize(table, _statuses(args.source, len(table))))
    return 0


def _statuses(source, n_ok: int) -> dict[str, int] | None:
    """Runs per status when ``source`` is a results store (the bundled one when None): the
    ``n_ok`` runs read, and the failed ones (every stored run id, listed without reading a file,
    less those)."""
    import results
    from results.store import MARKER_NAME, Store

    path = Path(results.bundled_store_path() if source is None else source)
    if not (path / MARKER_NAME).is_file():
        return None
    return {"ok": n_ok, "failed": len(Store(path, create=False).ids(status=None)) - n_ok}


# ----------------------------------------------------------------------------------------------


def _add_split_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        default=None,
        help="store folder, .parquet or .csv file (default: the bundled study)",
    )
    p.add_argument("--target", default="loss", help="column to predict (default: loss)")
    p.add_argument(
        "--holdout-factor",
        default="N",
        help="hold out the runs with the largest values of this column (default: N)",
    )
    p.add_argument(
        "--holdout-quantile",
        type=float,
        default=0.2,
        help="fraction of runs held out for extrapolation (default: 0.2)",
    )
    p.add_argument(
        "--holdout-above",
        type=float,
        default=None,
        help="hold out the runs whose --holdout-factor exceeds this value instead",
    )
    p.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="COLUMN=VALUE",
        help="keep only rows where COLUMN equals VALUE (repeatable)",
    )
    p.add_argument(
        "--use",
        action="append",
        default=[],
        metavar="SYMBOL=COLUMN",
        help="read a law's symbol from another column, e.g. --use N=Na (repeatable)",
    )


def _add_objective_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--loss",
        choices=("huber", "squared", "absolute", "asymmetric"),
        default="huber",
        help="loss of each residual (default: huber)",
    )
    p.add_argument("--delta", type=float, default=1e-3, help="Huber threshold (default: 1e-3)")
    p.add_argument(
        "--residual",
        choices=("log", "linear"),
        default="log",
        help="residual: log L - log y (default) or L - y (plain least squares with --loss squared)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="moelaw",
        description="Discover joint scaling laws for Mixture-of-Experts language models.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("sweep", help="train every configuration of a sweep spec on Ray")
    p.add_argument("spec", help="sweep spec (TOML)")
    p.add_argument("--store", help="results store (default: the spec's `store`)")
    p.add_argument("--address", help="address of an existing Ray cluster (default: a local one)")
    p.add_argument(
        "--workers", type=int, help="worker slots of the local Ray (default: one per core)"
    )
    p.add_argument(
        "--dry-run", action="store_true", help="list the runs and whether each is stored"
    )
    p.add_argument(
        "--max-concurrent",
        dest="max_concurrent",
        type=int,
        help="runs in flight at once (default: the spec's [schedule] max_concurrent, else all)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("train", help="train one MoE configuration")
    p.add_argument("--data", nargs="+", required=True, help="text files (bytes are the tokens)")
    p.add_argument("--N", type=float, required=True, help="total non-embedding parameters")
    active = p.add_mutually_exclusive_group(required=True)
    active.add_argument("--Na", type=float, help="activated non-embedding parameters")
    active.add_argument("--Na-ratio", dest="Na_ratio", type=float, help="Na / N instead of --Na")
    p.add_argument("--D", type=float, required=True, help="training tokens (bytes)")
    p.add_argument("--G", type=int, default=2, help="routed experts per token (default 2)")
    p.add_argument("--S", type=float, default=0.0, help="shared-expert ratio (default 0)")
    p.add_argument("--d-model", dest="d_model", type=int, help="model width (default 64)")
    p.add_argument("--n-layers", dest="n_layers", type=int, help="layers (default 2)")
    p.add_argument("--n-heads", dest="n_heads", type=int, help="attention heads (default 4)")
    p.add_argument("--seq-len", dest="seq_len", type=int, help="sequence length (default 128)")
    p.add_argument("--batch-size", dest="batch_size", type=int, help="sequences per step (16)")
    p.add_argument("--lr", type=float, help="peak learning rate (default 3e-3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--device",
        default="cpu",
        help="torch device to train on: cpu (default), cuda, cuda:N or mps",
    )
    p.add_argument("--store", help="store the result in this results store")
    p.add_argument("--source", default="manual", help="source name stored with the run")
    p.add_argument("--force", action="store_true", help="train even if the run is stored")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("discover", help="fit the reference law and discover a law; print both")
    _add_split_options(p)
    p.add_argument("--inputs", help="comma-separated input columns (default: factors that vary)")
    p.add_argument(
        "--law", default="moe_joint", help="reference law to compare against (default: moe_joint)"
    )
    p.add_argument(
        "--max-constants", type=int, default=8, help="most constants a law may have (default: 8)"
    )
    p.add_argument("--seeds", default="0", help="comma-separated search seeds (default 0)")
    p.add_argument(
        "--time-limit", type=float, default=60.0, help="seconds per search seed (default: 60)"
    )
    p.add_argument(
        "--engines",
        default="pyoperon,structured",
        help="comma-separated search engines: pyoperon, structured, pysr "
        "(default: pyoperon,structured)",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="engine runs in parallel on a private local Ray (127.0.0.1) (default: 1)",
    )
    p.add_argument(
        "--out",
        default="out/discover",
        help="folder for the result and its exports (default: out/discover)",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_discover)

    p = sub.add_parser("fit", help="fit one law (by name or formula) and report its metrics")
    _add_split_options(p)
    p.add_argument(
        "--law", help="name of a published law: moe_joint, chinchilla, moe_powerlaw4, ..."
    )
    p.add_argument("--formula", help="a formula such as 'L0 + A*N**(-alpha)'; parsed without eval")
    p.add_argument("--inputs", help="input columns of --formula (default: factor names it uses)")
    p.add_argument(
        "--bounds",
        action="append",
        default=[],
        metavar="NAME=LO:HI[:log]",
        help="search bounds of a constant; ':log' fits it in log space (repeatable)",
    )
    _add_objective_options(p)
    p.add_argument(
        "--bootstrap",
        type=int,
        default=0,
        metavar="N",
        help="add standard errors and 95%% intervals from N bootstrap resamples (e.g. 1000)",
    )
    p.add_argument("--out", help="folder to export the fitted law to")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("compare", help="laws x metrics on one dataset and split")
    _add_split_options(p)
    p.add_argument("--laws", default="all", help="comma-separated law names, or 'all'")
    _add_objective_options(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser(
        "export", help="write a saved law as sympy (srepr, plain), LaTeX, JSON and a numpy function"
    )
    p.add_argument(
        "result",
        nargs="?",
        default="out/discover/discovery.json",
        help="a discovery.json written by `moelaw discover`",
    )
    p.add_argument("--out", default="out/export", help="folder to write to (default: out/export)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "report", help="print a saved discovery, or draw an HTML page of plots with --html"
    )
    p.add_argument(
        "result",
        nargs="?",
        default=None,
        help=f"a discovery.json (default: {DEFAULT_RESULT}; with --html: fit and discover anew)",
    )
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--html",
        metavar="OUT_DIR",
        help="write report.html (plots embedded) and the plots as PNG files to OUT_DIR",
    )
    p.add_argument("--data", help="runs for the page: a store, .parquet or .csv (default: bundled)")
    p.add_argument(
        "--time-limit",
        type=float,
        default=10.0,
        help="seconds of the quick discovery when no result is given (default: 10)",
    )
    p.add_argument(
        "--no-discover", action="store_true", help="with --html: fit only the hand-designed law"
    )
    p.add_argument(
        "--bootstrap",
        type=int,
        default=1000,
        metavar="N",
        help="resamples of each block's G* and S* interval (default: 1000)",
    )
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("data", help="import public data; summarise a store or table")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    q = data_sub.add_parser("import-clark", help="import Clark et al. 2022 routed-model curves")
    q.add_argument("path", help="curves.csv.gz from the scaling_laws_for_routing repository")
    q.add_argument("--store", required=True, help="results store to import into")
    q.add_argument(
        "--allow-mixed",
        action="store_true",
        help="import into a store that holds runs of another study (every job then "
        "reads both unless it selects one with --where source=clark2022)",
    )
    q = data_sub.add_parser("show", help="summarise a store or table")
    q.add_argument("source", nargs="?", default=None, help="default: the bundled study")
    p.set_defaults(func=cmd_data)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``moelaw`` program; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    try:
        status = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's final flush
        return status
    except InputError as exc:
        print(f"moelaw {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"moelaw {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        if not _stdout_closed():
            raise
        return EXIT_BROKEN_PIPE


def _stdout_closed() -> bool:
    """Whether standard output's reader has gone; if so, point it at the null device.

    Output still buffered would otherwise raise BrokenPipeError again when the interpreter
    flushes it on exit. A pipe or socket whose reader has gone reports an error or hang-up to
    ``poll``; a stream without a file descriptor is asked by flushing it.
    """
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError, AttributeError):
        fd = None
    if fd is not None and hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        closed = any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    else:
        try:
            sys.stdout.flush()
            closed = False
        except BrokenPipeError:
            closed = True
    if closed and fd is not None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)
    return closed


if __name__ == "__main__":
    sys.exit(main())
