"""LoRA and QLoRA mechanics: a hand-written LoRA equals peft's, merging and reloading keep the
outputs, QLoRA trains on a CPU, and the memory estimator agrees with measurement (the lesson
checkers are tested in test_exercises_08_12.py)."""

import math
import tempfile
import warnings
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from course_utils.claims import claim
from course_utils.llm import causal_lm as clm
from course_utils.exercises.ex08 import _peft_reference
from course_utils.llm.peft_tools import (GB, estimate_memory, footprint_mb, linear_share, load_quantized,
                                     measured_training_memory)

warnings.filterwarnings("ignore")


def hand_lora(x, weight, bias, A, B, alpha, r):
    return x @ weight.T + bias + (alpha / r) * (x @ A.T) @ B.T


def test_hand_lora_equals_peft():
    model, layer, _ = _peft_reference(d_in=11, d_out=6, r=4, alpha=8)
    x = torch.randn(3, 11)
    with torch.no_grad():
        want = model(x)
        got = hand_lora(x, layer.base_layer.weight, layer.base_layer.bias,
                        layer.lora_A["default"].weight, layer.lora_B["default"].weight, 8, 4)
    assert torch.allclose(got, want, atol=1e-5)


@pytest.fixture(scope="module")
def adapted():
    model, tok = clm.load_base(progress=False)
    train, test = clm.style_pairs()
    peft_model, _ = clm.lora_finetune(model, tok, train, steps=20, progress=False)
    return peft_model.eval(), tok, clm.chat_batch(tok, test)


def test_reloaded_adapter_and_merge_reproduce_outputs(adapted):
    from peft import PeftModel

    peft_model, tok, batch = adapted
    with torch.no_grad(), tempfile.TemporaryDirectory() as tmp:
        ref = peft_model(**batch).logits
        peft_model.save_pretrained(tmp)
        assert sum(f.stat().st_size for f in Path(tmp).iterdir()) < 100_000
        fresh, _ = clm.load_base(progress=False)
        reloaded = PeftModel.from_pretrained(fresh, tmp).eval()
        assert torch.allclose(reloaded(**batch).logits, ref, atol=1e-5)
        merged = reloaded.merge_and_unload()
        assert not any("lora" in n for n, _ in merged.named_parameters())
        assert torch.allclose(merged(**batch).logits, ref, atol=1e-3)


def test_qlora_loss_decreases_on_cpu(course_seed):
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    _, tok = clm.load_base(progress=False)
    train, _ = clm.style_pairs()
    model = load_quantized(AutoModelForCausalLM, clm.base_model_path(progress=False), 4)
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True,
                                            gradient_checkpointing_kwargs={"use_reentrant": False})
    model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", r=8, lora_alpha=16,
                                             target_modules=["q_proj", "v_proj"]))
    losses = clm.finetune_pairs(model, tok, train, steps=30, progress=False, seed=course_seed)
    late = sum(losses[-5:]) / 5
    # over seeds 0-4 x two CPU paths the last five steps average 0.32-0.71 of the first loss
    claim("test: QLoRA on CPU, the loss falls by more than 15% in 30 steps", late < 0.85 * losses[0],
          first=losses[0], last5_mean=late)


def test_weight_footprint_shrinks_and_estimator_matches_it():
    path = clm.base_model_path(progress=False)
    fp32, _ = clm.load_base(progress=False)
    nf4 = load_quantized(AutoModelForCausalLM, path, 4)
    int8 = load_quantized(AutoModelForCausalLM, path, 8)
    assert footprint_mb(nf4) < footprint_mb(int8) < 0.5 * footprint_mb(fp32)
    n = fp32.num_parameters()
    est = estimate_memory(n, "qlora", "fp32", batch=0, linear=linear_share(fp32), trainable=0).weights
    # measured 0.1672 MB vs estimated 0.1707 MB: the 4-bit layers' quant-state tensors are not all counted
    assert math.isclose(est * GB / 1e6, footprint_mb(nf4), rel_tol=0.05)


@pytest.mark.parametrize("method", ["full", "lora"])
def test_estimator_against_measured_training_memory(adapted, method):
    from peft import LoraConfig, get_peft_model

    model, tok = clm.load_base(progress=False)
    batch = adapted[2]
    n = model.num_parameters()
    if method == "lora":
        model = get_peft_model(model, LoraConfig(r=8, target_modules=["q_proj", "v_proj"]))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad) / n
    measured = measured_training_memory(model, batch)
    est = estimate_memory(n, method, "fp32", batch["input_ids"].shape[0], batch["input_ids"].shape[1],
                          hidden=64, layers=2, heads=4, vocab=model.config.vocab_size, trainable=trainable)
    # weights, gradients and optimizer state are exact arithmetic: within 1%
    for part in ("weights", "gradients", "optimizer"):
        assert math.isclose(getattr(est, part), getattr(measured, part), rel_tol=0.01), part
    # activations follow Korthikanti et al.'s formula (bytes) plus fp32 logits: measured full
    # 2.05 MB vs 1.89 estimated, lora 1.44 vs 1.89 (frozen layers save less)
    assert 1 / 1.5 <= est.activations / measured.activations <= 1.5
    assert 0.8 * measured.total <= est.total <= 1.4 * measured.total


def test_estimator_full_fine_tuning_bytes_per_parameter():
    per_param = lambda dtype, **kw: estimate_memory(1e9, "full", dtype, batch=0, **kw).total * GB / 1e9
    assert per_param("fp32") == pytest.approx(16)  # 4 weights + 4 gradients + 8 AdamW moments
    # mixed precision keeps fp32 master weights and gradients beside the 16-bit copy: 16-18 bytes
    assert 16 <= per_param("bf16") <= 18 and 16 <= per_param("fp16") <= 18
    assert per_param("bf16", master_weights=False) == pytest.approx(12)


def test_estimator_activations_are_korthikanti_bytes():
    s, b, h, a, layers, v = 512, 2, 1024, 16, 3, 32000
    est = estimate_memory(1e9, "lora", "bf16", b, s, hidden=h, layers=layers, heads=a, vocab=v)
    want = layers * s * b * h * (34 + 5 * a * s / h) + 4 * s * b * v  # bytes, 16-bit activations
    assert est.activations * GB == pytest.approx(want)
    fused = estimate_memory(1e9, "lora", "bf16", b, s, hidden=h, layers=layers)
    assert fused.activations * GB == pytest.approx(layers * s * b * h * 34)
    ckpt = estimate_memory(1e9, "lora", "bf16", b, s, hidden=h, layers=layers, checkpointing=True)
    assert ckpt.activations * GB == pytest.approx(layers * 2 * s * b * h)
    assert estimate_memory(1e9, "lora", "fp32", b, s, hidden=h, layers=layers).activations == \
        pytest.approx(2 * fused.activations)


def test_seven_billion_fits_a_t4_only_with_qlora():
    t4 = 15
    assert estimate_memory(7e9, "full", "fp16", 1, 512).total > 5 * t4
    assert estimate_memory(7e9, "lora", "fp16", 1, 512).total > t4
    assert estimate_memory(7e9, "qlora", "fp16", 1, 512).total < t4
    assert estimate_memory(7e9, "qlora", "fp16", 1, 512, checkpointing=True).total < t4 / 3
