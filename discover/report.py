"""One self-contained HTML page (and PNG files) showing a fitted and a discovered law on a study.

    moelaw report --html out/report                 # the bundled study: fit, quick discovery, page
    moelaw report out/discover/discovery.json --html out/report --data STORE

The page embeds every plot as a base64 PNG ``data:`` URI and loads nothing from anywhere else (its
Content-Security-Policy forbids it); the same plots are written beside it as PNG files. Every file
is written through a temporary file and renamed, the page last, so a run that fails leaves no
half-written page.

Plots (loss in nats per byte for moelaw's byte-level runs, per token for imported runs such as
Clark et al.'s, "nats" when the table does not say: :func:`loss_unit`; N and Na in
non-embedding parameters; D in training tokens; colours from the Okabe-Ito palette, safe for
colour-blind readers):

- ``predicted_vs_observed.png``: each law's prediction against the measured loss, fitting rows and
  held-out (largest) rows marked differently;
- ``residuals.png``: observed minus predicted against each factor that varies;
- ``loss_vs_G.png``, ``loss_vs_S.png``: the one-factor-at-a-time sweeps with the laws' curves at
  each block's size and budget;
- ``pareto_front.png``: the discovered candidates, constants against inner-extrapolation R²;
- ``optima.png``: per-block G* and S* (:func:`discover.marginal.block_optima`) against N and D,
  with bootstrap intervals;
- ``extrapolation.png``: prediction and error on the held-out runs.

Example::

    from discover.report import build_report
    paths = build_report(table, "out/report", time_limit=10)    # a DataFrame of runs
    paths["page"]                                               # out/report/report.html
"""

from __future__ import annotations

import base64
import html
import io
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from discover.export import write_atomic
from discover.marginal import block_optima, format_interval, oat_sweeps
from results.errors import InputError

OKABE_ITO = ("#000000", "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00",
             "#CC79A7")  # fmt: skip
"""Okabe and Ito 2008, "Color Universal Design": eight colours distinct under colour blindness."""

LAW_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7")  # blue, vermillion, green, purple
BLOCK_COLOURS = ("#E69F00", "#56B4E9", "#009E73", "#CC79A7", "#0072B2", "#D55E00", "#000000")

LABELS = {
    "loss": "loss (nats/byte)",
    "N": "N (non-embedding parameters)",
    "Na": "Na (activated non-embedding parameters)",
    "D": "D (training tokens = bytes)",
    "G": "G (routed experts per token)",
    "S": "S (shared-expert ratio)",
    "E": "E (routed experts)",
}
"""Axis labels for moelaw's own byte-level runs; :func:`labels` gives them for other data."""

#: Sources whose losses are per token (imported public data), not per byte.
TOKEN_SOURCES = ("clark2022",)


def loss_unit(table: pd.DataFrame) -> str | None:
    """``"byte"`` for moelaw's own (byte-level) runs, ``"token"`` for imported runs measured per
    token (Clark et al. 2022), ``None`` when the table does not say (a CSV without ``source``,
    or a mixture)."""
    if "source" not in table.columns or table.empty:
        return None
    token = table["source"].astype(str).isin(TOKEN_SOURCES)
    return "token" if token.all() else "byte" if not token.any() else None


def labels(unit: str | None) -> dict[str, str]:
    """Axis labels for losses per ``unit`` (``"byte"``, ``"token"`` or ``None``: unknown)."""
    out = dict(LABELS)
    if unit != "byte":
        out["loss"] = f"loss (nats/{unit})" if unit else "loss (nats)"
        out["D"] = "D (training tokens)"
    return out


LOG_AXES = {"N", "Na", "D", "E"}

PLOTS = ("predicted_vs_observed", "residuals", "loss_vs_G", "loss_vs_S", "pareto_front",
         "optima", "extrapolation")  # fmt: skip
"""Names of the plots (``<name>.png``), in page order."""

PAGE = "report.html"


