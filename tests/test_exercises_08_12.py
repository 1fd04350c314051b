"""Checkers of lessons 08-12 accept correct variants and reject the classic mistakes; the helper
that lets a passing answer drive the training falls back visibly otherwise."""

import json
import warnings

import pytest
import torch

from course_utils.checks import FAILED, NOT_ATTEMPTED, PASSED, evaluate, learner_or_reference
from course_utils.llm.causal_lm import ONE_WORD_SYSTEM
from course_utils.llm.peft_tools import GB
from course_utils.text.data import normalize_text
from course_utils.text.quality import jaccard, shingles

warnings.filterwarnings("ignore")


def status(exercise, answer):
    return evaluate(exercise, answer).status


def stub(*args, **kwargs):
    raise NotImplementedError


# ---------------------------------------------------------------- learner_or_reference


def test_learner_or_reference_uses_a_passing_answer(capsys):
    good = lambda q, a: {"messages": [{"role": "system", "content": ONE_WORD_SYSTEM},
                                      {"role": "user", "content": q.strip()},
                                      {"role": "assistant", "content": a.strip()}]}
    assert learner_or_reference("11.1", good, "reference") is good
    assert "using your `<lambda>`" in capsys.readouterr().out


@pytest.mark.parametrize("answer", [stub, lambda q, a: {"messages": []}])
def test_learner_or_reference_falls_back_out_loud(capsys, answer):
    assert learner_or_reference("11.1", answer, "reference") == "reference"
    assert "using the course's version until yours passes" in capsys.readouterr().out


# ---------------------------------------------------------------- 08


def hand_lora(x, weight, bias, A, B, alpha, r):
    return x @ weight.T + bias + (alpha / r) * (x @ A.T) @ B.T


def test_08_1_lora_forward():
    assert status("08.1", hand_lora) == PASSED
    assert status("08.1", lambda x, W, b, A, B, a, r: torch.addmm(b, x, W.T) + a / r * (x @ (B @ A).T)) == PASSED
    assert status("08.1", lambda x, W, b, A, B, a, r: x @ W.T + b + (x @ A.T) @ B.T) == FAILED
    assert status("08.1", lambda x, W, b, A, B, a, r: x @ W.T + b + (r / a) * (x @ A.T) @ B.T) == FAILED
    assert status("08.1", lambda x, W, b, A, B, a, r: x @ W.T + (a / r) * (x @ A.T) @ B.T) == FAILED
    assert status("08.1", stub) == NOT_ATTEMPTED


def test_08_2_targets():
    good = {"bert": ["query", "value"], "distilbert": ["q_lin", "v_lin"], "llama": ["q_proj", "v_proj"]}
    assert status("08.2", lambda: good) == PASSED
    assert status("08.2", lambda: dict(good, llama=["self_attn.q_proj", "self_attn.v_proj"])) == PASSED
    assert status("08.2", lambda: dict(good, bert=["query", "key", "value"])) == FAILED
    assert status("08.2", lambda: dict(good, llama=["q_proj"])) == FAILED
    assert status("08.2", lambda: dict(good, distilbert=["dense"])) == FAILED


def lora_config(r, **overrides):
    from peft import LoraConfig

    kwargs = dict(task_type="CAUSAL_LM", r=r, lora_alpha=2 * r, lora_dropout=0.0, target_modules=["q_proj", "v_proj"])
    return LoraConfig(**{**kwargs, **overrides})


def test_08_3_style_lora_config():
    from peft import TaskType

    assert status("08.3", lora_config) == PASSED
    assert status("08.3", lambda r: lora_config(r, task_type=TaskType.CAUSAL_LM, target_modules={"v_proj", "q_proj"})) == PASSED
    assert status("08.3", lambda r: lora_config(r, task_type="SEQ_CLS")) == FAILED
    assert status("08.3", lambda r: lora_config(r, lora_alpha=16)) == FAILED  # alpha fixed, not 2r
    assert status("08.3", lambda r: lora_config(8)) == FAILED  # ignores the rank it is given
    assert status("08.3", lambda r: lora_config(r, target_modules=["q_proj", "k_proj", "v_proj"])) == FAILED
    assert status("08.3", lambda r: lora_config(r, lora_dropout=0.05)) == FAILED
    assert status("08.3", lambda r: {"r": r}) == FAILED
    assert status("08.3", stub) == NOT_ATTEMPTED


