"""What a learner sees in JupyterLab: lessons run from the UI, exercises checked, widgets live.

Every step goes through the page as a learner would: the Run menu, clicks, keys typed into the
cell editor. Screenshots of each step are saved in the artifacts folder.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

import labui
from harness import ROOT, LabServer, new_page

pytestmark = pytest.mark.browser

LESSON_00 = "lessons/00_setup.ipynb"
LESSON_07 = "lessons/07_evaluation_and_hyperparameters.ipynb"
RUN_MS = 240_000  # a generous bound for a whole lesson 00 run on a loaded 2-core machine

# Exercise 00.1 in one line (typing a newline would let the editor indent the next line).
TO_DEVICE = ("def to_device(batch, device): "
             "return {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}")

# Sweep points in the shape lesson 07's sweep returns, made in a cell typed above the explorer so
# that the test does not spend the sweep's training time; the loop shows a tqdm.auto bar.
POINTS = ("from tqdm.auto import tqdm; from course_utils.text.evaluation import SweepPoint; "
          "points = [SweepPoint(lr, e, 0.3 + e * lr * 100, 1.6 - e * lr * 300) "
          "for lr in tqdm([1e-4, 3e-4, 1e-3], desc='learning rates') for e in (1, 2)]")


def cell_count(path: str) -> int:
    """How many cells the notebook has, so the test knows when JupyterLab rendered them all."""
    return len(nbformat.read(ROOT / path, as_version=4).cells)


def exercise_ids(path: str) -> list[str]:
    """The exercises whose check cells the notebook holds, in order."""
    source = "\n".join(c.source for c in nbformat.read(ROOT / path, as_version=4).cells)
    return re.findall(r'check\("(\d\d\.\d+)"\)', source)


def verdicts(page: Any) -> dict[str, str]:
    """Exercise id -> the verdict line its check cell shows (✅/❌/⏳/⚠️ ...)."""
    found = {}
    for text in labui.output_texts(page):
        for m in re.finditer(r"^(\S+) Exercise (\d\d\.\d+): (.*)$", text, re.M):
            found[m.group(2)] = f"{m.group(1)} {m.group(3)}"
    return found


def test_lesson_00_runs_from_the_menu_and_checks_the_exercise(page: Any, lab: LabServer,
                                                              artifacts: Path) -> None:
    labui.open_notebook(page, lab.url(LESSON_00), cell_count(LESSON_00))
    labui.run_all(page, RUN_MS)
    texts = labui.output_texts(page)
    profile = [t for t in texts if t.startswith("profile=")]
    assert profile and re.match(r"profile=tiny \| device=cpu .*\| expected time: ", profile[0]), texts[:3]
    assert labui.error_outputs(page) == []
    exercises = exercise_ids(LESSON_00)
    assert exercises == ["00.1", "00.2"]
    shown = verdicts(page)
    assert {k: v.split(" —")[0] for k, v in shown.items()} == {
        k: "⏳ not attempted" for k in exercises}, shown
    page.screenshot(path=str(artifacts / "lesson-00-untouched.png"), full_page=True)

    # the learner writes 00.1 in the stub's cell (the code cell above 00.1's check) and reruns
    stub = labui.code_cell_index(page, "def to_device")
    labui.replace_cell_source(page, stub, TO_DEVICE)
    assert labui.cell_source(page, stub) == TO_DEVICE
    labui.run_all(page, RUN_MS)
    shown = verdicts(page)
    assert shown["00.1"].startswith("✅ passed"), shown
    assert shown["00.2"].startswith("⏳ not attempted"), shown
    assert labui.error_outputs(page) == []
    labui.code_cell(page, stub).evaluate("cell => cell.scrollIntoView({block: 'center'})")
    page.screenshot(path=str(artifacts / "lesson-00-solved.png"))

    # the "no error output" assertions above can fail: an error is seen as one
    labui.add_cell_below(page, labui.code_cell_count(page) - 1, "1 / 0")
    labui.run_selected(page, RUN_MS)
    assert any("ZeroDivisionError" in e for e in labui.error_outputs(page))


@pytest.fixture(scope="module")
def lesson_07(browser_context: Any, lab: LabServer, request: pytest.FixtureRequest,
              artifacts: Path) -> Iterator[Any]:
    """Lesson 07 open with its set-up cells run and sweep points made, the explorer not yet run."""
    for page in new_page(browser_context, request, artifacts):
        labui.open_notebook(page, lab.url(LESSON_07), cell_count(LESSON_07))
        setup = labui.code_cell_index(page, "cfg = setup(")
        labui.select_cells(page, 0, setup)
        labui.run_selected(page, RUN_MS)
        labui.add_cell_below(page, setup, POINTS)
        labui.run_selected(page, RUN_MS)
        yield page


def test_tqdm_auto_renders_as_a_widget_bar(lesson_07: Any) -> None:
    cell = labui.code_cell(lesson_07, labui.code_cell_index(lesson_07, "from tqdm.auto import tqdm"))
    bar = cell.locator(".jp-Cell-outputArea .widget-hprogress .progress-bar")
    assert bar.count() == 1, cell.locator(".jp-Cell-outputArea").inner_text()
    assert bar.is_visible() and bar.bounding_box()["width"] > 50
    assert "progress-bar-success" in bar.get_attribute("class")  # tqdm's finished bar
    text = cell.locator(".jp-Cell-outputArea").inner_text().replace("\u2007", " ")  # tqdm's figure spaces
    assert "learning rates" in text and "3/3" in text and "it/s" in text


def test_lesson_07_explorer_is_live(lesson_07: Any, artifacts: Path) -> None:
    page = lesson_07
    index = labui.code_cell_index(page, "sweep_explorer(points)")
    labui.select_cells(page, index, index)
    labui.run_selected(page, RUN_MS)
    out = labui.code_cell(page, index).locator(".jp-Cell-outputArea")
    text = out.inner_text()
    assert "Loading widget" not in text and "interactive(" not in text, text
    # the static plot of every run, then the explorer: a slider over the learning rates, two
    # toggle buttons for the metric, and the plot the two drive
    static = out.locator(":scope > .jp-OutputArea-child > .jp-OutputArea-output[data-mime-type='image/png'] img")
    # axes, labels and lines paint 4-6% of these plots (measured); a blank picture paints 0
    assert static.count() == 1 and labui.image_size(static)[0] > 100
    assert labui.painted_share(static) > 0.015
    explorer = out.locator(".widget-interact")
    assert explorer.count() == 1, text
    handle = explorer.locator(".widget-slider .noUi-handle")
    readout = explorer.locator(".widget-slider .widget-readout")
    assert handle.is_visible() and readout.inner_text() == "0.0001"
    for name in ("accuracy", "eval_loss"):
        assert explorer.get_by_role("button", name=name).is_visible()
    plot = explorer.locator(".widget-output img")
    plot.wait_for(state="visible")
    assert labui.image_size(plot)[0] > 100
    assert labui.painted_share(plot) > 0.015

    before = plot.get_attribute("src")
    handle.focus()
    page.keyboard.press("ArrowRight")
    labui.wait_image_changes(explorer, ".widget-output img", before)
    assert readout.inner_text() == "0.0003"
    after_slider = plot.get_attribute("src")
    explorer.get_by_role("button", name="eval_loss").click()
    labui.wait_image_changes(explorer, ".widget-output img", after_slider)
    assert labui.error_outputs(page) == []
    explorer.scroll_into_view_if_needed()
    out.screenshot(path=str(artifacts / "lesson-07-explorer.png"))