# ----------------------------------------------------------------------------------------------
# Entry points


def build_report(
    outcome_or_table,
    out_dir: str | Path,
    *,
    table: pd.DataFrame | None = None,
    discover: bool = True,
    time_limit: float = 10.0,
    n_boot: int = 1000,
    seed: int = 0,
    title: str | None = None,
) -> dict[str, Path]:
    """Write the report page and its plots for an outcome, or for a table of runs.

    Parameters
    ----------
    outcome_or_table : discover.workflow.Outcome or pandas.DataFrame
        A result of :func:`~discover.workflow.run_discover` or ``run_fit`` (or one loaded with
        :func:`~discover.workflow.load_outcome`); or runs (``Store.runs()``), for which the
        hand-designed law is fitted and, with ``discover``, a law is discovered first.
    out_dir : str or Path
        Folder for ``report.html`` and the PNG files (created if missing).
    table : pandas.DataFrame, optional
        With an outcome: the runs it was computed on. Default: read from the outcome's source
        when that is a path or the bundled study.
    discover : bool, default True
        With a table: also run a quick symbolic search (else only the hand-designed law).
    time_limit : float, default 10.0
        Seconds of that search.
    n_boot : int, default 1000
        Bootstrap resamples of each block optimum.
    seed : int, default 0
        Seed of the bootstrap (and of the search).
    title : str, optional
        Page title; default names the data.

    Returns
    -------
    dict of str to Path
        ``"page"`` and one entry per plot written (see :data:`PLOTS`).
    """
    outcome, table = _outcome_and_table(outcome_or_table, table, discover, time_limit, seed)
    view = _View.of(outcome, table)
    optima = _optima_or_none(table, n_boot, seed, view.notes)
    figures = _figures(view, optima)
    images = {name: _png(fig) for name, fig in figures.items()}
    page = _page(view, optima, images, title)
    return _write(Path(out_dir), images, page)


def report_from_store(
    out_dir: str | Path,
    source=None,
    result: str | Path | None = None,
    *,
    discover: bool = True,
    time_limit: float = 10.0,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Path]:
    """The report of a store: its saved discovery ``result`` if given, else a fresh fit.

    ``source`` is a results store, ``.parquet`` or ``.csv``; default: with ``result``, the data
    the result was computed on (its recorded source), else the bundled study. Without
    ``result``, the hand-designed law is fitted and (``discover``) a law is searched for
    ``time_limit`` seconds, both holding out the largest fifth of runs by N.
    """
    from discover.data import load_table
    from discover.workflow import load_outcome, run_discover, run_fit, select_rows, use_columns

    if result is not None:
        outcome = load_outcome(result)
        # The runs the result was computed on, unless others are named
        table = load_table(source) if source is not None else _table_of(outcome)
        split = outcome.settings.get("split", {})
        table = use_columns(select_rows(table, split.get("where")), split.get("columns"))
        return build_report(outcome, out_dir, table=table, n_boot=n_boot, seed=seed)
    table = load_table(source)
    if discover:
        outcome = run_discover(source, time_limit=time_limit, seeds=(seed,))
    else:
        outcome = run_fit(source, law="moe_joint")
    return build_report(outcome, out_dir, table=table, n_boot=n_boot, seed=seed)


def _outcome_and_table(given, table, discover, time_limit, seed):
    from discover.workflow import Outcome

    if isinstance(given, pd.DataFrame):
        return _outcome_of_table(given, discover, time_limit, seed), given.reset_index(drop=True)
    if not isinstance(given, Outcome):
        raise InputError(
            f"build_report takes an Outcome or a DataFrame of runs, not {type(given).__name__}; "
            "load a saved result with discover.workflow.load_outcome(path)"
        )
    if table is None:
        table = _table_of(given)
    if not isinstance(table, pd.DataFrame):
        raise InputError(f"table= must be a DataFrame of runs, not {type(table).__name__}")
    return given, table.reset_index(drop=True)


