"""A scikit-learn style estimator over :func:`discover.pipeline.discover_law`.

``LawRegressor`` follows scikit-learn's conventions without depending on it: ``__init__`` only
stores its keyword arguments (validated at :meth:`LawRegressor.fit`, each error naming the
parameter, the rule and the value), :meth:`~LawRegressor.get_params` and
:meth:`~LawRegressor.set_params` round-trip them (so ``sklearn.base.clone`` works), and what
``fit`` learns is stored in attributes ending in ``_``.

Example::

    from discover.estimator import LawRegressor
    model = LawRegressor(max_constants=6, seeds=(0, 1)).fit(table[["N", "D"]], table["loss"])
    model.predict(new_runs), model.sympy(), model.latex()
    model.equations_          # every candidate form, the chosen one first

The columns of ``X`` are the paper's factors (N, Na, D, G, S, E, see :mod:`discover`) or any
other inputs; ``y`` is the loss in nats per token (positive: the re-fit works on log losses).
"""

from __future__ import annotations

import inspect
import numbers
from pathlib import Path

import numpy as np
import pandas as pd

from discover.data import check_table
from discover.metrics import r2
from results.errors import InputError

#: Name of the target column when ``y`` is given as values rather than a column name.
TARGET = "loss"


class LawRegressor:
    """Discover a closed-form scaling law, selected by how well it extrapolates.

    Parameters
    ----------
    inputs : sequence of str, optional
        Columns of ``X`` to search over. Default: every column of ``X`` (select the columns you
        mean, e.g. ``X = runs[["N", "E"]]``).
    holdout_factor : str, optional
        Column whose largest values form the inner holdout on which forms are compared. Default
        ``"N"`` when it is an input, else the first input.
    holdout_quantile : float, default 0.2
        Fraction of the rows in the inner holdout, in (0, 1).
    max_constants : int, default 8
        Most free constants a law may have.
    seeds : sequence of int, default (0,)
        One engine run per seed; their fronts are pooled.
    engines : sequence of str, optional
        Engines to run, e.g. ``("pyoperon", "pysr")``. Default: the pipeline's default engines.
    engine_options : dict, optional
        Keyword arguments per engine, ``{"pyoperon": {"generations": 50}}``.
    n_starts : int, default 64
        Sobol starts of each re-fit.
    n_polish : int, default 4
        Starts polished per re-fit.
    refit_maxiter : int, default 400
        L-BFGS-B iterations per polish.
    tie_tolerance : float, default 1e-3
        Forms within this of the best inner-holdout R² tie; the one with fewer constants wins.
    one_se : bool, default False
        Also tie forms within one standard error of the best inner-holdout R².
    n_jobs : int, default 1
        Parallel engine runs (Ray, when installed).

    Attributes
    ----------
    best_ : FitResult
        The chosen law, fitted on every row given to ``fit``.
    equations_ : pandas.DataFrame
        The Pareto front: one row per candidate form (``formula``, ``n_constants``,
        ``inner_extrap_r2``, ``fitted``, ``chosen``, ...), the chosen one first.
    result_ : DiscoveryResult
        Everything the pipeline returned (settings, timings, inner holdout mask).
    feature_names_in_ : numpy.ndarray of str
        The columns of ``X`` seen at fit.
    n_features_in_ : int
    inputs_ : tuple of str
        The inputs searched over.
    target_ : str
        Name of the target column.

    Examples
    --------
    >>> model = LawRegressor(max_constants=5)  # doctest: +SKIP
    >>> model.fit(table[["N", "D"]], table["loss"]).sympy()  # doctest: +SKIP
    1.69 + 406.4*N**(-0.34) + 410.7*D**(-0.28)
    """

    def __init__(
        self,
        inputs=None,
        *,
        holdout_factor=None,
        holdout_quantile=0.2,
        max_constants=8,
        seeds=(0,),
        engines=None,
        engine_options=None,
        n_starts=64,
        n_polish=4,
        refit_maxiter=400,
        tie_tolerance=1e-3,
        one_se=False,
        n_jobs=1,
    ):
        self.inputs = inputs
        self.holdout_factor = holdout_factor
        self.holdout_quantile = holdout_quantile
        self.max_constants = max_constants
        self.seeds = seeds
        self.engines = engines
        self.engine_options = engine_options
        self.n_starts = n_starts
        self.n_polish = n_polish
        self.refit_maxiter = refit_maxiter
        self.tie_tolerance = tie_tolerance
        self.one_se = one_se
        self.n_jobs = n_jobs

    # ------------------------------------------------------------------------------------------
    # Parameters (the scikit-learn protocol)

    @classmethod
    def _param_names(cls) -> list[str]:
        """The keyword arguments of ``__init__``, which are exactly the parameters."""
        signature = inspect.signature(cls.__init__)
        return [name for name in signature.parameters if name != "self"]

    def get_params(self, deep: bool = True) -> dict:
        """The parameters, as given to ``__init__`` or :meth:`set_params` (``deep`` is unused:
        no parameter is an estimator)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params) -> LawRegressor:
        """Set parameters by name; returns the estimator. Validation happens at :meth:`fit`."""
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise InputError(
                    f"LawRegressor has no parameter {name!r}; valid parameters: {', '.join(valid)}"
                )
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = {n: p.default for n, p in inspect.signature(type(self)).parameters.items()}
        changed = [f"{n}={v!r}" for n, v in self.get_params().items() if not _same(v, defaults[n])]
        return f"LawRegressor({', '.join(changed)})"

    # ------------------------------------------------------------------------------------------
    # Fitting and predicting

    def fit(self, X, y, *, variable_names=None) -> LawRegressor:
        """Discover a law predicting ``y`` from ``X``.

        Parameters
        ----------
        X : pandas.DataFrame or array of shape (n_rows, n_inputs)
            The runs' inputs; an array needs ``variable_names``.
        y : pandas.Series, array of shape (n_rows,), or str
            The loss of each run (positive), or the name of the column of ``X`` holding it.
        variable_names : sequence of str, optional
            Column names of an array ``X`` (letters, digits and ``_``, starting with a letter).

        Returns
        -------
        LawRegressor
            ``self``, fitted.

        Raises
        ------
        InputError
            A parameter or an argument breaks its rule (named, with the value), or the pipeline
            finds no usable law.
        """
        from discover.pipeline import discover_law

        # 1. The table: inputs and the target as named columns
        table, target = _table(X, y, variable_names)
        features = [c for c in table.columns if c != target]
        inputs = self._check_inputs(features)
        holdout = self._check_holdout_factor(inputs, features)
        self._check_numbers()
        check_table(table, inputs, target, positive=())

        # 2. The search, with only the options the caller set passed on
        options = dict(holdout_factor=holdout, holdout_quantile=float(self.holdout_quantile),
                       max_constants=int(self.max_constants), seeds=self._check_seeds(),
                       engine_options=self._check_engine_options(), n_starts=int(self.n_starts),
                       n_polish=int(self.n_polish), refit_maxiter=int(self.refit_maxiter),
                       tie_tolerance=float(self.tie_tolerance), one_se=bool(self.one_se),
                       n_jobs=int(self.n_jobs))  # fmt: skip
        engines = self._check_engines()
        if engines is not None:
            options["engines"] = engines
        result = discover_law(table, inputs, target, **options)

        # 3. What was learnt
        self.result_ = result
        self.best_ = result.best
        self.equations_ = result.front
        self.inputs_ = tuple(result.inputs)
        self.target_ = target
        self.feature_names_in_ = np.asarray(features, dtype=object)
        self.n_features_in_ = len(features)
        return self

    def predict(self, X, *, variable_names=None) -> np.ndarray:
        """Predicted loss of each row of ``X`` (same columns as at fit; an array in that order).

        Returns
        -------
        numpy.ndarray of shape (n_rows,)
        """
        self._check_fitted()
        table = self._features(X, variable_names)
        return self.best_.predict(table)

    def score(self, X, y) -> float:
        """R² of the prediction of ``X`` against ``y`` (values, or a column name of ``X``)."""
        self._check_fitted()
        if isinstance(y, str):
            y = _column_of(X, y)
        return float(r2(np.asarray(y, dtype=float), self.predict(X)))

    def sympy(self):
        """The chosen law as a sympy expression with its fitted constants (17 digits)."""
        self._check_fitted()
        return self.best_.sympy()

    def latex(self) -> str:
        """LaTeX of the chosen law (renders with matplotlib's mathtext; no ``$``)."""
        from discover.export import latex_text

        return latex_text(self.sympy())

    def to_numpy(self):
        """The chosen law as a numpy function (see :func:`discover.export.to_numpy_function`)."""
        from discover.export import to_numpy_function

        self._check_fitted()
        return to_numpy_function(self.best_)

    def export(self, out_dir) -> dict[str, Path]:
        """Write the chosen law's files (see :func:`discover.export.export_law`)."""
        from discover.export import export_law

        self._check_fitted()
        return export_law(self.best_, out_dir)

    # ------------------------------------------------------------------------------------------
    # Checks

    def _check_fitted(self) -> None:
        if not hasattr(self, "best_"):
            raise InputError("this LawRegressor is not fitted yet; call fit(X, y) first")

    def _features(self, X, variable_names) -> pd.DataFrame:
        """``X`` as a table with the columns seen at fit."""
        names = list(self.feature_names_in_)
        if isinstance(X, pd.DataFrame):
            missing = [c for c in self.inputs_ if c not in X.columns]
            if missing:
                raise InputError(f"X has no column {missing[0]!r} (columns {list(X.columns)}); "
                                 f"the law reads {list(self.inputs_)}")  # fmt: skip
            return X
        values = _matrix(X, "X")
        names = list(variable_names) if variable_names is not None else names
        if values.shape[1] != len(names):
            raise InputError(f"X has {values.shape[1]} columns; the law was fitted on "
                             f"{len(names)} ({names}). Pass them in that order")  # fmt: skip
        return pd.DataFrame(values, columns=names)

    def _check_inputs(self, features) -> list[str]:
        if self.inputs is None:
            return list(features)
        if isinstance(self.inputs, str) or not all(isinstance(c, str) for c in self.inputs):
            raise InputError(f"inputs must be a list of column names or None, got {self.inputs!r}")
        missing = [c for c in self.inputs if c not in features]
        if missing or not self.inputs:
            raise InputError(f"inputs must be columns of X ({features}); got {list(self.inputs)}, "
                             f"of which {missing} are not")  # fmt: skip
        return list(self.inputs)

    def _check_holdout_factor(self, inputs, features) -> str:
        if self.holdout_factor is None:
            return "N" if "N" in inputs else inputs[0]
        if self.holdout_factor not in features:
            raise InputError(f"holdout_factor must be a column of X ({features}), got "
                             f"{self.holdout_factor!r}")  # fmt: skip
        return self.holdout_factor

    def _check_numbers(self) -> None:
        """Every numeric parameter is of its type and in its range."""
        q = self.holdout_quantile
        if not _is_real(q) or not 0 < q < 1:
            raise InputError(f"holdout_quantile must be a number in (0, 1), got {q!r}; "
                             "0.2 holds out the top fifth")  # fmt: skip
        for name in ("max_constants", "n_starts", "n_polish", "refit_maxiter", "n_jobs"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise InputError(f"{name} must be an integer >= 1, got {value!r}")
        if not _is_real(self.tie_tolerance) or not self.tie_tolerance >= 0:
            raise InputError(f"tie_tolerance must be a number >= 0, got {self.tie_tolerance!r}")
        if not isinstance(self.one_se, bool | np.bool_):
            raise InputError(f"one_se must be True or False, got {self.one_se!r}")

    def _check_seeds(self) -> tuple[int, ...]:
        seeds = (self.seeds,) if _is_int(self.seeds) else self.seeds
        try:
            ok = len(seeds) > 0 and all(_is_int(s) and s >= 0 for s in seeds)
        except TypeError:
            ok = False
        if not ok:
            raise InputError(f"seeds must be a non-empty list of integers >= 0, got {self.seeds!r}")
        return tuple(int(s) for s in seeds)

    def _check_engines(self) -> tuple[str, ...] | None:
        if self.engines is None:
            return None
        engines = (self.engines,) if isinstance(self.engines, str) else self.engines
        try:
            ok = len(engines) > 0 and all(isinstance(e, str) for e in engines)
        except TypeError:
            ok = False
        if not ok:
            raise InputError(f"engines must be a non-empty list of engine names or None, got "
                             f"{self.engines!r}")  # fmt: skip
        return tuple(engines)

    def _check_engine_options(self) -> dict | None:
        options = self.engine_options
        if options is not None and not isinstance(options, dict):
            raise InputError(f"engine_options must be a dict (per engine: "
                             f"{{'pyoperon': {{...}}}}) or None, got {options!r}")  # fmt: skip
        return None if options is None else dict(options)


def _table(X, y, variable_names) -> tuple[pd.DataFrame, str]:
    """A DataFrame of the inputs and the target, and the target's column name."""
    if isinstance(X, pd.DataFrame):
        if variable_names is not None:
            raise InputError("variable_names is for an array X; a DataFrame has its own columns")
        table = X.reset_index(drop=True).copy()
    else:
        values = _matrix(X, "X")
        if variable_names is None:
            raise InputError(f"X is an array of shape {values.shape}; pass variable_names= with "
                             "a name per column (e.g. ['N', 'D']) or a DataFrame")  # fmt: skip
        names = list(variable_names)
        if len(names) != values.shape[1] or len(set(names)) != len(names):
            raise InputError(f"variable_names must name each of the {values.shape[1]} columns "
                             f"of X once, got {names}")  # fmt: skip
        table = pd.DataFrame(values, columns=names)
    bad = [c for c in table.columns if not isinstance(c, str)]
    if bad:
        raise InputError(f"the columns of X must be names (text), got {bad}; rename them")
    if isinstance(y, str):
        if y not in table.columns:
            raise InputError(f"y={y!r} is not a column of X (columns {list(table.columns)})")
        return table, y
    target = TARGET if TARGET not in table.columns else "target_"
    values = np.asarray(y, dtype=float).ravel() if np.ndim(y) <= 2 else None
    if values is None or np.ndim(y) == 2 and np.shape(y)[1] != 1 or len(values) != len(table):
        raise InputError(f"y must hold one value per row of X ({len(table)} rows), got shape "
                         f"{np.shape(y)}")  # fmt: skip
    table[target] = values
    return table, target


def _matrix(X, name: str) -> np.ndarray:
    """A 2-D float array, or an InputError naming ``name`` and the shape it has."""
    try:
        values = np.asarray(X, dtype=float)
    except (TypeError, ValueError) as err:
        raise InputError(f"{name} must be numbers (a DataFrame or a 2-D array): {err}") from None
    if values.ndim != 2 or values.shape[0] == 0:
        raise InputError(f"{name} must be 2-D with at least one row, got shape {values.shape}")
    return values


def _column_of(X, name: str):
    if not isinstance(X, pd.DataFrame) or name not in X.columns:
        raise InputError(f"y={name!r} names a column, but X has no such column")
    return X[name]


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def _same(a, b) -> bool:
    """Whether a parameter equals its default (for the repr), tolerating arrays and dicts."""
    try:
        return bool(a == b) if type(a) is type(b) else False
    except (TypeError, ValueError):
        return False