def test_08_3_reference_passes_and_drives_lora_finetune():
    from course_utils.llm import causal_lm as clm

    assert status("08.3", clm.style_lora_config) == PASSED
    model, tok = clm.load_base(progress=False)
    pairs = clm.style_pairs()[0][:8]
    peft_model, losses = clm.lora_finetune(model, tok, pairs, config=lora_config(4), steps=2, progress=False)
    assert peft_model.peft_config["default"].r == 4 and len(losses) == 2


# ---------------------------------------------------------------- 09


def nf4(n, dq):
    return n / 2 + (n / 64 + 4 * n / (64 * 256) if dq else 4 * n / 64)


def test_09_1_nf4_bytes():
    assert status("09.1", nf4) == PASSED
    assert status("09.1", lambda n, dq: n * (4 + (8 / 64 + 32 / 16384 if dq else 32 / 64)) / 8) == PASSED
    assert status("09.1", lambda n, dq: n / 2) == FAILED
    assert status("09.1", lambda n, dq: nf4(n, dq) * 8) == FAILED
    assert status("09.1", lambda n, dq: nf4(n, False)) == FAILED  # double quantisation ignored


def bnb(dtype, **overrides):
    from transformers import BitsAndBytesConfig

    kwargs = dict(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                  bnb_4bit_compute_dtype=dtype)
    return BitsAndBytesConfig(**{**kwargs, **overrides})


def test_09_2_qlora_config():
    from course_utils.llm.peft_tools import bnb_config

    assert status("09.2", bnb) == PASSED
    assert status("09.2", lambda d: bnb_config(4, d)) == PASSED
    assert status("09.2", lambda d: bnb(d, bnb_4bit_quant_type="fp4")) == FAILED
    assert status("09.2", lambda d: bnb(d, bnb_4bit_use_double_quant=False)) == FAILED
    assert status("09.2", lambda d: bnb(torch.float16)) == FAILED  # compute dtype not passed on
    assert status("09.2", lambda d: bnb_config(8, d)) == FAILED
    assert status("09.2", stub) == NOT_ATTEMPTED


NF4 = (4 + 8 / 64 + 32 / 16384) / 8


def static(p, m, share):
    adapter = p * share * 16
    if m == "full":
        return p * 16 / GB
    w = p * 2 if m == "lora" else p * (0.97 * NF4 + 0.06)
    return (w + adapter) / GB


def test_09_3_static_gb():
    assert status("09.3", static) == PASSED
    assert status("09.3", lambda p, m, s: {"full": p * 16, "lora": p * (2 + 16 * s),
                                           "qlora": p * (0.97 * NF4 + 0.03 * 2 + 16 * s)}[m] / 1024**3) == PASSED
    assert status("09.3", lambda p, m, s: static(p, m, s) * GB / 1e9) == FAILED  # GB, not GiB
    assert status("09.3", lambda p, m, s: p * 2 / GB) == FAILED
    assert status("09.3", lambda p, m, s: p * 12 / GB if m == "full" else static(p, m, s)) == FAILED  # no fp32 master


def test_09_3_rejects_leaving_out_the_adapters_fp32_weights():
    def no_adapter_weights(p, m, s):
        if m == "full":
            return p * 16 / GB
        base = p * 2 if m == "lora" else p * (0.97 * NF4 + 0.06)
        return (base + p * s * (4 + 8)) / GB  # gradient + AdamW, but no fp32 weight

    result = evaluate("09.3", no_adapter_weights)
    assert result.status == FAILED and "adapter's own fp32 weights" in result.message


# ---------------------------------------------------------------- 10


def set_up(model, method):
    from peft import LoraConfig, get_peft_model

    if method == "full":
        return model.requires_grad_(True)
    if method == "feature_extraction":
        model.requires_grad_(False)
        model.get_output_embeddings().weight.requires_grad_(True)
        return model
    return get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", r=8, lora_alpha=16, lora_dropout=0.0,
                                            target_modules=["q_proj", "v_proj"]))


