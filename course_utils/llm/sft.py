"""Supervised instruction tuning with TRL's `SFTTrainer`: the chat layout and the assistant-only
label mask (the references the lesson's exercises are checked against), trainer settings that suit
a laptop CPU and a GPU alike, packing vs padding, and `sft_train`, the one call the lesson's
recipe and the local fine-tuning service share."""

from __future__ import annotations

import contextlib
import tempfile
import time
import warnings
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from course_utils.llm.causal_lm import FULL_CAUSAL_LM, one_thread_on_cpu
from course_utils.profile import mixed_precision

FULL_INSTRUCT_LM = FULL_CAUSAL_LM  # Qwen/Qwen2.5-0.5B-Instruct


def load_full_model(**kwargs) -> PreTrainedModel:
    """The `full` profile's instruct model from the hub (one call, so a stand-in can replace it)."""
    from transformers import AutoModelForCausalLM

    from course_utils.hub import model_source

    return AutoModelForCausalLM.from_pretrained(model_source(FULL_INSTRUCT_LM), **kwargs)


def load_full_tokenizer() -> PreTrainedTokenizerBase:
    """The `full` profile's tokenizer (with Qwen's ChatML template) from the hub."""
    from transformers import AutoTokenizer

    from course_utils.hub import model_source

    return AutoTokenizer.from_pretrained(model_source(FULL_INSTRUCT_LM))


# ---------------------------------------------------------------- the chat layout and the mask


def render_chatml(messages: list[dict[str, str]], add_generation_prompt: bool = False) -> str:
    """Qwen's ChatML text for a conversation (no default system prompt): what the template makes."""
    text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return text + ("<|im_start|>assistant\n" if add_generation_prompt else "")


def assistant_labels(input_ids: list[int], tok: PreTrainedTokenizerBase) -> list[int]:
    """Labels for causal-LM loss on the assistant's replies only: every token after an
    `<|im_start|>assistant` header up to and including the `<|im_end|>` and newline that close
    the turn keeps its id; everything else (system, user, headers) becomes -100."""
    start, end = tok.convert_tokens_to_ids("<|im_start|>"), tok.convert_tokens_to_ids("<|im_end|>")
    header = tok.encode("assistant", add_special_tokens=False)
    labels, inside, i = [-100] * len(input_ids), False, 0
    while i < len(input_ids):
        if not inside and input_ids[i] == start and input_ids[i + 1:i + 1 + len(header)] == header:
            inside, i = True, i + 1 + len(header)
            continue
        if inside:
            labels[i] = input_ids[i]
            if input_ids[i] == end:
                inside = False
                if i + 1 < len(input_ids) and input_ids[i + 1] != start:  # the newline after <|im_end|>
                    labels[i + 1] = input_ids[i + 1]
                    i += 1
        i += 1
    return labels


def trl_assistant_labels(messages: list[dict[str, str]], tok: PreTrainedTokenizerBase) -> tuple[list[int], list[int]]:
    """(input_ids, labels) exactly as `SFTTrainer(assistant_only_loss=True)` builds them: the
    template's `{% generation %}` mask (TRL's training template where the model's own lacks it)."""
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers

    template = None if has_generation_markers(tok.chat_template) else get_training_chat_template(tok)
    out = tok.apply_chat_template(messages, chat_template=template, return_dict=True,
                                  return_assistant_tokens_mask=True)
    ids = list(out["input_ids"])
    return ids, [t if m else -100 for t, m in zip(ids, out["assistant_masks"])]


def drop_eos_labels(labels: list[int], tok: PreTrainedTokenizerBase) -> list[int]:
    """The classic bug, on purpose: the end-of-turn token (and what follows it) is never a target,
    so the model never learns to stop."""
    end = tok.convert_tokens_to_ids("<|im_end|>")
    out = list(labels)
    for i, t in enumerate(labels):
        if t == end:
            out[i] = -100
            if i + 1 < len(out):
                out[i + 1] = -100
    return out


