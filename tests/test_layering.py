"""The packages depend on each other one way only, and discover runs without torch or Ray."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
OURS = {"results", "trainer", "cluster", "discover"}
ALLOWED = {
    "results": set(),
    "trainer": {"results"},
    "discover": {"results"},
    "cluster": {"results", "trainer", "discover"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(OURS))
def test_imports_point_one_way(package):
    for path in (REPO / package).rglob("*.py"):
        used = (_imports(path) & OURS) - {package}
        assert used <= ALLOWED[package], f"{path.relative_to(REPO)} imports {used}"


BLOCK = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "ray"):
            raise ImportError(f"{name} is blocked in this test")
sys.meta_path.insert(0, Block())
"""


def test_discover_and_its_jobs_run_without_torch_or_ray(tmp_path):
    script = (
        BLOCK
        + f"""
import numpy as np, pandas as pd
from discover.workflow import run_fit
rng = np.random.default_rng(0)
N = np.geomspace(1e5, 1e8, 30); D = rng.choice([1e9, 1e10, 1e11], 30)
pd.DataFrame({{"N": N, "D": D, "loss": 1.7 + 400 * N**-0.34 + 400 * D**-0.28}}).to_csv(
    r"{tmp_path / "runs.csv"}", index=False)
out = run_fit(r"{tmp_path / "runs.csv"}", law="chinchilla")
print(round(out.laws[0].holdout["r2"], 6))
assert "torch" not in sys.modules and "ray" not in sys.modules
"""
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout.strip()) > 0.999