def _outcome_of_table(table, discover, time_limit, seed):
    """Fit (and discover) on a DataFrame, through the jobs that read a file."""
    from discover.workflow import run_discover, run_fit

    with tempfile.TemporaryDirectory(prefix="moelaw-report-") as tmp:
        path = Path(tmp) / "runs.parquet"
        table.to_parquet(path)
        if discover:
            outcome = run_discover(path, time_limit=time_limit, seeds=(seed,))
        else:
            outcome = run_fit(path, law="moe_joint")
    outcome.source = f"a table of {len(table)} runs"
    return outcome


def _table_of(outcome):
    from discover.data import load_table

    if outcome.source.startswith("bundled study"):
        return load_table(None)
    if Path(outcome.source).exists():
        return load_table(outcome.source)
    raise InputError(
        f"the outcome's data {outcome.source!r} is not a path that exists here; pass the runs "
        "it was computed on as table= (or --data STORE)"
    )


def _optima_or_none(table, n_boot, seed, notes):
    try:
        return block_optima(table, n_boot=n_boot, seed=seed)
    except InputError as err:
        notes.append(f"no per-block optima: {err}")
        return None


# ----------------------------------------------------------------------------------------------
# What the plots show: the laws, their predictions, the split


@dataclass
class _View:
    """An outcome and its table, with every law rebuilt and the held-out rows marked."""

    outcome: object  # discover.workflow.Outcome
    table: pd.DataFrame
    laws: list  # (LawReport, FitResult) per law
    hold: np.ndarray  # bool per row of table: held out
    notes: list[str]
    labels: dict  # axis label per column (units of these runs)

    @classmethod
    def of(cls, outcome, table):
        from discover.workflow import _rebuild

        notes = list(outcome.notes)
        if len(table) != outcome.n_rows:
            notes.append(f"the table has {len(table)} runs; the laws were scored on "
                         f"{outcome.n_rows}")  # fmt: skip
        laws = [(report, _rebuild(report)) for report in outcome.laws]
        if not laws:
            raise InputError("the outcome holds no fitted law to report")
        factor, threshold = outcome.holdout.get("factor"), outcome.holdout.get("threshold")
        if factor in table.columns and threshold is not None and math.isfinite(threshold):
            hold = table[factor].to_numpy(float) > threshold
        else:
            hold = np.zeros(len(table), bool)
        names = labels(loss_unit(table))
        for symbol, column in outcome.settings.get("split", {}).get("columns", {}).items():
            meaning = names.get(column, "").partition(" (")[2].rstrip(")")
            names[symbol] = f"{symbol} (column {column}" + (f": {meaning})" if meaning else ")")
        return cls(outcome, table, laws, hold, notes, names)

    def predictions(self) -> list[tuple[str, np.ndarray]]:
        out = []
        for report, fit in self.laws:
            try:
                out.append((report.name, fit.predict(self.table)))
            except InputError as err:
                self.notes.append(f"{report.name} cannot predict these runs: {err}")
        return out

    @property
    def observed(self) -> np.ndarray:
        return self.table[self.outcome.target].to_numpy(float)


# ----------------------------------------------------------------------------------------------
# Figures


def _new_figure(n_rows=1, n_cols=1, width=5.2, height=4.0):
    """A figure without pyplot (no global state), Okabe-Ito colour cycle on every axes."""
    from cycler import cycler
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * n_cols, height * n_rows), layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for ax in axes.flat:
        ax.set_prop_cycle(cycler(color=LAW_COLOURS))
        ax.grid(True, alpha=0.3)
    return fig, axes


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def _figures(view: _View, optima) -> dict:
    predictions = view.predictions()
    figures = {
        "predicted_vs_observed": _predicted_vs_observed(view, predictions),
        "residuals": _residuals(view, predictions),
    }
    for var in ("G", "S"):
        figures[f"loss_vs_{var}"] = _sweep_figure(view, var)
    figures["pareto_front"] = _pareto(view.outcome.front)
    figures["optima"] = _optima_figure(optima, view)
    figures["extrapolation"] = _extrapolation(view, predictions)
    return {name: fig for name, fig in figures.items() if fig is not None}


