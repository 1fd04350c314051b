"""A causal LM that really knows something, offline: a small Llama pretrained in seconds on the
generated world of `llm.tiny_world`, plus the LoRA fine-tuning and generation helpers that the
PEFT lessons and the local fine-tuning service share."""

from __future__ import annotations

import hashlib
import json
import random
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedModel, PreTrainedTokenizerFast

from course_utils.llm.tiny_world import (  # noqa: F401 (the lessons read them here too)
    USER, ASSISTANT, END, SPECIALS, CHAT_TEMPLATE, IM_START, IM_END, CHATML_SPECIALS, CHATML_TEMPLATE,
    ANIMALS, ATTRIBUTES, ONE_WORD_SYSTEM, QUESTIONS, STATEMENTS, world, format_chat, pretraining_corpus, style_pairs)
from course_utils.profile import cache_dir, cache_entry
from course_utils.text.models import quiet_transformers
from course_utils.torch_utils import one_thread_on_cpu

FULL_CAUSAL_LM = "Qwen/Qwen2.5-0.5B-Instruct"
StepHook = Callable[[PreTrainedModel, int, float, dict[str, torch.Tensor]], None]


@dataclass(frozen=True)
class TinyLMConfig:
    """Everything that decides the cached checkpoint; its hash names the cache folder."""

    hidden: int = 64
    layers: int = 2
    heads: int = 4
    intermediate: int = 128
    vocab: int = 600
    steps: int = 800
    batch: int = 32
    lr: float = 5e-3
    seed: int = 0
    version: int = 1
    chat: str = "course"  # "course": <|user|>/<|assistant|>/<|end|>; "chatml": Qwen's <|im_start|>/<|im_end|>
    corpus: str = "facts+chat"  # "text": statements and plain-text Q&A lines, a base that never saw a chat
    positions: int = 64

    def key(self) -> str:
        fields = asdict(self)
        for name, default in (("chat", "course"), ("corpus", "facts+chat"), ("positions", 64)):
            if fields[name] == default:  # older caches stay valid
                del fields[name]
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]


# The base model of the instruction- and preference-tuning lessons: it read the world's facts as
# plain text only (sentences, and questions followed by their answer, as on a FAQ page), never a
# chat, so the chat layout and when to stop are what fine-tuning has to teach it.
INSTRUCT_BASE = TinyLMConfig(chat="chatml", corpus="text", positions=128, steps=500)


def build_tokenizer(corpus: list[str], vocab: int, chat: str = "course") -> PreTrainedTokenizerFast:
    """A byte-level BPE fitted to the corpus: its words become single tokens, and any other text
    still encodes (byte fallback), which a chat service taking arbitrary prompts needs.
    `chat="chatml"` gives it Qwen's special tokens and chat layout instead of the course's own."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if chat not in ("course", "chatml"):
        raise ValueError(f"unknown chat format {chat!r}: use 'course' or 'chatml'")
    specials = SPECIALS if chat == "course" else CHATML_SPECIALS
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    # chat words the base model never reads still get tokens of their own, as in a real tokenizer
    extra = ([f"{role}\n{q} i hope this helps ." for role in ("system", "user", "assistant")
              for q in QUESTIONS.values()] * 30 if chat == "chatml" else [])
    tok.train_from_iterator(corpus + extra, trainer)
    if chat == "course":
        fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>",
                                       bos_token="<s>", eos_token=END,
                                       additional_special_tokens=[USER, ASSISTANT])
        fast.chat_template = CHAT_TEMPLATE
    else:
        fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>",
                                       bos_token="<s>", eos_token=IM_END, additional_special_tokens=[IM_START])
        fast.chat_template = CHATML_TEMPLATE
    return fast


def _model_config(cfg: TinyLMConfig, tok: PreTrainedTokenizerFast) -> LlamaConfig:
    return LlamaConfig(vocab_size=len(tok), hidden_size=cfg.hidden, num_hidden_layers=cfg.layers,
                       num_attention_heads=cfg.heads, num_key_value_heads=cfg.heads,
                       intermediate_size=cfg.intermediate, max_position_embeddings=cfg.positions,
                       pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                       eos_token_id=tok.eos_token_id, tie_word_embeddings=True)


def encode_batch(tok: PreTrainedTokenizerFast, texts: list[str], prompt_lens: list[int] | None = None,
                 device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Right-padded ids with labels; padding, and the first `prompt_lens[i]` tokens when given,
    are masked with -100 so the loss counts only what the model should learn to write."""
    enc = tok(texts, padding=True, return_tensors="pt")
    labels = enc["input_ids"].clone()
    labels[enc["attention_mask"] == 0] = -100
    for i, n in enumerate(prompt_lens or []):
        labels[i, :n] = -100
    return {"input_ids": enc["input_ids"].to(device), "attention_mask": enc["attention_mask"].to(device),
            "labels": labels.to(device)}