def test_10_1_set_up():
    from course_utils.llm.methods import set_up as course_set_up

    assert status("10.1", set_up) == PASSED
    assert status("10.1", course_set_up) == PASSED

    def full_keeps_frozen(model, method):
        return model if method == "full" else set_up(model, method)

    def fe_unfreezes_without_freezing(model, method):
        if method == "feature_extraction":
            model.get_output_embeddings().weight.requires_grad_(True)
            return model
        return set_up(model, method)

    def lora_everywhere(model, method):
        from peft import LoraConfig, get_peft_model

        if method != "lora":
            return set_up(model, method)
        return get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", r=8, lora_alpha=16, lora_dropout=0.0,
                                                target_modules="all-linear"))

    def lora_then_unfrozen(model, method):
        return set_up(model, method).requires_grad_(True) if method == "lora" else set_up(model, method)

    def lora_other_rank(model, method):
        from peft import LoraConfig, get_peft_model

        if method != "lora":
            return set_up(model, method)
        return get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))

    for wrong in (full_keeps_frozen, fe_unfreezes_without_freezing, lora_everywhere, lora_then_unfrozen,
                  lora_other_rank):
        assert status("10.1", wrong) == FAILED, wrong.__name__
    assert status("10.1", stub) == NOT_ATTEMPTED


def test_10_1_answer_drives_the_comparison():
    from course_utils.llm.methods import prepare

    seen = []
    model, _ = prepare("feature_extraction", setup=lambda m, method: seen.append(method) or set_up(m, method))
    assert seen == ["feature_extraction"]
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == model.get_input_embeddings().weight.numel()  # tied head = embedding matrix
    seen.clear()
    prepare("qlora", setup=lambda m, method: seen.append(method) or m)
    assert seen == []  # QLoRA loads its own 4-bit base and adapter


def frac(m):
    ps = list(m.parameters())
    return sum(p.numel() for p in ps if p.requires_grad) / sum(p.numel() for p in ps)


def test_10_2_trainable_fraction():
    assert status("10.2", frac) == PASSED
    assert status("10.2", lambda m: 100 * frac(m)) == FAILED
    assert status("10.2", lambda m: sum(p.numel() for p in m.parameters() if p.requires_grad)
                  / sum(p.numel() for _, p in m.named_parameters(remove_duplicate=False))) == FAILED
    assert status("10.2", lambda m: sum(p.requires_grad for p in m.parameters()) / len(list(m.parameters()))) == FAILED


def choose(rows, budget):
    fits = [r for r in rows if r["peak_mb"] <= budget]
    return min(fits, key=lambda r: (-r["metric"], r["peak_mb"]))["method"] if fits else None


def test_10_3_choose_method():
    from course_utils.llm.methods import choose_method

    assert status("10.3", choose) == PASSED
    assert status("10.3", choose_method) == PASSED
    assert status("10.3", lambda rows, b: (sorted((r for r in rows if r["peak_mb"] <= b),
                                                  key=lambda r: (-r["metric"], r["peak_mb"])) or [{"method": None}])[0]["method"]) == PASSED
    assert status("10.3", lambda rows, b: max(rows, key=lambda r: r["metric"])["method"]) == FAILED
    assert status("10.3", lambda rows, b: choose([r for r in rows if r["peak_mb"] < b], b)) == FAILED  # < not <=


def test_10_3_rejects_mutating_the_callers_list():
    def sorts_in_place(rows, budget):
        rows.sort(key=lambda r: (-r["metric"], r["peak_mb"]))
        return next((r["method"] for r in rows if r["peak_mb"] <= budget), None)

    def filters_in_place(rows, budget):
        rows[:] = [r for r in rows if r["peak_mb"] <= budget]
        return choose(rows, budget)

    def edits_rows(rows, budget):
        for r in rows:
            r["score"] = -r["metric"]
        return choose(rows, budget)

    for wrong in (sorts_in_place, filters_in_place, edits_rows):
        result = evaluate("10.3", wrong)
        assert result.status == FAILED and "changed the rows" in result.message, wrong.__name__


# ---------------------------------------------------------------- 11


