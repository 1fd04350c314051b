"""Plots more than one lesson draws; each returns its figure so a notebook shows it and a test
can inspect it."""

from __future__ import annotations

from typing import Any, Sequence


def plot_confusion(labels: Sequence[int], preds: Sequence[int], names: Sequence[str],
                   normalize: bool = False, title: str = "") -> Any:
    """Heatmap of the confusion matrix (rows: truth, columns: prediction), as counts or, with
    `normalize`, as the share of each true class: where a classifier's mistakes go."""
    import matplotlib.pyplot as plt
    import seaborn as sns
    from sklearn.metrics import confusion_matrix

    matrix = confusion_matrix(list(labels), list(preds), labels=list(range(len(names))),
                              normalize="true" if normalize else None)
    size = max(3.0, 0.45 * len(names) + 1.5)
    fig, ax = plt.subplots(figsize=(size + 0.8, size))
    sns.heatmap(matrix, annot=True, fmt=".2f" if normalize else "d", cmap="Blues",
                xticklabels=list(names), yticklabels=list(names), ax=ax, cbar=False)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or ("confusion matrix" + (" (share of each true class)" if normalize else "")))
    fig.tight_layout()
    return fig