def _predicted_vs_observed(view, predictions):
    fig, axes = _new_figure(1, len(predictions))
    y = view.observed
    for ax, (name, pred), colour in zip(axes[0], predictions, LAW_COLOURS, strict=False):
        ax.scatter(y[~view.hold], pred[~view.hold], marker="o", color=colour, label="fitting rows")
        ax.scatter(y[view.hold], pred[view.hold], marker="^", s=60, facecolor="white",
                   edgecolor="#000000", label="held-out rows (largest)")  # fmt: skip
        span = [min(y.min(), np.nanmin(pred)), max(y.max(), np.nanmax(pred))]
        ax.plot(span, span, color="#999999", linestyle=":", label="predicted = observed")
        ax.set(xlabel=f"observed {view.labels['loss']}", ylabel=f"predicted {view.labels['loss']}",
               title=name)  # fmt: skip
        ax.legend(fontsize=8)
    return fig


def _residuals(view, predictions):
    factors = []
    for f in ("N", "Na", "D", "E", "G", "S"):
        if f not in view.table or view.table[f].nunique() < 2:
            continue
        values = view.table[f].to_numpy(float)
        if not any(np.array_equal(values, view.table[g].to_numpy(float)) for g in factors):
            factors.append(f)  # not a copy of one already drawn (N read from Na)
    if not factors:
        return None
    fig, axes = _new_figure(len(predictions), len(factors), width=3.4, height=3.0)
    y = view.observed
    for row, (name, pred) in enumerate(predictions):
        for ax, factor in zip(axes[row], factors, strict=True):
            x = view.table[factor].to_numpy(float)
            colour = LAW_COLOURS[row % len(LAW_COLOURS)]
            ax.scatter(x[~view.hold], (y - pred)[~view.hold], s=14, color=colour)
            ax.scatter(x[view.hold], (y - pred)[view.hold], s=30, marker="^",
                       facecolor="white", edgecolor="#000000")  # fmt: skip
            ax.axhline(0.0, color="#999999", linewidth=0.8)
            levels = np.unique(x)
            _x_axis(ax, factor, ticks=levels if len(levels) <= 5 else None)
            ax.set_xlabel(view.labels[factor])
        axes[row, 0].set_ylabel(f"{name}\nobserved - predicted {_unit_of(view)}")
    return fig


