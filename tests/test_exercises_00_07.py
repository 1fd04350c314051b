"""Every exercise of lessons 00-07: correct variants must pass, classic mistakes must fail.

Each case is a small function a learner could plausibly write. A checker that accepts a wrong
case, or rejects a right one, fails here with the case's name.
"""

from __future__ import annotations

import collections
import math

import numpy as np
import pytest
import torch
from torch import nn

from course_utils.checks import FAILED, NOT_ATTEMPTED, PASSED, evaluate, learner_or_reference
from course_utils.text import qa
from course_utils.text.curves import gains
from course_utils.text.evaluation import confident_mistakes, optimizer_steps
from course_utils.text.ner import LABELS
from course_utils.vision.models import freeze_backbone, replace_head

# ---------------------------------------------------------------- 00


def to_device_comprehension(batch, device):
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def to_device_loop(batch, device):
    out = {}
    for key, value in batch.items():
        out[key] = value.to(device) if torch.is_tensor(value) else value
    return out


def to_device_drops_others(batch, device):
    return {k: v.to(device) for k, v in batch.items() if isinstance(v, torch.Tensor)}


def to_device_in_place(batch, device):
    for k, v in batch.items():
        if isinstance(v, torch.Tensor):
            batch[k] = v.to(device)
    return batch