def _train(model: PreTrainedModel, batches, steps: int, lr: float, desc: str,
           progress: bool, optimizer: torch.optim.Optimizer | None = None,
           autocast: torch.dtype | None = None, on_step: StepHook | None = None) -> list[float]:
    with one_thread_on_cpu(model):
        return _train_loop(model, batches, steps, lr, desc, progress, optimizer, autocast, on_step)


def _train_loop(model: PreTrainedModel, batches, steps: int, lr: float, desc: str,
                progress: bool, optimizer: torch.optim.Optimizer | None,
                autocast: torch.dtype | None = None, on_step: StepHook | None = None) -> list[float]:
    params = [p for p in model.parameters() if p.requires_grad]
    opt = optimizer or torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 20) * (1 - s / steps))
    device_type = next(model.parameters()).device.type
    # mixed precision: fp32 master weights, the forward in `autocast`; fp16 also scales the loss
    # so that small gradients do not underflow (bf16 has fp32's range and needs no scaler)
    scaler = torch.amp.GradScaler(device_type, enabled=autocast == torch.float16)
    model.train()
    losses = []
    for step in tqdm(range(steps), desc=desc, disable=not progress, leave=False):
        batch = batches(step)
        with torch.autocast(device_type, dtype=autocast or torch.float32, enabled=autocast is not None):
            loss = model(**batch).loss
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        scaler.step(opt)
        scaler.update()
        sched.step()
        opt.zero_grad()
        losses.append(loss.item())
        if on_step is not None:
            on_step(model, step + 1, losses[-1], batch)
    model.eval()
    return losses


def pretrain(cfg: TinyLMConfig = TinyLMConfig(), progress: bool = True) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    """Train the tiny base model from scratch on the generated world (seconds on a CPU)."""
    if cfg.corpus not in ("facts+chat", "text"):
        raise ValueError(f"unknown corpus {cfg.corpus!r}: use 'facts+chat' or 'text'")
    corpus = pretraining_corpus(cfg.seed, chat=cfg.corpus == "facts+chat")
    tok = build_tokenizer(corpus, cfg.vocab, cfg.chat)
    torch.manual_seed(cfg.seed)
    model = LlamaForCausalLM(_model_config(cfg, tok))
    rng = random.Random(cfg.seed)
    batches = lambda step: encode_batch(tok, rng.sample(corpus, cfg.batch))
    _train(model, batches, cfg.steps, cfg.lr, "pretraining tiny LM", progress)
    return model, tok


def base_model_path(cfg: TinyLMConfig = TinyLMConfig(), progress: bool = True) -> Path:
    """Directory of the cached base checkpoint (pretrained on first use), for `from_pretrained`
    with a `quantization_config` or any other loading option."""
    path = cache_dir("causal_lm", cfg.key())
    if not (path / "config.json").exists():
        model, tok = pretrain(cfg, progress)
        with quiet_transformers(), cache_entry(path) as scratch:
            tok.save_pretrained(scratch)
            model.save_pretrained(scratch)
    return path


def load_base(cfg: TinyLMConfig = TinyLMConfig(), progress: bool = True,
              **kwargs) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    """The pretrained tiny LM and its tokenizer from the cache; extra kwargs go to `from_pretrained`."""
    path = base_model_path(cfg, progress)
    with quiet_transformers():
        tok = PreTrainedTokenizerFast.from_pretrained(path)
        model = LlamaForCausalLM.from_pretrained(path, **kwargs)
    # the current template, also for checkpoints cached earlier
    tok.chat_template = CHAT_TEMPLATE if cfg.chat == "course" else CHATML_TEMPLATE
    return model.eval(), tok


def load_causal_lm(profile: str, **kwargs) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    """The lesson's causal LM: the cached tiny Llama on `tiny`, a 0.5B instruct model on `full`."""
    if profile == "tiny":
        return load_base(**kwargs)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from course_utils.hub import model_source

    source = model_source(FULL_CAUSAL_LM)
    tok = AutoTokenizer.from_pretrained(source)
    return AutoModelForCausalLM.from_pretrained(source, **kwargs).eval(), tok


Pair = tuple[str, str] | tuple[str, str, str | None]  # (prompt, answer) or (prompt, answer, system)


def _messages(prompt: str, system: str | None) -> list[dict[str, str]]:
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]


def _chat_prompt(tok, prompt: str, system: str | None = None) -> str:
    if tok.chat_template is None or tok.chat_template == CHAT_TEMPLATE:
        return format_chat(prompt, system=system)
    # a hub instruct model: its own template (Qwen's adds its default system prompt when none is given)
    return tok.apply_chat_template(_messages(prompt, system), tokenize=False, add_generation_prompt=True)


def _chat_texts(tok, pairs: list[Pair]) -> tuple[list[str], list[int]]:
    prompts = [_chat_prompt(tok, pair[0], pair[2] if len(pair) > 2 else None) for pair in pairs]
    end = END if tok.chat_template in (None, CHAT_TEMPLATE) else tok.eos_token
    texts = [pr + (" " if end == END else "") + pair[1] + end for pr, pair in zip(prompts, pairs)]
    return texts, [len(tok(p)["input_ids"]) for p in prompts]


