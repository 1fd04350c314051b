"""GPU memory of each lesson's `full` run on a T4, computed with the course's estimator
(`course_utils.llm.peft_tools.estimate_memory`) from the models' published configs and the
settings the notebooks use, so that the README and the lesson headers quote one computation.

Figures are estimates: weights + gradients + AdamW state + activations of what is alive at the
lesson's peak, without the CUDA context (~0.3-0.5 GB) or allocator slack. A T4 has no bf16, so
Trainer lessons run fp16 mixed precision (fp32 master weights), and Qwen2.5 computes in fp32
(`course_utils.profile.mixed_precision`). Lessons 02-03 (ResNet50) are not transformers: their
figures stay labelled as rough estimates in the README.
"""

from __future__ import annotations

from dataclasses import dataclass

from course_utils.llm.peft_tools import estimate_memory

# published configs: parameters, hidden size, layers, vocabulary (LM heads only)
DISTILBERT = dict(parameters=66_362_880, hidden=768, layers=6)
BERT_BASE_CASED = dict(parameters=108_310_272, hidden=768, layers=12)
QWEN25_05B = dict(parameters=494_032_768, hidden=896, layers=24, vocab=151_936)
# rank-8 LoRA on q_proj and v_proj of Qwen2.5-0.5B: 24 x (896*8 + 8*896 + 896*8 + 8*128) weights
QWEN_QV_R8 = 24 * (896 * 8 + 8 * 896 + 896 * 8 + 8 * 128) / QWEN25_05B["parameters"]
CHAT_TOKENS = 64  # a fact-in-context prompt, Qwen's default system prompt and a one-word answer


@dataclass(frozen=True)
class Run:
    """One model alive at a lesson's peak, and how it trains (`method=None`: loaded, not trained)."""

    what: str
    config: dict
    method: str | None
    dtype: str
    batch: int = 16
    sequence: int = 512
    trainable: float = 0.005
    phase: int = 0  # runs of one phase are alive together; a lesson frees one phase before the next

    def gib(self) -> float:
        """Estimated GiB this run holds on the GPU."""
        config = dict(self.config)
        parameters = config.pop("parameters")
        if self.method is None:
            return estimate_memory(parameters, "lora", self.dtype, batch=0, trainable=0, **config).weights
        return estimate_memory(parameters, self.method, self.dtype, self.batch, self.sequence,
                               trainable=self.trainable, **config).total


FULL_RUNS: dict[str, list[Run]] = {
    "01": [Run("DistilBERT, full fine-tuning in fp32, 16 x 256 tokens", DISTILBERT, "full", "fp32", 16, 256)],
    "04": [Run("DistilBERT, full fine-tuning in fp16, 16 x 512 tokens", DISTILBERT, "full", "fp16", 16, 512)],
    "05": [Run("BERT-base-cased, full fine-tuning in fp16, 16 x 128 tokens", BERT_BASE_CASED, "full", "fp16", 16, 128)],
    "06": [Run("DistilBERT, full fine-tuning in fp16, 32 x 384 tokens", DISTILBERT, "full", "fp16", 32, 384)],
    "07": [Run("DistilBERT, full fine-tuning in fp16, 16 x 512 tokens", DISTILBERT, "full", "fp16", 16, 512)],
    "08": [Run("Qwen2.5-0.5B, LoRA r=8 in fp32", QWEN25_05B, "lora", "fp32", 16, CHAT_TOKENS, QWEN_QV_R8)],
    "09": [Run("Qwen2.5-0.5B in its compute dtype (fp32), kept loaded", QWEN25_05B, None, "fp32"),
           Run("Qwen2.5-0.5B 4-bit + LoRA (QLoRA)", QWEN25_05B, "qlora", "fp32", 16, CHAT_TOKENS, QWEN_QV_R8),
           Run("Qwen2.5-0.5B, full fine-tuning in fp32 (the measured memory table)", QWEN25_05B, "full",
               "fp32", 16, CHAT_TOKENS, phase=1)],
    "10": [Run("Qwen2.5-0.5B, full fine-tuning in fp32 (the largest of the four methods)", QWEN25_05B,
               "full", "fp32", 16, CHAT_TOKENS)],
    "11": [Run("Qwen2.5-0.5B, LoRA r=8 in fp32 behind the local service", QWEN25_05B, "lora", "fp32", 16,
               CHAT_TOKENS, QWEN_QV_R8)],
}


def full_memory_gib(lesson: str) -> float:
    """Estimated peak GPU memory of lesson `lesson`'s full run on a T4, in GiB: the largest phase."""
    if lesson not in FULL_RUNS:
        raise ValueError(f"no memory estimate for lesson {lesson!r}; known: {', '.join(FULL_RUNS)}")
    runs = FULL_RUNS[lesson]
    return max(sum(r.gib() for r in runs if r.phase == phase) for phase in {r.phase for r in runs})


def full_memory_label(lesson: str) -> str:
    """The figure as the README and the lesson headers print it, e.g. `~9 GB (estimator)`."""
    return f"~{max(1, round(full_memory_gib(lesson)))} GB (estimator)"


# Time on a T4, estimated (no T4 measurement yet): DistilBERT trains 6 * 66M * 16 * 512 ~ 3.3e12
# FLOP per step of 16 x 512 tokens; at ~13 TFLOP/s sustained (a fifth of a T4's fp16 tensor-core
# peak, usual for Trainer on a T4) that is ~0.25 s per step; evaluation costs a third of that.
T4_DISTILBERT_512_STEP_S = 6 * DISTILBERT["parameters"] * 16 * 512 / 13e12
OVERHEAD_MIN = 3.0  # downloads, tokenisation, a checkpoint per epoch


def lesson07_minutes(train: int = 5000, test: int = 1000, sweep_runs: int = 3, sweep_epochs: int = 3,
                     recipe_epochs: int = 6, batch: int = 16) -> float:
    """Estimated T4 minutes of lesson 07's full run: a 3 x 3-epoch learning-rate sweep, then the
    recipe for up to 6 epochs (early stopping may end it sooner), evaluating after every epoch."""
    import math

    epochs = sweep_runs * sweep_epochs + recipe_epochs
    train_steps = epochs * math.ceil(train / batch)
    eval_steps = epochs * math.ceil(test / batch) / 3
    return (train_steps + eval_steps) * T4_DISTILBERT_512_STEP_S / 60 + OVERHEAD_MIN
