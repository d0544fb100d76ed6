"""Published laws on the Clark et al. 2022 MoE split, under each fitting objective.

Run from the repository root:

    .venv/bin/python bench/clark_laws.py

Split as in ``../shared/data/README.md``: rows at step 249000 of
``../shared/data/clark2022/curves.csv.gz``, N = dense_parameter_count, E = num_experts,
train = N < 1.3e9 (193 rows), test = the 1.31B runs (28 rows), R² over the test rows. Reference
scores: Clark et al.'s law 0.703, the four-constant law 0.833. Printed: test R² of each law fitted
with Huber (delta 1e-3) on log L, least squares on log L, and least squares on L.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_discover_fit_clark import clark_split  # noqa: E402

from discover.fit import fit_law  # noqa: E402
from discover.laws import get_law  # noqa: E402
from discover.metrics import r2  # noqa: E402

OBJECTIVES = {
    "huber log L": dict(loss="huber", residual="log"),
    "squares log L": dict(loss="squared", residual="log"),
    "squares L": dict(loss="squared", residual="linear"),
}


def main() -> None:
    train, test = clark_split()
    print(f"train {len(train)} rows, test {len(test)} rows; test R²")
    print(f"{'law':<16}" + "".join(f"{name:>16}" for name in OBJECTIVES))
    for name in ("clark2022", "moe_powerlaw4"):
        scores = []
        for options in OBJECTIVES.values():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit = fit_law(get_law(name), train, n_starts=2048, **options)
            scores.append(r2(test["loss"], fit.predict(test)))
        print(f"{name:<16}" + "".join(f"{s:>16.4f}" for s in scores))


if __name__ == "__main__":
    main()