def _x_axis(ax, factor, ticks=None):
    """Log scale for sizes, with plain numbers (1M, 2) rather than powers of ten on minor ticks."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    if factor in LOG_AXES or (factor == "G" and ticks is not None):
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _si(v)))
        ax.xaxis.set_minor_formatter(FuncFormatter(_minor_label))
    if ticks is not None:
        ax.set_xticks(ticks, [_si(t) for t in ticks])
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.margins(x=0.08)


def _minor_label(value: float, _=None) -> str:
    """Label the 2x and 5x minor ticks of a log axis, so a range under a decade is readable."""
    if value <= 0:
        return ""
    mantissa = value / 10 ** math.floor(math.log10(value))
    return _si(value) if round(mantissa, 6) in (2.0, 5.0) else ""


def _si(value: float) -> str:
    """1.6e6 -> "1.6M", 5e5 -> "500k", 1.31e9 -> "1.31B", 4 -> "4" (B, not G: G is a factor)."""
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def _sweep_figure(view, var):
    sweeps = oat_sweeps(view.table, var)
    if not sweeps:
        view.notes.append(f"no one-factor-at-a-time sweep of {var}: loss_vs_{var}.png not drawn")
        return None
    fig, axes = _new_figure(1, 1, width=6.4, height=4.6)
    ax = axes[0, 0]
    styles = ("--", "-", "-.", ":")
    for i, ((n_target, d_target), runs) in enumerate(sweeps):
        colour = BLOCK_COLOURS[i % len(BLOCK_COLOURS)]
        label = f"N={_si(n_target)}, D={_si(d_target)}"
        ax.scatter(runs[var], runs[view.outcome.target], color=colour, s=22, label=label)
        for (report, fit), style in zip(view.laws, styles, strict=False):
            grid, curve = _curve(fit, report, runs, var)
            if curve is not None:
                ax.plot(grid, curve, color=colour, linestyle=style, linewidth=1.2)
    for (report, _), style in zip(view.laws, styles, strict=False):
        ax.plot([], [], color="#555555", linestyle=style, label=f"law: {report.name}")
    levels = np.unique(np.concatenate([runs[var].to_numpy(float) for _, runs in sweeps]))
    _x_axis(ax, var, ticks=levels if var == "G" else None)
    ax.set(xlabel=view.labels[var], ylabel=view.labels["loss"],
           title=f"one factor at a time: {var} (others at the base)")  # fmt: skip
    ax.legend(fontsize=7)
    return fig


def _curve(fit, report, runs, var):
    """The law along ``var`` through a sweep; other inputs interpolated between its runs."""
    levels = runs.groupby(var).median(numeric_only=True)
    x = levels.index.to_numpy(float)
    grid = np.geomspace(x.min(), x.max(), 60) if var == "G" else np.linspace(x.min(), x.max(), 60)
    columns = {}
    for name in report.inputs:
        col = report.columns.get(name, name)
        if col == var:
            columns[col] = grid
        elif col in levels.columns:
            columns[col] = np.interp(grid, x, levels[col].to_numpy(float))
        else:
            return grid, None
    return grid, fit.predict(pd.DataFrame(columns))


def _pareto(front):
    rows = [r for r in front if r.get("inner_extrap_r2") is not None]
    if not rows:
        return None
    fig, axes = _new_figure(1, 1, width=6.0, height=4.2)
    ax = axes[0, 0]
    k = np.array([r["n_constants"] for r in rows], float)
    r2 = np.array([r["inner_extrap_r2"] for r in rows], float)
    floor = max(-1.0, float(np.min(r2)) - 0.05)
    shown = np.maximum(r2, floor)
    clipped = r2 < floor
    ax.scatter(k[~clipped], shown[~clipped], color=LAW_COLOURS[0], label="candidate")
    if clipped.any():
        ax.scatter(k[clipped], shown[clipped], marker="v", color=LAW_COLOURS[0],
                   label=f"R² below {floor:.2f} (drawn at the edge)")  # fmt: skip
    # The front: the best R² reached with at most k constants, as k grows.
    steps = np.unique(k)
    best = np.maximum.accumulate([shown[k == size].max() for size in steps])
    ax.step(steps, best, where="post", color=LAW_COLOURS[2], label="Pareto front")
    chosen = np.array([bool(r.get("chosen")) for r in rows])
    ax.scatter(k[chosen], shown[chosen], marker="*", s=260, facecolor="none",
               edgecolor=LAW_COLOURS[1], linewidth=1.5, label="chosen")  # fmt: skip
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="constants of the law", ylabel="R² on the inner extrapolation rows",
           title="discovered laws: size against inner-extrapolation R²")  # fmt: skip
    ax.legend(fontsize=8)
    return fig


def _optima_figure(optima, view):
    if optima is None or optima.empty:
        return None
    fig, axes = _new_figure(2, 2, width=4.6, height=3.6)
    for row, var in enumerate(("G", "S")):
        for col, factor in enumerate(("N", "D")):
            _optima_panel(axes[row, col], optima, var, factor, view)
    return fig


def _optima_panel(ax, optima, var, factor, view):
    """One point per block: inside the range with its interval, else a triangle at the edge."""
    swept = optima[optima[f"{var}*_where"] != "not swept"]
    for _, row in swept.iterrows():
        lo_end, hi_end = row[f"{var}_min"], row[f"{var}_max"]
        x = row[factor]
        if row[f"{var}*_where"] == "inside":
            value = row[f"{var}*"]
            lo = np.clip(row[f"{var}*_lo"], lo_end, hi_end)
            hi = np.clip(row[f"{var}*_hi"], lo_end, hi_end)
            yerr = None if not np.isfinite(lo) else [[value - lo], [hi - value]]
            ax.errorbar([x], [value], yerr=yerr, fmt="o", color=OKABE_ITO[5], capsize=4)
        else:
            above = row[f"{var}*_where"] == "above"
            ax.scatter([x], [hi_end if above else lo_end], marker="^" if above else "v", s=70,
                       color=OKABE_ITO[6])  # fmt: skip
    for (report, _), colour in zip(view.laws, LAW_COLOURS, strict=False):
        value = (report.optima or {}).get(f"{var}*")
        if value is not None and math.isfinite(value):
            ax.axhline(value, color=colour, linestyle="--", linewidth=1, label=report.name)
    if len(swept):
        # The y range is the sampled range of the factor, shaded, so edge triangles read as such.
        low, high = swept[f"{var}_min"].min(), swept[f"{var}_max"].max()
        pad = 0.08 * (high - low)
        ax.axhspan(low, high, color="#999999", alpha=0.12, label=f"sampled {var} range")
        ax.set_ylim(low - pad, high + pad)
    ax.scatter([], [], marker="^", color=OKABE_ITO[6], label="beyond the sampled range")
    _x_axis(ax, factor, ticks=np.unique(optima[factor]))
    ax.set(xlabel=view.labels[factor], ylabel=f"{var}* ({view.labels[var].split('(')[1][:-1]})",
           title=f"{var}* per one-factor block, 95% bootstrap interval")  # fmt: skip
    ax.title.set_fontsize(9)
    ax.legend(fontsize=7)


def _run_labels(rows: pd.DataFrame) -> list[str]:
    """Tick label of each held-out run: N and D, and every other factor that tells these runs
    apart (E for Clark et al.'s runs, G or S for a sweep), one per line."""
    factors = ["N", "D"] + [f for f in ("Na", "E", "G", "S") if f in rows.columns
                            and rows[f].nunique() > 1]  # fmt: skip
    factors = [f for f in factors if f in rows.columns]
    labels = ["\n".join(f"{f}={_si(r[f])}" for f in factors) for _, r in rows.iterrows()]
    if len(set(labels)) < len(labels):
        # Runs alike in every factor (Clark et al.'s routers): name a setting that differs
        repeated = pd.Series(labels, index=rows.index).duplicated(keep=False).to_numpy()
        for column in (c for c in rows.columns if c.startswith("extra_")):
            values = rows.loc[repeated, column].astype(str)
            if 1 < values.nunique() <= 12:
                name = column.removeprefix("extra_")
                labels = [f"{label}\n{name}={value}" for label, value
                          in zip(labels, rows[column].astype(str), strict=True)]  # fmt: skip
                break
    return labels


def _extrapolation(view, predictions):
    if not view.hold.any():
        return None
    rows = view.table[view.hold].sort_values(["N", "D"])
    index = rows.index.to_numpy()
    x = np.arange(len(rows))
    fig, axes = _new_figure(2, 1, width=max(6.0, 0.7 * len(rows)), height=3.3)
    top, bottom = axes[0, 0], axes[1, 0]
    top.scatter(x, view.observed[index], color="#000000", marker="s", label="observed", zorder=3)
    width = 0.8 / max(1, len(predictions))
    for i, (name, pred) in enumerate(predictions):
        colour = LAW_COLOURS[i % len(LAW_COLOURS)]
        error = pred[index] - view.observed[index]
        rmse = float(np.sqrt(np.mean(error**2)))
        top.scatter(x, pred[index], color=colour, marker="o", label=f"{name} (RMSE {rmse:.4f})")
        bottom.bar(x - 0.4 + width * (i + 0.5), error, width, color=colour, label=name)
    labels = _run_labels(rows)
    for ax in (top, bottom):
        ax.set_xticks(x, labels, fontsize=7)
    bottom.axhline(0.0, color="#999999", linewidth=0.8)
    top.set(ylabel=view.labels["loss"], title="extrapolation: the held-out (largest) runs")
    bottom.set(ylabel=f"predicted - observed {_unit_of(view)}", xlabel="held-out run")
    top.legend(fontsize=8)
    return fig


# ----------------------------------------------------------------------------------------------
# The page


_CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
        "script-src 'unsafe-inline'")  # fmt: skip

