"""The HTML report of a graded class: pass rates per exercise with a plot, then every verdict."""

from __future__ import annotations

import base64
import html
import io
from collections import defaultdict

from course_utils.checks import PASSED


def pass_rates(grades) -> dict[str, tuple[int, int]]:
    """(passed, graded) per exercise id, over every submission that was graded."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for g in grades:
        for r in g.results:
            counts[r.exercise][0] += r.status == PASSED
            counts[r.exercise][1] += 1
    return {k: (v[0], v[1]) for k, v in sorted(counts.items())}


def _plot(rates: dict[str, tuple[int, int]]) -> str:
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(4, 0.6 * len(rates) + 2), 3))
    names = list(rates)
    ax.bar(names, [p / n if n else 0 for p, n in rates.values()], color="#4c72b0")
    ax.set_ylim(0, 1)
    ax.set_ylabel("pass rate")
    ax.set_title("pass rate per exercise")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def html_report(grades) -> str:
    """A self-contained HTML page (the plot is embedded) an instructor can open or share."""
    rates = pass_rates(grades)
    esc = html.escape
    parts = ["<!doctype html><meta charset='utf-8'><title>course check report</title>",
             "<style>body{font-family:sans-serif;margin:2em}td,th{padding:4px 8px;"
             "border-bottom:1px solid #ddd;text-align:left}.passed{color:#1a7f37}"
             ".failed,.error{color:#cf222e}.not{color:#9a6700}</style>",
             f"<h1>Grades: {len(grades)} submissions</h1>",
             "<h2>Pass rate per exercise</h2><table><tr><th>exercise</th><th>passed</th>"
             "<th>graded</th><th>rate</th></tr>"]
    for exercise, (passed, graded) in rates.items():
        parts.append(f"<tr><td>{esc(exercise)}</td><td>{passed}</td><td>{graded}</td>"
                     f"<td>{passed / graded:.0%}</td></tr>")
    parts.append("</table>")
    if rates:
        parts.append(f"<img alt='pass rate per exercise' src='data:image/png;base64,{_plot(rates)}'>")
    parts.append("<h2>Submissions</h2><table><tr><th>submission</th><th>lesson</th><th>score</th>"
                 "<th>verdicts</th><th>problem / notes</th></tr>")
    for g in grades:
        verdicts = "<br>".join(
            f"<span class='{esc(r.status.split()[0])}'>{esc(r.exercise)}: {esc(r.status)}</span>"
            + (f" — {esc(r.message)}" if r.message else "") for r in g.results)
        remarks = "<br>".join(esc(x) for x in ([g.problem] if g.problem else []) + g.notes)
        score = f"{g.score:g}/{len(g.results)}" if g.results else "-"
        parts.append(f"<tr><td>{esc(g.path)}</td><td>{esc(g.lesson or '?')}</td><td>{score}</td>"
                     f"<td>{verdicts}</td><td>{remarks}</td></tr>")
    parts.append("</table>")
    return "\n".join(parts)
