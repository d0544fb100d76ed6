"""The report page in a real browser: headless Chromium decodes every embedded plot.

The page carries a small inline script that, once the page has loaded, writes a hidden
``<div id="image-check">`` listing the images that failed to decode (``naturalWidth == 0``);
Chromium's ``--dump-dom`` prints the DOM after that. Chromium reads the page from a ``file://``
URL with background networking off and every host name resolving to nothing, and the page's
Content-Security-Policy allows only ``data:`` images, so nothing reaches any network.
"""

import re
import shutil
import subprocess

import pytest

from discover.data import load_table
from discover.report import PAGE, PLOTS, build_report
from discover.workflow import run_compare

CHROMIUM = shutil.which("chromium")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="headless Chromium is not installed (Debian: apt-get install -y chromium)",
)

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-sync",
    "--no-first-run",
    "--no-pings",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--virtual-time-budget=5000",
)


def image_check(page_path, tmp_path) -> dict:
    """Render the page and return the marker its script wrote: image count and broken images."""
    profile = tmp_path / "profile"
    result = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", page_path.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    mark = re.search(r'<div id="image-check" data-images="(\d+)" data-broken="([^"]*)"',
                     result.stdout)  # fmt: skip
    assert mark is not None, f"the page's check did not run; DOM starts {result.stdout[:300]!r}"
    broken = [name for name in mark.group(2).split("|") if name]
    return {"images": int(mark.group(1)), "broken": broken}


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    outcome = run_compare(laws=["chinchilla", "moe_powerlaw4"])
    outcome.front = [
        {"formula": "c0*D**c1 + c2", "n_constants": 3, "inner_extrap_r2": 0.75, "chosen": True},
        {"formula": "c0*log(D) + c1", "n_constants": 2, "inner_extrap_r2": 0.61},
    ]
    build_report(outcome, out, table=load_table(None), n_boot=100)
    return out / PAGE


def test_every_plot_decodes_in_chromium(page, tmp_path):
    check = image_check(page, tmp_path)
    assert check == {"images": len(PLOTS), "broken": []}


def test_the_check_catches_an_image_that_does_not_decode(page, tmp_path):
    # The same page with one plot's bytes replaced by bytes that are not a PNG.
    text = page.read_text()
    spoiled = re.sub(r'(<img alt="optima" src="data:image/png;base64,)[^"]+', r"\1AAAAAAAA", text)
    assert spoiled != text
    copy = tmp_path / PAGE
    copy.write_text(spoiled)
    assert image_check(copy, tmp_path) == {"images": len(PLOTS), "broken": ["optima"]}
