"""Defects of the `full` (GPU) path that CPU tests can pin down, with CUDA faked where needed:
precision choices, master weights, learning rates, system prompts, limits, doctor, budgets."""

import re
from pathlib import Path

import pytest
import torch

from course_utils import profile
from course_utils.llm import causal_lm as clm
from course_utils.llm import methods

ROOT = Path(__file__).resolve().parent.parent


def fake_gpu(monkeypatch, capability: tuple[int, int], bf16_emulated: bool = True) -> None:
    """Pretend a CUDA GPU of `capability` is present (torch.cuda.is_bf16_supported says True on
    a T4 too, since torch counts emulation)."""
    monkeypatch.setattr(profile, "cuda_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16_emulated or capability >= (8, 0))


# ---------------------------------------------------------------- precision


@pytest.mark.parametrize("capability, model, expected", [
    ((7, 5), "Qwen/Qwen2.5-0.5B-Instruct", "fp32"),   # fp16 overflows a bf16-trained Qwen2
    ((7, 5), "qwen2.5-0.5b-instruct + LoRA", "fp32"),
    ((7, 5), "distilbert-base-uncased", "fp16"),
    ((7, 5), None, "fp16"),
    ((8, 0), "Qwen/Qwen2.5-0.5B-Instruct", "bf16"),
    ((9, 0), "bert-base-cased", "bf16"),
])
def test_precision_depends_on_model_family_below_ampere(monkeypatch, capability, model, expected):
    fake_gpu(monkeypatch, capability)
    assert profile.mixed_precision("cuda", model) == expected


def test_setup_picks_fp32_for_qwen_on_a_t4(monkeypatch):
    fake_gpu(monkeypatch, (7, 5))
    monkeypatch.setenv("COURSE_PROFILE", "full")
    cfg = profile.setup(models={"tiny": "t", "full": "Qwen/Qwen2.5-0.5B-Instruct"}, data={"tiny": "", "full": ""},
                        budgets={"tiny": "", "full": ""}, quiet=True)
    assert cfg.device.type == "cuda" and cfg.precision == "fp32"


def test_native_bf16_ignores_emulation(monkeypatch):
    fake_gpu(monkeypatch, (7, 5), bf16_emulated=True)
    assert torch.cuda.is_bf16_supported()  # what the doctor used to report
    assert not profile.native_bf16("cuda")
    fake_gpu(monkeypatch, (8, 6))
    assert profile.native_bf16("cuda")
    assert not profile.native_bf16("cpu")


def test_doctor_reports_no_bf16_on_a_t4(monkeypatch):
    from course_utils import doctor

    fake_gpu(monkeypatch, (7, 5))
    props = type("Props", (), {"name": "Tesla T4", "total_memory": 15 * 2**30, "major": 7, "minor": 5})
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda *_: props)
    monkeypatch.setattr(doctor, "_bitsandbytes_status", lambda: "not checked")
    monkeypatch.setenv("COURSE_PROFILE", "tiny")
    lines, _ = doctor.report(check_network=False)
    line = next(l for l in lines if l.startswith("mixed precision"))
    assert "fp16" in line and "native bf16: False" in line and "Qwen-family models: fp32" in line


# ---------------------------------------------------------------- lesson 10: master weights


@pytest.mark.parametrize("method", ["full", "feature_extraction"])
def test_16_bit_training_keeps_fp32_master_weights_and_moves_every_trained_weight(monkeypatch, method):
    """Pure-bf16 AdamW updates of ~lr vanish against weights near 1 (norms): before the fix 0% of
    the norm weights moved. With fp32 masters under bf16 autocast, every trained tensor changes."""
    train, test = clm.style_pairs()
    captured = {}
    real_prepare = methods.prepare

    def prepare(*args, **kwargs):
        model, tok = real_prepare(*args, **kwargs)
        captured["before"] = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
        return model, tok

    monkeypatch.setattr(methods, "prepare", prepare)
    monkeypatch.setattr(methods, "_evaluate", lambda model, *args: model)
    model = methods.run_method(method, train, test, steps=3, batch_size=8, dtype=torch.bfloat16, lr=1e-4)
    trained = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert all(p.dtype == torch.float32 for p in model.parameters())
    unchanged = [n for n, p in trained.items() if torch.equal(p.detach(), captured["before"][n])]
    assert unchanged == []
    if method == "full":
        norms = [n for n in trained if "norm" in n]
        assert norms and all(not torch.equal(trained[n].detach(), captured["before"][n]) for n in norms)


