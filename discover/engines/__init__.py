"""Symbolic-regression engines: each turns a table into a list of candidate laws.

An engine takes the rows to search on, the target column and the input columns, and returns
:class:`discover.candidates.Candidate` objects whose expressions are written in the raw factor
symbols (N, Na, D, G, S, E), whatever transformed inputs the engine searched over.

pyoperon (:func:`discover.engines.pyoperon.run_pyoperon`) is the engine that works everywhere.
"""

from discover.engines.pyoperon import InputTransform, run_pyoperon, tree_to_sympy

__all__ = ["InputTransform", "run_pyoperon", "tree_to_sympy"]