# Marks images that failed to decode, so a headless browser's DOM dump can be checked.
_IMAGE_CHECK = """<script>
window.addEventListener("load", function () {
  var broken = [];
  var images = document.images;
  for (var i = 0; i < images.length; i++) {
    if (!images[i].complete || images[i].naturalWidth === 0) { broken.push(images[i].alt); }
  }
  var mark = document.createElement("div");
  mark.id = "image-check";
  mark.setAttribute("data-images", String(images.length));
  mark.setAttribute("data-broken", broken.join("|"));
  mark.hidden = true;
  document.body.appendChild(mark);
});
</script>"""

_STYLE = """<style>
body { font-family: sans-serif; max-width: 1100px; margin: 1em auto; color: #111; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.5em; text-align: right; }
td.text { text-align: left; }
code { font-size: 0.85em; word-break: break-all; }
img { max-width: 100%; display: block; margin: 0.5em 0 1.5em; }
</style>"""

_CAPTIONS = {
    "predicted_vs_observed": "Predicted against observed loss. Circles: the rows each law was "
    "fitted on; triangles: the held-out runs (largest N).",
    "residuals": "Observed minus predicted loss against each factor (triangles: held out).",
    "loss_vs_G": "Loss against G in each one-factor-at-a-time block (points: runs, one per "
    "seed); lines: each law at the block's N, Na and D.",
    "loss_vs_S": "Loss against S in each one-factor-at-a-time block, as above.",
    "pareto_front": "Candidates of the symbolic search: constants against R² on the largest-N "
    "part of the fitting rows (the selection criterion).",
    "optima": "G* and S* of the marginal fits of each block, with 95% percentile bootstrap "
    "intervals (clipped to the sampled range); triangles: the fit has no minimum inside the "
    "sampled range. Dashed lines: the joint laws' optima.",
    "extrapolation": "Prediction and error on the held-out runs.",
}


