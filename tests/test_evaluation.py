"""Evaluation helpers: confident mistakes, step counting against Trainer, plots, widget fallback."""

import math

import numpy as np
import pytest

from course_utils.plots import plot_confusion
from course_utils.text import evaluation
from course_utils.checks import evaluate


def test_confident_mistakes_order_and_k():
    probs = np.array([[0.9, 0.1], [0.3, 0.7], [0.45, 0.55], [0.2, 0.8]])
    labels = [0, 0, 0, 1]
    assert evaluation.confident_mistakes(probs, labels, k=5) == [1, 2]
    assert evaluation.confident_mistakes(probs, labels, k=1) == [1]
    assert evaluation.confident_mistakes(probs, [0, 1, 1, 1]) == []


@pytest.mark.parametrize("n,bs,accum,epochs", [(1000, 16, 1, 3), (1000, 16, 4, 2), (200, 16, 2, 4), (7, 8, 3, 1)])
def test_optimizer_steps_match_trainer(n, bs, accum, epochs, tmp_path):
    import torch
    from datasets import Dataset
    from transformers import Trainer, TrainingArguments

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Linear(1, 1)

        def forward(self, x, labels=None):
            loss = ((self.w(x[:, None]).squeeze(-1) - labels) ** 2).mean()
            return {"loss": loss}

    ds = Dataset.from_dict({"x": [0.0] * n, "labels": [0.0] * n}).with_format("torch")
    args = TrainingArguments(str(tmp_path), per_device_train_batch_size=bs, gradient_accumulation_steps=accum,
                             num_train_epochs=epochs, report_to="none", save_strategy="no", use_cpu=True,
                             disable_tqdm=True, logging_strategy="no")
    trainer = Trainer(model=Tiny(), args=args, train_dataset=ds)
    trainer.train()
    total, warmup = evaluation.optimizer_steps(n, bs, accum, epochs, 0.1)
    assert trainer.state.global_step == total
    assert warmup == math.ceil(0.1 * total)


def test_report_and_plots():
    import matplotlib

    matplotlib.use("agg")
    labels, preds, names = [0, 1, 2, 2], [0, 2, 2, 2], ["a", "b", "c"]
    assert "precision" in evaluation.text_report(labels, preds, names)
    fig = plot_confusion(labels, preds, names, normalize=True)
    shares = [float(t.get_text()) for t in fig.axes[0].texts]
    assert shares == [1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0]  # each true row sums to 1
    points = [evaluation.SweepPoint(lr, e, 0.5 + 0.1 * e, 1.0) for lr in (1e-5, 1e-4) for e in (1, 2)]
    assert evaluation.plot_sweep(points) is not None
    assert not evaluation.widget_frontend_available()  # plain pytest: no kernel, no widgets
    assert evaluation.sweep_explorer(points) is not None  # falls back to a static figure


def test_checkers_reject_classic_mistakes():
    assert evaluate("07.1", evaluation.confident_mistakes).passed
    assert evaluate("07.2", evaluation.optimizer_steps).passed

    def index_order(probs, labels, k=5):
        return sorted(evaluation.confident_mistakes(probs, labels, 100))[:k]

    def by_true_class(probs, labels, k=5):
        probs, labels = np.asarray(probs), np.asarray(labels)
        wrong = [i for i in range(len(labels)) if probs[i].argmax() != labels[i]]
        return sorted(wrong, key=lambda i: probs[i, labels[i]])[:k]

    for wrong in (index_order, by_true_class):
        assert evaluate("07.1", wrong).status == "failed"

    def floor_batches(n, bs, accum, epochs, ratio):
        total = n // bs // accum * epochs
        return total, math.ceil(ratio * total)

    def no_accum(n, bs, accum, epochs, ratio):
        return evaluation.optimizer_steps(n, bs, 1, epochs, ratio)

    def floor_accum(n, bs, accum, epochs, ratio):
        total = math.ceil(n / bs) // accum * epochs
        return total, math.ceil(ratio * total)

    for wrong in (floor_batches, no_accum, floor_accum):
        assert evaluate("07.2", wrong).status == "failed", wrong.__name__