def chat_batch(tok, pairs: list[Pair], device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """A training batch of (prompt, answer[, system]) pairs with the loss on the answer tokens only."""
    texts, prompt_lens = _chat_texts(tok, pairs)
    return encode_batch(tok, texts, prompt_lens, device)


def finetune_pairs(model: PreTrainedModel, tok, pairs: list[Pair], steps: int = 150,
                   lr: float = 5e-3, batch_size: int = 16, seed: int = 0, progress: bool = True,
                   desc: str = "fine-tuning", optimizer: torch.optim.Optimizer | None = None,
                   autocast: torch.dtype | None = None, on_step: StepHook | None = None) -> list[float]:
    """Train whatever in `model` is trainable (a LoRA adapter, or everything) on chat pairs for a
    fixed number of steps (AdamW unless you pass an `optimizer`); returns the loss per step.
    `autocast=torch.bfloat16` (or float16) runs the forward in mixed precision over fp32 weights;
    `on_step(model, step, loss, batch)` runs after every step (events, checkpoints); raise in it to stop."""
    rng = random.Random(seed)
    torch.manual_seed(seed)
    device = next(model.parameters()).device
    batches = lambda step: chat_batch(tok, rng.sample(pairs, min(batch_size, len(pairs))), device)
    return _train(model, batches, steps, lr, desc, progress, optimizer, autocast, on_step)


def add_lora(model: PreTrainedModel, r: int = 8, alpha: int = 16,
             target_modules: tuple[str, ...] = ("q_proj", "v_proj")) -> PreTrainedModel:
    """Wrap a causal LM in a fresh LoRA adapter (no dropout, so runs are reproducible): the one
    place the course's LoRA configuration for causal LMs is built."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(task_type="CAUSAL_LM", r=r, lora_alpha=alpha, lora_dropout=0.0,
                        target_modules=list(target_modules))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return get_peft_model(model, config)


def style_lora_config(r: int = 8) -> "peft.LoraConfig":
    """The course's LoRA configuration for the causal LM: rank `r` on the query and value
    projections, alpha = 2r, no dropout (so that runs repeat exactly)."""
    from peft import LoraConfig

    return LoraConfig(task_type="CAUSAL_LM", r=r, lora_alpha=2 * r, lora_dropout=0.0,
                      target_modules=["q_proj", "v_proj"])


def lora_finetune(model: PreTrainedModel, tok, pairs: list[tuple[str, str]], r: int = 8,
                  alpha: int = 16, target_modules: tuple[str, ...] = ("q_proj", "v_proj"),
                  config: "peft.LoraConfig | None" = None, **train_kwargs) -> tuple[PreTrainedModel, list[float]]:
    """Wrap a causal LM in a fresh LoRA adapter (`config`, a `LoraConfig`, or one built from r,
    alpha and target_modules) and fine-tune it on chat pairs with the course's own loop: the one
    call lesson 08 uses (the fine-tuning service and lessons 13-14 train with TRL: `llm.sft`, `llm.dpo`).
    Returns (peft model, losses)."""
    torch.manual_seed(train_kwargs.get("seed", 0))
    if config is None:
        peft_model = add_lora(model, r, alpha, target_modules)
    else:
        from peft import get_peft_model

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            peft_model = get_peft_model(model, config)
    losses = finetune_pairs(peft_model, tok, pairs, **train_kwargs)
    return peft_model, losses


@torch.no_grad()
def answer_loss(model: PreTrainedModel, tok, pairs: list[tuple[str, str]]) -> float:
    """Mean cross-entropy on the answer tokens of held-out pairs: lower means the model expects them."""
    model.eval()
    device = next(model.parameters()).device
    return model(**chat_batch(tok, pairs, device)).loss.item()


@torch.no_grad()
def generate(model: PreTrainedModel, tok, prompt: str, max_new_tokens: int = 12,
             system: str | None = None) -> str:
    """The model's greedy reply to one user prompt (after an optional system prompt), decoded and
    stripped of the end marker."""
    model.eval()
    text = _chat_prompt(tok, prompt, system)
    device = next(model.parameters()).device
    ids = tok(text, return_tensors="pt").to(device)
    out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    return tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip()


def exact_match_rate(model: PreTrainedModel, tok, pairs: list[Pair], max_new_tokens: int = 8) -> float:
    """Generate greedy replies to (prompt, answer[, system]) pairs and score them with
    `judging.exact_match`: the share equal to the expected answer."""
    from course_utils.llm.judging import exact_match

    with one_thread_on_cpu(model):
        replies = [generate(model, tok, p[0], max_new_tokens, p[2] if len(p) > 2 else None) for p in pairs]
    return exact_match(replies, [p[1] for p in pairs])


def timed(fn, *args, **kwargs):
    """(result, seconds) of one call: for the 'how long did that take' lines in lessons."""
    start = time.perf_counter()
    return fn(*args, **kwargs), time.perf_counter() - start