def tokenized_dataset(examples: Iterable[dict[str, Any]], tok: PreTrainedTokenizerBase, render=render_chatml,
                      labeler=assistant_labels):
    """A `datasets.Dataset` of `input_ids` + `labels` from chat examples, with your own `render`
    (messages -> text) and `labeler` (ids -> labels); `SFTTrainer` trains on it as it is."""
    from datasets import Dataset

    rows = []
    for ex in examples:
        ids = tok(render(ex["messages"]), add_special_tokens=False)["input_ids"]
        rows.append({"input_ids": ids, "labels": labeler(ids, tok)})
    return Dataset.from_list(rows)


# ---------------------------------------------------------------- trainer settings

# Lesson 13's SFT recipe per profile, also the one lesson 14's tiny instruct model is trained with.
# `tiny`: measured on seeds 0-2, exact match 0 -> 0.59 and rubric 0.03 -> 0.83 on held-out animals
# every time; lr 2e-2 for 6 epochs also learns to stop but names a training animal (exact match 0).
SFT_RECIPES: dict[str, dict[str, Any]] = {
    "tiny": {"num_train_epochs": 12, "learning_rate": 5e-3, "per_device_train_batch_size": 16, "max_length": None},
    "full": {"num_train_epochs": 1, "learning_rate": 2e-4, "per_device_train_batch_size": 8, "max_length": 1024},
}


def trainer_settings(device: torch.device | str = "cpu", **overrides) -> dict[str, Any]:
    """Keyword arguments for `SFTConfig`/`DPOConfig` that are plumbing, not the lesson: a scratch
    output folder, no checkpoints or external loggers, precision from the device, and no
    gradient checkpointing (TRL turns it on by default; tiny models only pay for it)."""
    precision = mixed_precision(device)
    settings = dict(output_dir=tempfile.mkdtemp(prefix="trl-"), report_to="none", save_strategy="no",
                    logging_steps=1, disable_tqdm=True, activation_checkpointing=False,
                    bf16=precision == "bf16", fp16=precision == "fp16", use_cpu=torch.device(device).type == "cpu",
                    dataloader_pin_memory=False, seed=0, data_seed=0)
    settings.update(overrides)
    return settings