def to_example(q, a):
    return {"messages": [{"role": "system", "content": ONE_WORD_SYSTEM}, {"role": "user", "content": q.strip()},
                         {"role": "assistant", "content": a.strip()}]}


def test_11_1_to_example():
    from course_utils.llm.chat_data import chat_example

    assert status("11.1", to_example) == PASSED
    assert status("11.1", lambda q, a: chat_example(q.strip(), a.strip(), system=ONE_WORD_SYSTEM)) == PASSED
    assert status("11.1", lambda q, a: json.dumps(to_example(q, a))) == FAILED
    assert status("11.1", lambda q, a: to_example(q, a)["messages"]) == FAILED
    assert status("11.1", lambda q, a: chat_example(q.strip(), a.strip())) == FAILED  # no system prompt
    assert status("11.1", lambda q, a: chat_example(q, a, system=ONE_WORD_SYSTEM)) == FAILED  # not stripped
    assert status("11.1", lambda q, a: chat_example(q.strip(), a.strip(), system="Be brief.")) == FAILED
    assert status("11.1", lambda q, a: dict(to_example(q, a), id=1)) == FAILED
    assert status("11.1", stub) == NOT_ATTEMPTED


def test_11_2_ticket_to_example():
    from course_utils.llm.chat_data import chat_example
    from course_utils.llm.support_tickets import SUPPORT_SYSTEM

    def good(t):
        reply = t["agent_reply"].strip()
        return chat_example(t["subject"].strip() + "\n\n" + t["body"].strip(), reply, system=SUPPORT_SYSTEM) if reply else None

    def not_stripped(t):
        return chat_example(t["subject"] + "\n\n" + t["body"], t["agent_reply"], system=SUPPORT_SYSTEM) if t["agent_reply"].strip() else None

    assert status("11.2", good) == PASSED
    assert status("11.2", lambda t: chat_example(f"{t['subject'].strip()}\n\n{t['body'].strip()}",
                                                 t["agent_reply"].strip(), system=SUPPORT_SYSTEM) if t["agent_reply"].strip() else None) == PASSED
    assert status("11.2", not_stripped) == FAILED
    assert status("11.2", lambda t: chat_example(t["subject"].strip(), t["agent_reply"].strip(), system=SUPPORT_SYSTEM)) == FAILED
    assert status("11.2", lambda t: good(t) and chat_example(t["subject"].strip() + "\n\n" + t["body"].strip(),
                                                             t["agent_reply"].strip())) == FAILED  # no system


def fix_line(line):
    try:
        ex = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(ex, dict) or not ex.get("messages"):
        return None
    out = []
    for m in ex["messages"]:
        content = m.get("content")
        if isinstance(content, list):
            content = " ".join(c if isinstance(c, str) else c.get("text", "") for c in content)
        if not isinstance(content, str):
            return None
        out.append({"role": {"human": "user", "bot": "assistant"}.get(m["role"], m["role"]), "content": content})
    return {"messages": out}


def test_11_3_fix_line():
    assert status("11.3", fix_line) == PASSED

    def keeps_valid_content_parts(line):  # text parts are valid OpenAI content: keeping them is fine
        ex = fix_line(line)
        raw = json.loads(line) if ex else None
        if ex and isinstance(raw["messages"][-1]["content"], list) and isinstance(raw["messages"][-1]["content"][0], dict):
            ex["messages"][-1]["content"] = raw["messages"][-1]["content"]
        return ex

    assert status("11.3", keeps_valid_content_parts) == PASSED
    assert status("11.3", stub) == NOT_ATTEMPTED


def test_11_3_rejects_str_of_list_content():
    def str_of_list(line):
        try:
            ex = json.loads(line)
        except json.JSONDecodeError:
            return None
        if not ex.get("messages"):
            return None
        out = []
        for m in ex["messages"]:
            if isinstance(m.get("content"), int):
                return None
            content = m["content"] if isinstance(m["content"], str) else str(m["content"])
            out.append({"role": {"human": "user", "bot": "assistant"}.get(m["role"], m["role"]), "content": content})
        return {"messages": out}

    result = evaluate("11.3", str_of_list)
    assert result.status == FAILED and "str() of a list" in result.message