def to_device_converts(batch, device):
    return {k: v.to(device, torch.float32) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def precision_tuple(cap):
    return "fp32" if cap is None else ("bf16" if cap >= (8, 0) else "fp16")


def precision_major(cap):
    if not cap:
        return "fp32"
    return "bf16" if cap[0] >= 8 else "fp16"


def precision_always_bf16(cap):
    return "fp32" if cap is None else "bf16"


def precision_minor_matters(cap):
    return "fp32" if cap is None else ("bf16" if cap[0] >= 8 and cap[1] >= 6 else "fp16")


def precision_cpu_fp16(cap):
    return "fp16" if cap is None else ("bf16" if cap >= (8, 0) else "fp16")


# ---------------------------------------------------------------- 01


def majority_counter(labels):
    return max(collections.Counter(labels).values()) / len(labels)


def majority_numpy(labels):
    return float(np.bincount(labels).max() / len(labels))


def majority_uniform(labels):
    return 1 / len(set(labels))


def majority_first_label(labels):
    return labels.count(labels[0]) / len(labels)


def gain_dicts(points):
    acc = {(p.init, p.per_class): p.accuracy for p in points}
    return {n: acc[("pretrained", n)] - acc[("scratch", n)] for n in {p.per_class for p in points}}


def gain_wrong_sign(points):
    return {n: -g for n, g in gains(points).items()}


def gain_assumes_order(points):
    return {points[i].per_class: points[i].accuracy - points[i + 1].accuracy for i in range(0, len(points), 2)}


def gain_keyed_by_examples(points):
    acc = {(p.init, p.examples): p.accuracy for p in points}
    return {n: acc[("pretrained", n)] - acc[("scratch", n)] for n in {p.examples for p in points}}


def freeze_weight(model):
    model.get_input_embeddings().weight.requires_grad_(False)


def freeze_module_params(model):
    for p in model.get_input_embeddings().parameters():
        p.requires_grad = False


def freeze_module_attribute(model):
    model.get_input_embeddings().requires_grad = False  # sets a plain attribute: freezes nothing


def freeze_all_embeddings(model):
    for name, p in model.named_parameters():
        if "embeddings" in name:
            p.requires_grad = False


def freeze_bert_only(model):
    model.bert.embeddings.word_embeddings.weight.requires_grad = False


# ---------------------------------------------------------------- 02


def freeze_then_head(model):
    for p in model.parameters():
        p.requires_grad = False
    for p in model.fc.parameters():
        p.requires_grad = True


def freeze_by_name(model):
    for name, p in model.named_parameters():
        p.requires_grad = name.startswith("fc.")


def freeze_eval_only(model):
    model.eval()


def freeze_convs_only(model):
    for name, p in model.named_parameters():
        if "conv" in name:
            p.requires_grad = False


def freeze_head_too(model):
    for p in model.parameters():
        p.requires_grad = False


def head_linear(model, k):
    model.fc = nn.Linear(model.fc.in_features, k)
    return model


def head_mlp(model, k):
    model.fc = nn.Sequential(nn.Linear(model.fc.in_features, 64), nn.ReLU(), nn.Dropout(0.5), nn.Linear(64, k))


def head_hard_coded(model, k):
    model.fc = nn.Linear(2048, k)
    return model


def head_frozen(model, k):
    model.fc = nn.Linear(model.fc.in_features, k)
    for p in model.fc.parameters():
        p.requires_grad = False
    return model


def head_unfreezes_all(model, k):
    model.fc = nn.Linear(model.fc.in_features, k)
    for p in model.parameters():
        p.requires_grad = True
    return model


def fraction_float(model):
    ps = list(model.parameters())
    return sum(p.numel() for p in ps if p.requires_grad) / sum(p.numel() for p in ps)


def fraction_numpy(model):
    return np.float64(fraction_float(model))


def fraction_tensor(model):
    ps = list(model.parameters())
    return torch.tensor(float(sum(p.numel() for p in ps if p.requires_grad))) / sum(p.numel() for p in ps)


def fraction_percent(model):
    return 100 * fraction_float(model)


def fraction_of_tensors(model):
    ps = list(model.parameters())
    return sum(p.requires_grad for p in ps) / len(ps)


def fraction_frozen(model):
    return 1 - fraction_float(model)


# ---------------------------------------------------------------- 03


def _stages(model):
    return [m for name, m in model.named_children() if name.startswith("layer")]


def unfreeze_good(model, n):
    for p in model.parameters():
        p.requires_grad = False
    for module in (_stages(model)[len(_stages(model)) - n:] if n else []) + [model.fc]:
        for p in module.parameters():
            p.requires_grad = True


def unfreeze_minus_zero(model, n):  # stages[-0:] is every stage
    for p in model.parameters():
        p.requires_grad = False
    for module in _stages(model)[-n:] + [model.fc]:
        for p in module.parameters():
            p.requires_grad = True


def unfreeze_children(model, n):
    for p in model.parameters():
        p.requires_grad = False
    for module in list(model.children())[-n:] if n else [model.fc]:
        for p in module.parameters():
            p.requires_grad = True


def unfreeze_never_freezes(model, n):
    for module in (_stages(model)[len(_stages(model)) - n:] if n else []) + [model.fc]:
        for p in module.parameters():
            p.requires_grad = True


def groups_good(model, head_lr, decay):
    groups = [{"params": [p for p in model.fc.parameters() if p.requires_grad], "lr": head_lr}]
    for depth, stage in enumerate(reversed(_stages(model)), start=1):
        params = [p for p in stage.parameters() if p.requires_grad]
        if params:
            groups.append({"params": params, "lr": head_lr * decay ** depth})
    return groups


def groups_wrong_direction(model, head_lr, decay):
    groups = [{"params": list(model.fc.parameters()), "lr": head_lr}]
    for depth, stage in enumerate(_stages(model), start=1):
        params = [p for p in stage.parameters() if p.requires_grad]
        if params:
            groups.append({"params": params, "lr": head_lr * decay ** depth})
    return groups


def groups_with_frozen(model, head_lr, decay):
    groups = [{"params": list(model.fc.parameters()), "lr": head_lr}]
    for depth, stage in enumerate(reversed(_stages(model)), start=1):
        groups.append({"params": list(stage.parameters()), "lr": head_lr * decay ** depth})
    return groups


def groups_same_lr(model, head_lr, decay):
    return [{"params": [p for p in model.parameters() if p.requires_grad], "lr": head_lr}]


# ---------------------------------------------------------------- 04


def tokenize_good(batch, tokenizer, max_length=32):
    return tokenizer(batch["text"], truncation=True, max_length=max_length)


def tokenize_padding_false(batch, tokenizer, max_length=32):
    return tokenizer(batch["text"], truncation=True, max_length=max_length, padding=False)


def tokenize_pads(batch, tokenizer, max_length=32):
    return tokenizer(batch["text"], truncation=True, max_length=max_length, padding="max_length")


def tokenize_no_truncation(batch, tokenizer, max_length=32):
    return tokenizer(batch["text"])


def tokenize_tensors(batch, tokenizer, max_length=32):
    return tokenizer(batch["text"], truncation=True, max_length=max_length, padding=True, return_tensors="pt")


def tokenize_one_by_one(batch, tokenizer, max_length=32):
    return tokenizer(batch["text"][0], truncation=True, max_length=max_length)


def metrics_good(eval_pred):
    from sklearn.metrics import accuracy_score, f1_score

    logits, labels = eval_pred
    preds = np.argmax(logits, axis=-1)
    return {"accuracy": accuracy_score(labels, preds), "macro_f1": f1_score(labels, preds, average="macro")}


def metrics_by_hand(eval_pred):
    logits, labels = eval_pred
    preds = np.asarray(logits).argmax(-1)
    f1s = []
    for c in np.unique(np.concatenate([labels, preds])):
        tp = np.sum((preds == c) & (labels == c))
        p = tp / max(np.sum(preds == c), 1)
        r = tp / max(np.sum(labels == c), 1)
        f1s.append(0.0 if tp == 0 else 2 * p * r / (p + r))
    return {"accuracy": float(np.mean(preds == labels)), "macro_f1": float(np.mean(f1s))}


def metrics_axis0(eval_pred):
    from sklearn.metrics import accuracy_score, f1_score

    logits, labels = eval_pred
    preds = np.argmax(logits, axis=0)
    return {"accuracy": accuracy_score(labels, preds), "macro_f1": f1_score(labels, preds, average="macro")}


def metrics_weighted(eval_pred):
    from sklearn.metrics import accuracy_score, f1_score

    logits, labels = eval_pred
    preds = np.argmax(logits, axis=-1)
    return {"accuracy": accuracy_score(labels, preds), "macro_f1": f1_score(labels, preds, average="weighted")}


def metrics_accuracy_only(eval_pred):
    logits, labels = eval_pred
    return {"accuracy": float(np.mean(np.argmax(logits, -1) == labels))}


def trainer_good(model, tokenizer, args, train_ds, eval_ds, metrics):
    from transformers import DataCollatorWithPadding, Trainer

    return Trainer(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                   processing_class=tokenizer, data_collator=DataCollatorWithPadding(tokenizer),
                   compute_metrics=metrics)


def trainer_default_collator(model, tokenizer, args, train_ds, eval_ds, metrics):
    from transformers import Trainer

    return Trainer(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                   processing_class=tokenizer, compute_metrics=metrics)


def trainer_old_tokenizer_argument(model, tokenizer, args, train_ds, eval_ds, metrics):
    from transformers import Trainer

    return Trainer(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                   tokenizer=tokenizer, compute_metrics=metrics)


def trainer_no_eval(model, tokenizer, args, train_ds, eval_ds, metrics):
    from transformers import Trainer

    return Trainer(model=model, args=args, train_dataset=train_ds, processing_class=tokenizer,
                   compute_metrics=metrics)


def trainer_no_metrics(model, tokenizer, args, train_ds, eval_ds, metrics):
    from transformers import Trainer

    return Trainer(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                   processing_class=tokenizer)


def trainer_pads_to_max(model, tokenizer, args, train_ds, eval_ds, metrics):
    from transformers import DataCollatorWithPadding, Trainer

    return Trainer(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                   processing_class=tokenizer, compute_metrics=metrics,
                   data_collator=DataCollatorWithPadding(tokenizer, padding="max_length", max_length=64))


def trainer_fresh_args(model, tokenizer, args, train_ds, eval_ds, metrics):
    import tempfile

    from transformers import Trainer, TrainingArguments

    return Trainer(model=model, args=TrainingArguments(tempfile.mkdtemp(), report_to="none", use_cpu=True),
                   train_dataset=train_ds, eval_dataset=eval_ds, processing_class=tokenizer,
                   compute_metrics=metrics)


# ---------------------------------------------------------------- 05


def align_first(word_ids, word_labels):
    out, prev = [], None
    for w in word_ids:
        out.append(-100 if w is None or w == prev else word_labels[w])
        prev = w
    return out


def align_first_every_piece(word_ids, word_labels):
    return [-100 if w is None else word_labels[w] for w in word_ids]


def align_first_zero_specials(word_ids, word_labels):
    out, prev = [], None
    for w in word_ids:
        out.append(0 if w is None else (-100 if w == prev else word_labels[w]))
        prev = w
    return out


def align_all(word_ids, word_labels, names=LABELS):
    out, prev = [], None
    for w in word_ids:
        if w is None:
            out.append(-100)
        elif w != prev:
            out.append(word_labels[w])
        else:
            name = names[word_labels[w]]
            out.append(names.index("I-" + name[2:]) if name.startswith("B-") else word_labels[w])
        prev = w
    return out


def align_all_keeps_b(word_ids, word_labels, names=LABELS):
    return [-100 if w is None else word_labels[w] for w in word_ids]


def align_all_drops_pieces(word_ids, word_labels, names=LABELS):
    return align_first(word_ids, word_labels)


# ---------------------------------------------------------------- 06


def span_good(offsets, seq, s, e):
    ctx = [i for i, sid in enumerate(seq) if sid == 1]
    if offsets[ctx[0]][0] > s or offsets[ctx[-1]][1] < e:
        return 0, 0
    return next(i for i in ctx if offsets[i][1] > s), max(i for i in ctx if offsets[i][0] < e)


def span_off_by_one(offsets, seq, s, e):
    a, b = span_good(offsets, seq, s, e)
    return (a, b + 1) if a else (a, b)


def span_no_cls(offsets, seq, s, e):
    ctx = [i for i, sid in enumerate(seq) if sid == 1]
    start = next((i for i in ctx if offsets[i][1] > s), ctx[-1])
    end = max((i for i in ctx if offsets[i][0] < e), default=ctx[0])
    return start, end


def span_uses_question(offsets, seq, s, e):
    start = next(i for i, o in enumerate(offsets) if o[1] > s and seq[i] is not None)
    end = max(i for i, o in enumerate(offsets) if o[0] < e and seq[i] is not None)
    return start, end


def f1_v11(prediction, truth):
    pred, gold = qa.normalize_answer(prediction).split(), qa.normalize_answer(truth).split()
    same = sum((collections.Counter(pred) & collections.Counter(gold)).values())
    if same == 0:
        return 0
    p, r = same / len(pred), same / len(gold)
    return 2 * p * r / (p + r)


def f1_v2_empty_rule(prediction, truth):
    pred, gold = qa.normalize_answer(prediction).split(), qa.normalize_answer(truth).split()
    if not pred or not gold:
        return float(pred == gold)
    return f1_v11(prediction, truth)


def f1_sets(prediction, truth):
    return f1_v11(" ".join(dict.fromkeys(prediction.split())), truth)


def f1_no_normalisation(prediction, truth):
    pred, gold = prediction.split(), truth.split()
    same = sum((collections.Counter(pred) & collections.Counter(gold)).values())
    return 0.0 if same == 0 else 2 * same / (len(pred) + len(gold))


# ---------------------------------------------------------------- 07


def mistakes_good(probs, labels, k=5):
    probs, labels = np.asarray(probs), np.asarray(labels)
    preds = probs.argmax(-1)
    wrong = [i for i in range(len(labels)) if preds[i] != labels[i]]
    return sorted(wrong, key=lambda i: -probs[i, preds[i]])[:k]


def mistakes_index_order(probs, labels, k=5):
    preds = np.asarray(probs).argmax(-1)
    return [i for i in range(len(labels)) if preds[i] != labels[i]][:k]


def mistakes_true_class(probs, labels, k=5):
    probs, labels = np.asarray(probs), np.asarray(labels)
    preds = probs.argmax(-1)
    wrong = [i for i in range(len(labels)) if preds[i] != labels[i]]
    return sorted(wrong, key=lambda i: -probs[i, labels[i]])[:k]


def mistakes_all_examples(probs, labels, k=5):
    probs = np.asarray(probs)
    return list(np.argsort(-probs.max(-1))[:k])


def steps_good(n, bs, ga, epochs, ratio):
    total = math.ceil(math.ceil(n / bs) / ga) * epochs
    return total, math.ceil(ratio * total)


def steps_round_warmup(n, bs, ga, epochs, ratio):
    total = math.ceil(math.ceil(n / bs) / ga) * epochs
    return total, round(ratio * total)


def steps_round_batches(n, bs, ga, epochs, ratio):
    total = math.ceil(round(n / bs) / ga) * epochs
    return total, math.ceil(ratio * total)


def steps_floor_accumulation(n, bs, ga, epochs, ratio):
    total = (math.ceil(n / bs) // ga) * epochs
    return total, math.ceil(ratio * total)


def steps_round_accumulation(n, bs, ga, epochs, ratio):
    total = round(math.ceil(n / bs) / ga) * epochs
    return total, math.ceil(ratio * total)


def steps_ignore_accumulation(n, bs, ga, epochs, ratio):
    total = math.ceil(n / bs) * epochs
    return total, math.ceil(ratio * total)


def stub(*args, **kwargs):
    raise NotImplementedError


RIGHT = {
    "00.1": [to_device_comprehension, to_device_loop],
    "00.2": [precision_tuple, precision_major],
    "01.1": [majority_counter, majority_numpy],
    "01.2": [freeze_weight, freeze_module_params],
    "01.3": [gain_dicts, gains],
    "02.1": [freeze_then_head, freeze_by_name],
    "02.2": [head_linear, head_mlp, lambda m, k: replace_head(m, k)],
    "02.3": [fraction_float, fraction_numpy, fraction_tensor],
    "03.1": [unfreeze_good],
    "03.2": [groups_good],
    "04.1": [tokenize_good, tokenize_padding_false],
    "04.2": [metrics_good, metrics_by_hand],
    "04.3": [trainer_good, trainer_default_collator],
    "05.1": [align_first],
    "05.2": [align_all],
    "06.1": [span_good, qa.answer_token_span],
    "06.2": [f1_v11, qa.f1],
    "07.1": [mistakes_good, confident_mistakes],
    "07.2": [steps_good, optimizer_steps],
}
WRONG = {
    "00.1": [to_device_drops_others, to_device_in_place, to_device_converts],
    "00.2": [precision_always_bf16, precision_minor_matters, precision_cpu_fp16],
    "01.1": [majority_uniform, majority_first_label],
    "01.2": [freeze_module_attribute, freeze_all_embeddings, freeze_bert_only],
    "01.3": [gain_wrong_sign, gain_assumes_order, gain_keyed_by_examples],
    "02.1": [freeze_eval_only, freeze_convs_only, freeze_head_too],
    "02.2": [head_hard_coded, head_frozen, head_unfreezes_all],
    "02.3": [fraction_percent, fraction_of_tensors, fraction_frozen],
    "03.1": [unfreeze_minus_zero, unfreeze_children, unfreeze_never_freezes],
    "03.2": [groups_wrong_direction, groups_with_frozen, groups_same_lr],
    "04.1": [tokenize_pads, tokenize_no_truncation, tokenize_tensors, tokenize_one_by_one],
    "04.2": [metrics_axis0, metrics_weighted, metrics_accuracy_only],
    "04.3": [trainer_old_tokenizer_argument, trainer_no_eval, trainer_no_metrics, trainer_pads_to_max,
             trainer_fresh_args],
    "05.1": [align_first_every_piece, align_first_zero_specials],
    "05.2": [align_all_keeps_b, align_all_drops_pieces],
    "06.1": [span_off_by_one, span_no_cls, span_uses_question],
    "06.2": [f1_v2_empty_rule, f1_sets, f1_no_normalisation, qa.exact_match],
    "07.1": [mistakes_index_order, mistakes_true_class, mistakes_all_examples],
    "07.2": [steps_round_warmup, steps_round_batches, steps_floor_accumulation, steps_round_accumulation,
             steps_ignore_accumulation],
}


def _cases(table):
    return [pytest.param(ex, f, id=f"{ex}-{getattr(f, '__name__', 'lambda')}") for ex, fs in table.items() for f in fs]


@pytest.mark.parametrize("exercise,answer", _cases(RIGHT))
def test_correct_variants_pass(exercise, answer):
    result = evaluate(exercise, answer)
    assert result.status == PASSED, result.line()


@pytest.mark.parametrize("exercise,answer", _cases(WRONG))
def test_classic_mistakes_fail_with_a_hint_or_message(exercise, answer):
    result = evaluate(exercise, answer)
    assert result.status == FAILED, result.line()
    assert result.message


def test_every_exercise_of_lessons_00_to_07_is_covered():
    from course_utils.checks import registered

    ids = [i for lesson in ("00", "01", "02", "03", "04", "05", "06", "07") for i in registered(lesson)]
    assert sorted(RIGHT) == sorted(WRONG) == sorted(ids)
    for exercise in ids:
        assert evaluate(exercise, stub).status == NOT_ATTEMPTED


def test_misleading_hints_are_gone():
    assert "model.eval()" in evaluate("02.1", freeze_eval_only).hint
    assert "2,048" in evaluate("02.2", head_hard_coded).hint
    assert "stages[-0:]" in evaluate("03.1", unfreeze_minus_zero).hint
    assert "ceil" in evaluate("07.2", steps_round_warmup).hint
    assert "processing_class" in evaluate("04.3", trainer_old_tokenizer_argument).hint


def test_learner_or_reference_picks_a_passing_answer_and_falls_back_visibly(capsys):
    assert learner_or_reference("07.2", steps_good, optimizer_steps) is steps_good
    assert "using your `steps_good`" in capsys.readouterr().out
    assert learner_or_reference("07.2", stub, optimizer_steps) is optimizer_steps
    assert "using the course's version until yours passes (exercise 07.2: not attempted)" in capsys.readouterr().out
    assert learner_or_reference("07.2", steps_round_warmup, optimizer_steps) is optimizer_steps
    assert "07.2: failed" in capsys.readouterr().out
    assert learner_or_reference("02.1", None, freeze_backbone) is freeze_backbone
