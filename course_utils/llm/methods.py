"""Full fine-tuning vs feature extraction vs LoRA vs QLoRA on one task, one data set and one
budget: the measurements behind lesson 10's table and `benchmarks/peft_memory.py`."""

from __future__ import annotations

import gc
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
from transformers import AutoModelForCausalLM, PreTrainedModel

from course_utils.llm import causal_lm as clm
from course_utils.llm.peft_tools import (NON_REENTRANT, PeakMemory, folder_mb, load_quantized,
                                         measured_training_memory)
from course_utils.torch_utils import count_parameters, one_thread_on_cpu

METHODS = ("full", "feature_extraction", "lora", "qlora")
# per profile: the tiny 0.1M-parameter LM learns fast at high rates; on the 0.5B instruct model full
# fine-tuning uses the usual 1e-5..5e-5 and adapters the usual 1e-4..2e-4
LEARNING_RATES = {
    "tiny": {"full": 1e-3, "feature_extraction": 5e-3, "lora": 5e-3, "qlora": 5e-3},
    "full": {"full": 2e-5, "feature_extraction": 1e-4, "lora": 2e-4, "qlora": 2e-4},
}


def learning_rate(method: str, profile: str = "tiny") -> float:
    """The course's learning rate for a method on a profile's model, so no caller reuses tiny rates."""
    if profile not in LEARNING_RATES or method not in LEARNING_RATES[profile]:
        raise ValueError(f"no learning rate for method {method!r} on profile {profile!r}")
    return LEARNING_RATES[profile][method]


def master_dtype(method: str, dtype: torch.dtype) -> tuple[torch.dtype, torch.dtype | None]:
    """(weight dtype, autocast dtype) for a method trained at `dtype`. What trains in full or
    feature extraction keeps fp32 master weights under 16-bit autocast: AdamW updates of ~1e-5
    relative size vanish when added to bf16/fp16 weights (8/11 mantissa bits). LoRA and QLoRA
    freeze a 16-bit base and train fp32 adapters, so their base stays in `dtype`."""
    if method in ("full", "feature_extraction") and dtype != torch.float32:
        return torch.float32, dtype
    return dtype, None


@dataclass
class MethodResult:
    """One row of the comparison table."""

    method: str
    lr: float
    trainable: int
    total: int
    peak_rss_mb: float
    tensor_mb: float
    sec_per_step: float
    exact_match: float
    heldout_loss: float
    saved_mb: float
    losses: list[float] = field(default_factory=list, repr=False)

    def row(self) -> dict:
        """The table row, without the loss curve."""
        out = asdict(self)
        out.pop("losses")
        out["trainable_%"] = 100 * self.trainable / self.total
        return out


def set_up(model: PreTrainedModel, method: str) -> PreTrainedModel:
    """The course's answer to "what trains?" for full fine-tuning, feature extraction and LoRA
    (QLoRA also changes how the base is loaded, so `prepare` does it)."""
    if method == "full":
        return model.requires_grad_(True)
    if method == "feature_extraction":  # frozen body, trainable output head (tied to embeddings)
        model.requires_grad_(False)
        model.get_output_embeddings().weight.requires_grad_(True)
        return model
    if method == "lora":
        return clm.add_lora(model, 8, 16, ("q_proj", "v_proj"))
    raise ValueError(f"unknown method {method!r}: choose from full, feature_extraction, lora")