def test_master_dtype_only_upcasts_what_trains_in_full():
    assert methods.master_dtype("full", torch.bfloat16) == (torch.float32, torch.bfloat16)
    assert methods.master_dtype("feature_extraction", torch.float16) == (torch.float32, torch.float16)
    assert methods.master_dtype("lora", torch.bfloat16) == (torch.bfloat16, None)
    assert methods.master_dtype("full", torch.float32) == (torch.float32, None)


def test_autocast_training_keeps_fp32_weights_and_learns():
    """The mixed-precision loop itself (bf16 autocast runs on a CPU too): weights stay fp32, loss falls."""
    model, tok = clm.load_base(progress=False)
    train, _ = clm.style_pairs()
    losses = clm.finetune_pairs(model, tok, train, steps=20, lr=1e-3, progress=False, autocast=torch.bfloat16)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert sum(losses[-5:]) / 5 < losses[0]


# ---------------------------------------------------------------- learning rates


def test_full_profile_learning_rates_are_full_profile_ones():
    assert 1e-5 <= methods.learning_rate("full", "full") <= 5e-5
    assert methods.learning_rate("lora", "full") <= 3e-4
    assert methods.learning_rate("full", "tiny") == 1e-3
    with pytest.raises(ValueError):
        methods.learning_rate("full", "huge")


def test_run_method_uses_the_profiles_rate(monkeypatch):
    seen = {}
    monkeypatch.setattr(methods, "prepare", lambda *a, **k: clm.load_base(progress=False))
    monkeypatch.setattr(methods.clm, "finetune_pairs", lambda *a, **k: seen.update(k) or [0.0])
    monkeypatch.setattr(methods, "_evaluate", lambda model, *args: model)
    methods.run_method("full", [("q", "a")], [("q", "a")], profile="full", steps=1)
    assert seen["lr"] == methods.learning_rate("full", "full")


def test_peft_memory_benchmark_takes_a_profile_and_full_rates():
    source = (ROOT / "benchmarks" / "peft_memory.py").read_text()
    assert '"--profile"' in source and "learning_rate(" in source


# ---------------------------------------------------------------- system prompts


def test_chat_pairs_carry_the_system_prompt_into_training_batches():
    from course_utils.llm.chat_data import chat_example, chat_pairs

    _, tok = clm.load_base(progress=False)
    [pair] = chat_pairs(chat_example("what color is the fox ?", "red", system="answer in one word"))
    assert pair == ("what color is the fox ?", "red", "answer in one word")
    text = tok.decode(clm.chat_batch(tok, [pair])["input_ids"][0])
    assert "answer in one word" in text and text.endswith("red<|end|>")


def test_tiny_template_honours_system_messages():
    _, tok = clm.load_base(progress=False)
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    rendered = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert "be brief" in rendered and rendered == clm.format_chat("hi", system="be brief")
    assert tok.apply_chat_template(messages[1:], tokenize=False, add_generation_prompt=True) == clm.format_chat("hi")


def test_system_prompt_changes_the_training_labels_only_in_the_prompt():
    _, tok = clm.load_base(progress=False)
    with_system = clm.chat_batch(tok, [("hi", "red", "be brief")])
    without = clm.chat_batch(tok, [("hi", "red")])
    answer = lambda b: b["input_ids"][0][b["labels"][0] != -100].tolist()
    assert answer(with_system) == answer(without)  # the loss is on the same answer tokens
    assert with_system["input_ids"].shape[1] > without["input_ids"].shape[1]


# ---------------------------------------------------------------- lesson 01 recipe, checkpointing


def test_lesson_01_full_recipe_is_a_full_profile_recipe():
    from course_utils.text.curves import RECIPES

    full = RECIPES["full"]
    assert 2e-5 <= full["lr"] <= 5e-5 and 16 <= full["batch_size"] <= 32 and 256 <= full["max_length"] <= 512
    assert RECIPES["tiny"] == {"epochs": 2, "min_steps": 15, "batch_size": 8, "lr": 2e-4, "max_length": 32}
    assert "profile=cfg.profile" in (ROOT / "solutions" / "01_why_finetune.ipynb").read_text()


