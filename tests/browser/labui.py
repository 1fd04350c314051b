"""What a learner does in JupyterLab, as Playwright steps: open a notebook, run cells, read outputs.

Every selector is scoped to the notebook in the visible tab: a restored workspace may hold
other notebooks, hidden.
"""

from __future__ import annotations

from typing import Any

NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook"
CODE_CELLS = NOTEBOOK + " .jp-CodeCell"

# Every code cell's execution count: null while it waits or runs ("[*]") or never ran ("[ ]").
_COUNTS = """nb => [...document.querySelectorAll(nb + ' .jp-CodeCell .jp-InputPrompt')].map(p => {
    const m = p.textContent.match(/\\[(\\d+)\\]/); return m ? Number(m[1]) : null; })"""


def open_notebook(page: Any, url: str, cells: int, timeout_ms: float = 120_000) -> None:
    """Open a notebook, wait until all its `cells` are on the page and its kernel is idle."""
    page.goto(url)
    page.wait_for_function("([nb, n]) => document.querySelectorAll(nb + ' .jp-Cell').length >= n",
                           arg=[NOTEBOOK, cells], timeout=timeout_ms)
    wait_kernel_idle(page, timeout_ms)


def wait_kernel_idle(page: Any, timeout_ms: float) -> None:
    """Wait until the current notebook's kernel is connected and idle (the toolbar's indicator
    says "idle" before a kernel even started, so ask the app, which the server exposes)."""
    page.wait_for_function("""() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
        const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
        return !!k && k.connectionStatus === 'connected' && k.status === 'idle'; }""",
                           timeout=timeout_ms, polling=250)
    page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator"
                 "[data-status='idle']").wait_for(timeout=timeout_ms)


def menu(page: Any, top: str, item: str) -> None:
    """Click a main-menu entry, e.g. menu(page, "Run", "Run All Cells")."""
    page.locator(".lm-MenuBar-itemLabel", has_text=top).first.click()
    page.locator(".lm-Menu-item:visible .lm-Menu-itemLabel").get_by_text(item, exact=True).click()


def execution_counts(page: Any) -> list[int | None]:
    """The execution count shown left of every code cell."""
    return page.evaluate(_COUNTS, NOTEBOOK)


def wait_cells_ran(page: Any, cells: list[int] | None, after: int, timeout_ms: float) -> None:
    """Wait until the given code cells (all when None) show an execution count above `after`,
    no cell is queued or running, and the kernel is idle."""
    page.wait_for_function(
        f"""([nb, after, wanted]) => {{ const counts = ({_COUNTS})(nb);
            const idx = wanted === null ? counts.map((_, i) => i) : wanted;
            const busy = [...document.querySelectorAll(nb + ' .jp-InputPrompt')]
                .some(p => p.textContent.includes('*'));
            return !busy && idx.every(i => counts[i] !== null && counts[i] > after); }}""",
        arg=[NOTEBOOK, after, cells], timeout=timeout_ms, polling=250)
    wait_kernel_idle(page, timeout_ms)


def _last_count(page: Any) -> int:
    return max([c for c in execution_counts(page) if c is not None], default=0)


def run_all(page: Any, timeout_ms: float) -> None:
    """Run > Run All Cells, then wait for every code cell to finish."""
    before = _last_count(page)
    menu(page, "Run", "Run All Cells")
    wait_cells_ran(page, None, before, timeout_ms)


def code_cell(page: Any, index: int) -> Any:
    """The locator of the index-th code cell (0-based, counting code cells only)."""
    return page.locator(CODE_CELLS).nth(index)


def code_cell_count(page: Any) -> int:
    """How many code cells the open notebook shows."""
    return page.locator(CODE_CELLS).count()


def code_cell_index(page: Any, text: str) -> int:
    """The index of the first code cell whose source contains `text`."""
    for i, source in enumerate(page.locator(CODE_CELLS + " .cm-content").all_inner_texts()):
        if text in source:
            return i
    raise LookupError(f"no code cell contains {text!r}")


def cell_source(page: Any, index: int) -> str:
    """The source of a code cell as its editor shows it."""
    return code_cell(page, index).locator(".cm-content").inner_text()