def _page(view, optima, images, title) -> str:
    outcome = view.outcome
    title = title or f"moelaw report: {outcome.source}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        f"<title>{_esc(title)}</title>",
        _STYLE,
        "</head><body>",
        f"<h1>{_esc(title)}</h1>",
        f"<p>{_esc(_data_line(outcome, view.labels))}</p>",
        "<h2>Laws</h2>",
        _laws_table(view),
        "<h2>Per-block optima</h2>",
        _optima_table(optima),
        "<h2>Plots</h2>",
    ]
    for name in PLOTS:
        if name in images:
            parts.append(f"<h3>{name.replace('_', ' ')}</h3><p>{_esc(_CAPTIONS[name])}</p>")
            data = base64.b64encode(images[name]).decode("ascii")
            parts.append(f'<img alt="{name}" src="data:image/png;base64,{data}">')
    if view.notes:
        parts.append("<h2>Notes</h2><ul>")
        parts += [f"<li>{_esc(note)}</li>" for note in view.notes]
        parts.append("</ul>")
    parts += [_IMAGE_CHECK, "</body></html>"]
    return "\n".join(parts) + "\n"


def _data_line(outcome, labels: dict) -> str:
    h = outcome.holdout
    threshold = h.get("threshold")
    cut = f"{threshold:.4g}" if threshold is not None else "n/a"
    return (f"Data: {outcome.source}, {outcome.n_rows} runs; laws fitted on {outcome.n_fit}, "
            f"{outcome.n_holdout} held out ({h.get('factor')} > {cut}). Axes: "
            f"{'; '.join(labels[k] for k in ('loss', 'N', 'Na', 'D'))}.")  # fmt: skip