def prepare(method: str, profile: str = "tiny", r: int = 8,
            targets: tuple[str, ...] = ("q_proj", "v_proj"), seed: int = 0,
            dtype: torch.dtype = torch.float32, device: str = "cpu",
            setup: Callable[[PreTrainedModel, str], PreTrainedModel] | None = None
            ) -> tuple[PreTrainedModel, object]:
    """The causal LM set up for one method: which weights train (by `setup(model, method)`,
    e.g. a learner's function, else the course's), and in what precision."""
    torch.manual_seed(seed)
    if method == "qlora":
        from peft import prepare_model_for_kbit_training

        from course_utils.hub import model_source

        source = clm.base_model_path() if profile == "tiny" else model_source(clm.FULL_CAUSAL_LM)
        _, tok = clm.load_causal_lm(profile) if profile == "tiny" else (None, None)
        if tok is None:
            from transformers import AutoTokenizer
            tok = AutoTokenizer.from_pretrained(source)
        model = load_quantized(AutoModelForCausalLM, source, 4, dtype,
                               device_map="cpu" if device == "cpu" else {"": 0})
        # Gradient checkpointing trades compute for activation memory (lesson 09); kept off here
        # so that the four methods differ only in what they train and how weights are stored.
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False,
                                                gradient_checkpointing_kwargs=NON_REENTRANT)
        return clm.add_lora(model, r, 2 * r, targets), tok
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: choose from {METHODS}")
    model, tok = clm.load_causal_lm(profile, dtype=master_dtype(method, dtype)[0])
    model.to(device)
    if setup is not None:
        return setup(model, method), tok
    if method == "lora":
        return clm.add_lora(model, r, 2 * r, targets), tok
    return set_up(model, method), tok


def save_what_changes(model: PreTrainedModel, method: str, folder: Path) -> float:
    """Save only what a method must ship (a whole model, a head, or an adapter); returns MB."""
    folder.mkdir(parents=True, exist_ok=True)
    if method == "feature_extraction":
        head = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
        torch.save(head, folder / "head.pt")
    else:
        from course_utils.text.models import quiet_transformers
        with quiet_transformers():
            model.save_pretrained(folder)
    return folder_mb(folder)


def run_method(method: str, train: list[tuple[str, str]], test: list[tuple[str, str]],
               profile: str = "tiny", steps: int = 150, batch_size: int = 16, seed: int = 0,
               device: str = "cpu", dtype: torch.dtype = torch.float32,
               lr: float | None = None,
               setup: Callable[[PreTrainedModel, str], PreTrainedModel] | None = None) -> MethodResult:
    """Prepare, train for `steps`, evaluate and save one method, measuring its peak memory
    (from before loading to the end of training) and its seconds per step."""
    gc.collect()
    with PeakMemory(device) as peak:
        model, tok = prepare(method, profile, seed=seed, dtype=dtype, device=device, setup=setup)
        lr = lr or learning_rate(method, profile)
        start = time.perf_counter()
        losses = clm.finetune_pairs(model, tok, train, steps=steps, lr=lr,
                                    batch_size=batch_size, seed=seed, progress=False, desc=method,
                                    autocast=master_dtype(method, dtype)[1])
        seconds = time.perf_counter() - start
    with one_thread_on_cpu(model):
        return _evaluate(model, tok, method, lr, train, test, batch_size, peak.peak_mb, seconds / steps, losses)


def _evaluate(model, tok, method, lr, train, test, batch_size, peak_mb, sec_per_step, losses) -> MethodResult:
    trainable, total = count_parameters(model)
    dev = next(model.parameters()).device
    counted = measured_training_memory(model, clm.chat_batch(tok, train[:batch_size], dev))
    with tempfile.TemporaryDirectory() as tmp:
        saved = save_what_changes(model, method, Path(tmp) / method)
    return MethodResult(method, lr, trainable, total, peak_mb, counted.total * 1024**3 / 1e6,
                        sec_per_step, clm.exact_match_rate(model, tok, test),
                        clm.answer_loss(model, tok, test), saved, losses)


def compare_methods(train: list[tuple[str, str]], test: list[tuple[str, str]],
                    methods: tuple[str, ...] = METHODS, progress: bool = True,
                    **kwargs) -> list[MethodResult]:
    """Run every method with the same data, steps, batch size and seed."""
    from tqdm.auto import tqdm

    results = []
    for method in tqdm(methods, desc="methods", disable=not progress):
        results.append(run_method(method, train, test, **kwargs))
        gc.collect()
    return results


def choose_method(rows: list[dict], budget_mb: float) -> str | None:
    """The method with the best metric whose peak memory fits the budget (ties: the leaner one);
    None when nothing fits. The caller's rows are left untouched."""
    fits = [r for r in rows if r["peak_mb"] <= budget_mb]
    if not fits:
        return None
    return min(fits, key=lambda r: (-r["metric"], r["peak_mb"]))["method"]