def select_cells(page: Any, first: int, last: int) -> None:
    """Select code cells first..last in command mode, clicking their prompts as a learner would."""
    code_cell(page, first).locator(".jp-InputArea-prompt").click()
    if last != first:
        code_cell(page, last).locator(".jp-InputArea-prompt").click(modifiers=["Shift"])


def run_selected(page: Any, timeout_ms: float) -> None:
    """Shift+Enter on the selected cells, then wait for them to finish."""
    selected = page.evaluate("""nb => [...document.querySelectorAll(nb + ' .jp-CodeCell')]
        .map((c, i) => c.classList.contains('jp-mod-selected') || c.classList.contains('jp-mod-active') ? i : -1)
        .filter(i => i >= 0)""", NOTEBOOK)
    if not selected:
        raise RuntimeError("no code cell is selected")
    before = _last_count(page)
    page.keyboard.press("Shift+Enter")
    wait_cells_ran(page, selected, before, timeout_ms)


def _type_line(page: Any, text: str) -> None:
    if "\n" in text:
        raise ValueError("type one line at a time: the editor indents after a newline")
    page.keyboard.type(text)


def replace_cell_source(page: Any, index: int, text: str) -> None:
    """Click into a code cell's editor, select all of it and type `text` over it."""
    code_cell(page, index).locator(".cm-content").click()
    page.keyboard.press("Control+a")
    _type_line(page, text)
    page.keyboard.press("Control+Home")  # scroll the editor back to the line's start
    page.keyboard.press("Escape")


def add_cell_below(page: Any, index: int, text: str) -> None:
    """Insert a code cell under a code cell (key B), type one line into it, leave it selected."""
    select_cells(page, index, index)
    page.keyboard.press("b")
    page.keyboard.press("Enter")
    _type_line(page, text)
    page.keyboard.press("Escape")


def output_texts(page: Any) -> list[str]:
    """The visible text of every code cell's output area, in order."""
    return [cell.locator(".jp-Cell-outputArea").inner_text() for cell in page.locator(CODE_CELLS).all()]


def error_outputs(page: Any) -> list[str]:
    """Texts of the outputs JupyterLab renders from an error (a traceback) in the notebook."""
    return page.evaluate("""nb => [...document.querySelectorAll(nb + ' .jp-OutputArea-output')]
        .filter(o => o.getAttribute('data-mime-type') === 'application/vnd.jupyter.stderr'
                     && /Traceback|Error\\b/.test(o.textContent))
        .map(o => o.textContent.slice(0, 2000))""", NOTEBOOK)


def image_size(img: Any) -> tuple[float, float]:
    """The rendered width and height of an <img>, (0, 0) when it did not load."""
    return tuple(img.evaluate("i => i.complete && i.naturalWidth > 0 ? [i.getBoundingClientRect().width,"
                              " i.getBoundingClientRect().height] : [0, 0]"))


def painted_share(img: Any) -> float:
    """The share of an <img>'s pixels that are drawn (opaque and not white): a broken or
    truncated picture still has a size, but nothing painted."""
    return img.evaluate("""i => { const c = document.createElement('canvas');
        c.width = i.naturalWidth; c.height = i.naturalHeight;
        if (!c.width || !c.height) return 0;
        const g = c.getContext('2d'); g.drawImage(i, 0, 0);
        const d = g.getImageData(0, 0, c.width, c.height).data; let n = 0;
        for (let k = 0; k < d.length; k += 4)
            if (d[k + 3] > 128 && (d[k] < 230 || d[k + 1] < 230 || d[k + 2] < 230)) n++;
        return n / (c.width * c.height); }""")


def wait_image_changes(container: Any, css: str, src: str, timeout_ms: float = 60_000) -> None:
    """Wait until the <img> matching `css` inside `container` shows another picture than `src`
    (a widget redrew its plot; the element itself may have been replaced)."""
    container.page.wait_for_function(
        "([el, css, s]) => { const i = el.querySelector(css); return !!i && i.complete && i.src !== s; }",
        arg=[container.element_handle(), css, src], timeout=timeout_ms, polling=100)
