"""What an instructor sees: the HTML page of `course check --report grades.html`, opened from
disk in Chromium, offline."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import nbformat
import pytest

import labui
from harness import ROOT, GradingRun

pytestmark = pytest.mark.browser

# what grading lessons/00 and solutions/00 must give, per exercise
EXPECTED = {"lessons/00_setup.ipynb": "not attempted", "solutions/00_setup.ipynb": "passed"}


def test_report_shows_the_plot_and_every_verdict_and_fetches_nothing(
        page: Any, grading: GradingRun, artifacts: Path) -> None:
    exercises = re.findall(r'check\("(\d\d\.\d+)"\)', "\n".join(
        c.source for c in nbformat.read(ROOT / "lessons/00_setup.ipynb", as_version=4).cells))
    assert exercises == ["00.1", "00.2"]
    report = grading.wait()
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    # anything not from the file itself is recorded above and refused here, never fetched
    page.route(re.compile(r"^(?!file:|data:)"), lambda route: route.abort())
    page.set_viewport_size({"width": 1000, "height": 760})
    page.goto(report.as_uri())
    page.wait_for_load_state("load")

    rows = page.evaluate("""() => [...document.querySelectorAll('table')].map(t =>
        [...t.querySelectorAll('tr')].slice(1).map(r => [...r.cells].map(c => c.innerText)))""")
    rates, submissions = rows
    assert sorted(r[0] for r in submissions) == sorted(EXPECTED)
    for path, lesson, score, verdicts, _notes in submissions:
        assert lesson == "00"
        want = EXPECTED[path]
        assert [v.split(" —")[0] for v in verdicts.splitlines()] == [
            f"{k}: {want}" for k in exercises], (path, verdicts)
        assert score == ("2/2" if want == "passed" else "0/2")
    assert [r[:4] for r in rates] == [[k, "1", "2", "50%"] for k in exercises]

    plot = page.locator("img[alt='pass rate per exercise']")
    assert plot.count() == 1 and plot.is_visible()
    width, height = labui.image_size(plot)
    assert width > 200 and height > 100, (width, height)
    # two bars at a pass rate of 50% paint about a quarter of the picture (0.27 measured); a
    # truncated or blank picture keeps its size but paints next to nothing (half a PNG: 0.014)
    assert labui.painted_share(plot) > 0.1

    outside = [u for u in requested if not u.startswith(("file:", "data:"))]
    assert outside == [], outside
    assert requested and requested[0] == report.as_uri()
    page.screenshot(path=str(artifacts / "report.png"), full_page=True)