def test_11_3_lets_learners_drop_the_garbage_answer_and_rejects_keeping_it():
    from course_utils.llm.support_tickets import broken_jsonl_lines

    lines = broken_jsonl_lines()
    assert any('"content": 30}' in line for line in lines)  # the garbage answer is in the fixture
    assert any('"content": ["' in line for line in lines)  # and list content is too

    def keeps_thirty(line):
        ex = fix_line(line.replace('"content": 30}', '"content": "30"}'))
        return ex

    result = evaluate("11.3", keeps_thirty)
    assert result.status == FAILED and "bare number" in result.message


@pytest.mark.parametrize("mistake", ["keeps_unknown_keys", "joins_without_space", "drops_fixable_lines", "keeps_roles"])
def test_11_3_rejects_other_mistakes(mistake):
    def wrong(line):
        ex = fix_line(line)
        if ex is None:
            return None
        raw = json.loads(line)
        if mistake == "keeps_unknown_keys" and "ticket_id" in raw:
            ex["ticket_id"] = raw["ticket_id"]
        if mistake == "joins_without_space":
            for m, r in zip(ex["messages"], raw["messages"]):
                if isinstance(r["content"], list) and isinstance(r["content"][0], str):
                    m["content"] = "".join(r["content"])
        if mistake == "drops_fixable_lines" and any(m.get("role") == "human" for m in raw["messages"]):
            return None
        if mistake == "keeps_roles":
            for m, r in zip(ex["messages"], raw["messages"]):
                m["role"] = r["role"]
        return ex

    assert status("11.3", wrong) == FAILED


# ---------------------------------------------------------------- 12


def dedupe_texts(texts, threshold=0.8):
    kept, keys, sh = [], set(), []
    for t in texts:
        k, s = normalize_text(t), shingles(t)
        if k in keys or any(jaccard(s, o) >= threshold for o in sh):
            continue
        kept.append(t)
        keys.add(k)
        sh.append(s)
    return kept


def test_12_1_dedupe_texts():
    from course_utils.text.quality import dedupe

    assert status("12.1", dedupe_texts) == PASSED
    assert status("12.1", lambda texts, threshold=0.8: [texts[i] for i in dedupe(texts, threshold)]) == PASSED
    assert status("12.1", lambda texts, threshold=0.8: list(dict.fromkeys(texts))) == FAILED  # exact only
    assert status("12.1", lambda texts, threshold=0.8: list({normalize_text(t): t for t in texts}.values())) == FAILED
    assert status("12.1", lambda texts, threshold=0.8: dedupe_texts(texts, 0.3)) == FAILED  # too loose
    assert status("12.1", lambda texts, threshold=0.8: [normalize_text(t) for t in dedupe_texts(texts)]) == FAILED
    assert status("12.1", lambda texts, threshold=0.8: dedupe_texts(texts[::-1])[::-1]) == FAILED  # keeps the last


def split(texts, val_fraction, seed):
    import random

    groups = {}
    for i, t in enumerate(texts):
        groups.setdefault(normalize_text(t), []).append(i)
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    n = round(len(keys) * val_fraction)
    return sorted(i for k in keys[n:] for i in groups[k]), sorted(i for k in keys[:n] for i in groups[k])


def test_12_2_split_without_leakage():
    import random

    from course_utils.text.quality import leak_free_split

    assert status("12.2", split) == PASSED
    assert status("12.2", lambda texts, f, seed: leak_free_split(texts, None, f, seed)) == PASSED

    def row_split(texts, f, seed):
        idx = list(range(len(texts)))
        random.Random(seed).shuffle(idx)
        n = round(len(idx) * f)
        return idx[n:], idx[:n]

    def unseeded(texts, f, seed):
        return split(texts, f, random.random())

    assert status("12.2", row_split) == FAILED  # leaks duplicates
    assert status("12.2", unseeded) == FAILED
    assert status("12.2", lambda texts, f, seed: (list(range(len(texts))), [])) == FAILED
    assert status("12.2", lambda texts, f, seed: (split(texts, f, seed)[0], split(texts, f, seed)[0])) == FAILED
