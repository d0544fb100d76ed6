"""A tiny sweep spec shared by the tests that run real sweeps (runs of a second or two on CPU)."""

from pathlib import Path

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "austen.txt"


def tiny_spec(
    name: str, store="store", tokens: float = 2.0e4, defaults: str = "", extra: str = ""
) -> str:
    """TOML of a sweep of 1-layer, width-32 MoE models on the Austen corpus.

    ``defaults`` adds lines to ``[defaults]``; ``extra`` appends tables (``[oat]``, ``[schedule]``).
    """
    return f"""
name = "{name}"
store = "{store}"

[data]
files = ["{CORPUS}"]

[defaults]
N = 1.0e5
Na_ratio = 0.4
D = {tokens}
G = 2
d_model = 32
n_layers = 1
seq_len = 64
batch_size = 8
eval_tokens = 4096
{defaults}
{extra}
"""