def test_every_gradient_checkpointing_call_is_non_reentrant():
    sources = [*(ROOT / "course_utils").rglob("*.py"), *(ROOT / "solutions").glob("*.ipynb"),
               *(ROOT / "tests").glob("test_*.py"), *(ROOT / "benchmarks").glob("*.py")]
    for path in sources:
        text = path.read_text().replace('\\"', '"').replace("\\n", "\n")
        for call in re.findall(r"(?:prepare_model_for_kbit_training|gradient_checkpointing_enable)\((.*?)\)\n",
                               text, re.S):
            if "use_gradient_checkpointing=False" in call and "NON_REENTRANT" not in call:
                continue
            assert "use_reentrant" in call or "NON_REENTRANT" in call, (path.name, call)


def test_non_reentrant_checkpointing_reaches_the_layers():
    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM

    from course_utils.llm.peft_tools import NON_REENTRANT, load_quantized

    model = load_quantized(AutoModelForCausalLM, clm.base_model_path(progress=False), 4)
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True,
                                            gradient_checkpointing_kwargs=NON_REENTRANT)
    funcs = [m._gradient_checkpointing_func for m in model.modules() if hasattr(m, "_gradient_checkpointing_func")]
    assert funcs and all(f.keywords.get("use_reentrant") is False for f in funcs)


# ---------------------------------------------------------------- CLI limits from budgets


def test_cli_limits_default_by_profile():
    from course_utils.cli import parser
    from course_utils.grading.grade import Limits
    from course_utils.notebooks.build import RunLimits, lessons

    args = parser().parse_args(["check", "x.ipynb", "--profile", "full"])
    assert args.timeout is None and args.cell_timeout is None and args.memory_gb is None
    assert Limits(profile="tiny").for_lesson("03") == Limits(600, 120, 30, 6.0, "tiny")
    for lesson in lessons():
        full = lesson.limits("full")
        minutes = re.search(r"(\d+) min", lesson.full_budget)
        if minutes:  # the stated budget fits, in the notebook and in its longest cell
            assert full.notebook_seconds >= 2 * 60 * int(minutes.group(1))
            assert full.cell_seconds == full.notebook_seconds
        assert lesson.limits("tiny") == RunLimits()
    full06 = Limits(profile="full").for_lesson("06")
    assert full06.notebook_seconds > 3600 and full06.memory_gb >= 12
    assert Limits(profile="full", cell_seconds=5).for_lesson("06").cell_seconds == 5


def test_budget_without_a_time_is_an_error():
    from course_utils.notebooks.build import RunLimits

    with pytest.raises(ValueError, match="states no time"):
        RunLimits.for_budget("a while")


# ---------------------------------------------------------------- README figures


def test_readme_memory_figures_are_the_estimators_or_labelled():
    from course_utils.notebooks.budgets import FULL_RUNS, full_memory_label
    from course_utils.notebooks.build import lessons

    readme = (ROOT / "README.md").read_text()
    by_number = {l.number: l for l in lessons()}
    for number in FULL_RUNS:
        row = next(line for line in readme.splitlines() if line.startswith(f"| {number} |"))
        label = full_memory_label(number)
        assert label.removesuffix(" (estimator)") + " (estimator" in row, (number, row)
        assert label in by_number[number].full_budget, (number, by_number[number].full_budget)
    for line in readme.splitlines():
        if re.match(r"^\| \d\d \|", line):
            full = line.rstrip(" |").rsplit("|", 1)[-1]
            for match in re.finditer(r"~\d+ GB", full):
                tail = full[match.end():match.end() + 12]
                assert re.match(r" \((estimator|estimate|measured)", tail), (line[:6], full)


def test_lesson_09_and_10_figures_count_fp32_full_fine_tuning():
    from course_utils.notebooks.budgets import full_memory_gib

    # the issue's figure for the fp32 full fine-tune of Qwen2.5-0.5B: ~9.45 GiB, 3x the old ~3 GB
    assert 8.5 <= full_memory_gib("09") <= 10.5 and 8.5 <= full_memory_gib("10") <= 10.5


def test_lesson_07_budget_is_the_step_estimate():
    from course_utils.notebooks.budgets import lesson07_minutes
    from course_utils.notebooks.build import lessons

    stated = next(l for l in lessons() if l.number == "07").full_budget
    minutes = int(re.search(r"~(\d+) min", stated).group(1))
    assert "estimate" in stated and minutes == 5 * round(lesson07_minutes() / 5)