def _unit_of(view) -> str:
    """``(nats/byte)``, the unit of the loss axis, for labels of differences."""
    return "(" + view.labels["loss"].split("(", 1)[1]


def _laws_table(view) -> str:
    head = ["law", "formula", "constants", "R² fit", "RMSE fit", "R² held out",
            "RMSE held out", "G*", "S*", "converged"]  # fmt: skip
    rows = []
    for report, _ in view.laws:
        hold = report.holdout or {}
        constants = ", ".join(f"{name} = {value:.4g}" for name, value in report.params.items())
        rows.append([
            _esc(report.name), f"<code>L = {_esc(report.formula)}</code>",
            f"{report.n_constants}: {_esc(constants)}",
            _num(report.fit.get("r2")), _num(report.fit.get("rmse")), _num(hold.get("r2")),
            _num(hold.get("rmse")), _num(report.optima.get("G*")), _num(report.optima.get("S*")),
            "yes" if report.converged else "no",
        ])  # fmt: skip
    return _html_table(head, rows, text_columns={0, 1, 2})


def _optima_table(optima) -> str:
    if optima is None or optima.empty:
        return "<p>No one-factor-at-a-time block in these runs.</p>"
    head = ["N", "D", "runs", "seeds", "G range", "G* [95% interval]", "S range",
            "S* [95% interval]", "resamples (G, S)"]  # fmt: skip
    rows = []
    for _, r in optima.iterrows():
        rows.append([
            _si(r["N"]), _si(r["D"]), r["n_runs"], r["n_seeds"], _range(r, "G"),
            _esc(format_interval(r, "G")), _range(r, "S"), _esc(format_interval(r, "S")),
            f"{r['G*_boot']}, {r['S*_boot']}",
        ])  # fmt: skip
    notes = [f"N={_si(r['N'])}, D={_si(r['D'])}, {v}: {r[f'{v}*_note']}"
             for _, r in optima.iterrows() for v in ("G", "S") if r[f"{v}*_note"]]  # fmt: skip
    text = "".join(f"<li>{_esc(n)}</li>" for n in notes)
    return _html_table(head, rows) + (f"<ul>{text}</ul>" if text else "")


def _range(row, var) -> str:
    if row[f"{var}*_where"] == "not swept":
        return "-"
    return f"{row[f'{var}_min']:g}-{row[f'{var}_max']:g}"


def _html_table(head, rows, text_columns=frozenset()) -> str:
    cells = ["<table><tr>" + "".join(f"<th>{_esc(h)}</th>" for h in head) + "</tr>"]
    for row in rows:
        tds = [f'<td class="text">{v}</td>' if i in text_columns else f"<td>{v}</td>"
               for i, v in enumerate(row)]  # fmt: skip
        cells.append("<tr>" + "".join(tds) + "</tr>")
    return "\n".join(cells) + "</table>"


def _esc(text) -> str:
    return html.escape(str(text), quote=True)


def _num(value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.4f}" if abs(value) < 1e4 else f"{value:.4g}"


# ----------------------------------------------------------------------------------------------
# Writing


def _write(out_dir: Path, images: dict[str, bytes], page: str) -> dict[str, Path]:
    """Every PNG, then the page, each through a temporary file renamed into place."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, data in images.items():
        paths[name] = out_dir / f"{name}.png"
        write_atomic(paths[name], data)
    paths["page"] = out_dir / PAGE
    write_atomic(paths["page"], page)
    return paths
