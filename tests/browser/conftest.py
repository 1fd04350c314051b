"""Fixtures of the browser tests: Debian's Chromium driven by Playwright, a real `jupyter lab`.

They skip, saying why, where /usr/bin/chromium (or COURSE_CHROMIUM) or the playwright package is
missing; `.ci/run` installs both, so in CI they run. Screenshots go to test-artifacts/browser/
(or COURSE_TEST_ARTIFACTS), one per step and one of every failing test's page.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import CHROMIUM, CHROMIUM_ARGS, ROOT, GradingRun, LabServer, new_page, start_lab


def require_browser() -> None:
    """Skip the calling test where no browser can be driven, with the reason."""
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set COURSE_CHROMIUM)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("the playwright package is not installed (pip install -e '.[dev]')")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    """Keep each phase's report on the test, so a page fixture can tell that its test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """The folder that screenshots are written to (git-ignored)."""
    folder = Path(os.environ.get("COURSE_TEST_ARTIFACTS", ROOT / "test-artifacts" / "browser"))
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("FAILED-*.png"):
        stale.unlink()
    return folder


@pytest.fixture(scope="session")
def browser_context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One headless Chromium with a fresh profile for the whole session."""
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=str(CHROMIUM),
            headless=True, args=CHROMIUM_ARGS, viewport={"width": 1200, "height": 900})
        context.set_default_timeout(60_000)
        yield context
        context.close()


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    """`jupyter lab` on a free port with a token, serving a scratch copy of the course."""
    require_browser()
    server = start_lab(tmp_path_factory.mktemp("lab"))
    yield server
    server.stop()


@pytest.fixture
def page(browser_context: Any, request: pytest.FixtureRequest, artifacts: Path) -> Iterator[Any]:
    """A fresh browser tab for one test."""
    yield from new_page(browser_context, request, artifacts)


@pytest.fixture(scope="session")
def grading(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GradingRun]:
    """The grading run behind the HTML report (started early by `_grade_while_browsing`)."""
    require_browser()
    run = GradingRun(tmp_path_factory.mktemp("grading"))
    yield run
    if run.process.poll() is None:
        run.process.kill()
        run.process.wait()


@pytest.fixture(scope="session", autouse=True)
def _grade_while_browsing(request: pytest.FixtureRequest) -> None:
    """Start the grading run at the first browser test when a selected test needs it, so it
    overlaps the JupyterLab tests instead of adding its time after them."""
    if any("grading" in getattr(item, "fixturenames", ()) for item in request.session.items):
        request.getfixturevalue("grading")