@contextlib.contextmanager
def quiet_trl() -> Iterator[None]:
    """Silence the warnings TRL and transformers print for settings a lesson chose on purpose."""
    import logging

    loggers = [logging.getLogger(n) for n in ("trl", "transformers", "accelerate", "datasets")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def train(trainer) -> list[dict[str, float]]:
    """Run `trainer.train()` (on one thread for a tiny CPU model) and return its log history."""
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # the log history is returned instead of printed
    with quiet_trl(), one_thread_on_cpu(trainer.model):
        trainer.train()
    trainer.model.eval()
    return [dict(row) for row in trainer.state.log_history]


def lora_config(targets: str | list[str] = "all-linear", r: int = 8, alpha: int = 16):
    """A LoRA config for a causal LM: `"all-linear"` (every projection) or a list such as q/v only."""
    from peft import LoraConfig

    return LoraConfig(task_type="CAUSAL_LM", r=r, lora_alpha=alpha, lora_dropout=0.0, target_modules=targets)


def train_adapter(trainer_class, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, args,
                  dataset, peft_config=None, callbacks: list | None = None) -> tuple[Any, list[dict[str, float]]]:
    """A TRL trainer (`SFTTrainer`, `DPOTrainer`) that wraps `model` in a fresh LoRA adapter
    (`peft_config`, default `lora_config()`), trained quietly: the one construction lessons 13-14,
    the instruct base and the service's jobs share. Returns the trainer and its log history."""
    with quiet_trl():
        trainer = trainer_class(model=model, args=args, processing_class=tokenizer, train_dataset=dataset,
                                callbacks=callbacks, peft_config=peft_config or lora_config())
    return trainer, train(trainer)


# ---------------------------------------------------------------- packing vs padding


@dataclass(frozen=True)
class Throughput:
    """What one training run cost: real (non-pad) tokens, positions computed, seconds."""

    name: str
    real_tokens: int
    positions: int
    seconds: float

    @property
    def padding_share(self) -> float:
        return 1 - self.real_tokens / self.positions

    @property
    def tokens_per_second(self) -> float:
        return self.real_tokens / self.seconds


def measure_throughput(trainer, name: str) -> Throughput:
    """Train one epoch and count what the batches held: real tokens vs padded positions."""
    real = positions = 0
    for batch in trainer.get_train_dataloader():
        ids = batch["input_ids"]
        positions += ids.numel()
        real += int((batch["attention_mask"].sum() if "attention_mask" in batch else ids.numel()))
    start = time.perf_counter()
    train(trainer)
    return Throughput(name, real, positions, time.perf_counter() - start)


# ---------------------------------------------------------------- the call the service makes


def openai_to_prompt_completion(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI chat examples -> TRL conversational prompt-completion rows, one per trained
    assistant turn (weight 0 turns stay context), so the loss is on that reply only."""
    rows = []
    for rec in records:
        msgs = [{"role": m["role"], "content": m.get("content") or ""} for m in rec["messages"]]
        for i, m in enumerate(rec["messages"]):
            if m.get("role") == "assistant" and m.get("weight", 1) == 1 and isinstance(m.get("content"), str):
                rows.append({"prompt": msgs[:i], "completion": [msgs[i]]})
    if not rows:
        raise ValueError("no trainable assistant message in the records")
    return rows


def sft_train(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, records: list[dict[str, Any]],
              n_epochs: int = 3, learning_rate: float = 5e-3, batch_size: int = 8, lora_r: int = 8,
              lora_alpha: int = 16, target_modules: str | list[str] = "all-linear", seed: int = 0,
              max_length: int | None = 512, callbacks: list | None = None,
              settings: dict[str, Any] | None = None) -> tuple[PreTrainedModel, list[dict[str, float]]]:
    """LoRA-SFT a causal LM on OpenAI-format chat records (`{"messages": [...]}`) with TRL, loss on
    the assistant replies only: `assistant_only_loss` on whole chats when the template marks its
    `{% generation %}` spans (as in lesson 13), else one prompt-completion row per trained turn.
    `callbacks` (TRL/transformers `TrainerCallback`s) see every step, e.g. the service's progress;
    `settings` override `trainer_settings` (plumbing such as `accelerator_config`).
    Returns (peft model with the trained adapter, log history)."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer
    from trl.chat_template_utils import has_generation_markers

    weighted = any(m.get("weight", 1) != 1 for rec in records for m in rec["messages"])
    whole_chats = has_generation_markers(tokenizer.chat_template or "") and not weighted
    if whole_chats:
        rows = [{"messages": [{"role": m["role"], "content": m.get("content") or ""} for m in rec["messages"]]}
                for rec in records]
        loss = {"assistant_only_loss": True}
    else:
        rows, loss = openai_to_prompt_completion(records), {"completion_only_loss": True}
    device = next(model.parameters()).device
    plumbing = trainer_settings(device, seed=seed, data_seed=seed, **(settings or {}))
    args = SFTConfig(**plumbing, num_train_epochs=n_epochs,
                     learning_rate=learning_rate, per_device_train_batch_size=batch_size,
                     max_length=max_length, **loss)
    trainer, history = train_adapter(SFTTrainer, model, tokenizer, args, Dataset.from_list(rows),
                                     lora_config(target_modules, lora_r, lora_alpha), callbacks)
    return trainer.model, history


def load_lesson_model(profile: str, device: torch.device | str = "cpu") -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A fresh copy of the lessons' base model and its tokenizer: the course's tiny chat-naive
    base on `tiny`, Qwen2.5-0.5B-Instruct on `full` (each trainer run wraps its own copy)."""
    if profile == "tiny":
        from course_utils.llm.causal_lm import INSTRUCT_BASE, load_base

        model, tok = load_base(INSTRUCT_BASE, progress=False)
    else:
        model, tok = load_full_model(dtype="auto"), load_full_tokenizer()
    return model.to(device), tok
