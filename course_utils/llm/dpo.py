"""Preference tuning with TRL's `DPOTrainer`: the DPO loss for one pair (the reference the
lesson's exercise is checked against), the instruct model DPO starts from, the implicit rewards on
held-out pairs, and `dpo_train`, the one call the lesson's recipe and the local fine-tuning
service share."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from course_utils.llm import causal_lm as clm
from course_utils.llm import instruct_data as data
from course_utils.llm.sft import lora_config, train_adapter, trainer_settings
from course_utils.profile import cache_dir, cache_entry
from course_utils.text.models import quiet_transformers


def dpo_loss(policy_chosen: float, policy_rejected: float, ref_chosen: float, ref_rejected: float,
             beta: float) -> float:
    """-log sigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r))) for summed log-probs of one pair."""
    margin = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)
    return -F.logsigmoid(torch.tensor(beta * margin, dtype=torch.float64)).item()


# ---------------------------------------------------------------- the model DPO starts from

def instruct_model(progress: bool = False) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The tiny instruct model preference tuning starts from: the course's tiny base after lesson
    13's recipe (`sft.SFT_RECIPES["tiny"]`, LoRA on all linear layers, merged), cached after the
    first run."""
    from trl import SFTConfig, SFTTrainer

    from course_utils.llm.sft import SFT_RECIPES, tokenized_dataset

    base_cfg, recipe = clm.INSTRUCT_BASE, SFT_RECIPES["tiny"]
    tag = f"e{recipe['num_train_epochs']}-lr{recipe['learning_rate']}-b{recipe['per_device_train_batch_size']}"
    path = cache_dir("instruct_lm", f"{base_cfg.key()}-sft-{tag}")
    if not (path / "config.json").exists():
        model, tok = clm.load_base(base_cfg, progress=progress)
        animals, _ = data.split_animals()
        torch.manual_seed(0)  # the adapter's initial weights, as in lesson 13
        args = SFTConfig(**trainer_settings(), **recipe)
        trainer, _ = train_adapter(SFTTrainer, model, tok, args,
                                   tokenized_dataset(data.conversations(animals), tok))
        merged = trainer.model.merge_and_unload()
        with quiet_transformers(), cache_entry(path) as scratch:
            merged.save_pretrained(scratch)
            tok.save_pretrained(scratch)
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

    with quiet_transformers():
        return LlamaForCausalLM.from_pretrained(path).eval(), PreTrainedTokenizerFast.from_pretrained(path)


# ---------------------------------------------------------------- implicit rewards


@torch.no_grad()
def completion_logps(model: PreTrainedModel, tok: PreTrainedTokenizerBase, prompt: list[dict[str, str]],
                     completion: list[dict[str, str]]) -> float:
    """Summed log-probability of a completion's tokens after the prompt, as DPO scores it."""
    device = next(model.parameters()).device
    p_ids = tok.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
    full = tok.apply_chat_template(prompt + completion, tokenize=True, return_dict=True)["input_ids"]
    ids = torch.tensor([full], device=device)
    logps = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), -1)
    targets = ids[0, 1:]
    per_token = logps.gather(-1, targets[:, None])[:, 0]
    return per_token[len(p_ids) - 1:].sum().item()


def reward_accuracy(policy: PreTrainedModel, reference: PreTrainedModel, tok: PreTrainedTokenizerBase,
                    pairs: list[dict[str, Any]], beta: float) -> dict[str, float]:
    """On preference pairs (`prompt`/`chosen`/`rejected`): the share where the implicit reward
    beta*(log pi - log ref) of chosen beats rejected, and the mean margin, as TRL logs them."""
    wins, margins = 0, []
    for p in pairs:
        r = [beta * (completion_logps(policy, tok, p["prompt"], p[k]) - completion_logps(reference, tok, p["prompt"], p[k]))
             for k in ("chosen", "rejected")]
        wins += r[0] > r[1]
        margins.append(r[0] - r[1])
    return {"accuracy": wins / len(pairs), "margin": sum(margins) / len(margins)}


def reward_curves(history: list[dict[str, float]]) -> dict[str, list[float]]:
    """Per-step `rewards/*` and `loss` from a DPO trainer's log history, for plotting."""
    keys = ("loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies")
    rows = [h for h in history if "rewards/margins" in h]
    return {k: [float(h[k]) for h in rows] for k in keys}


# ---------------------------------------------------------------- the call the service makes


def dpo_train(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, pairs: list[dict[str, Any]],
              beta: float = 0.1, n_epochs: int = 3, learning_rate: float = 1e-2, batch_size: int = 8,
              lora_r: int = 8, lora_alpha: int = 16, target_modules: str | list[str] = "all-linear",
              seed: int = 0, max_length: int | None = 512,
              callbacks: list | None = None,
              settings: dict[str, Any] | None = None) -> tuple[PreTrainedModel, list[dict[str, float]]]:
    """LoRA-DPO a causal LM on conversational pairs (`prompt` messages, `chosen`/`rejected`
    assistant messages) with TRL; the frozen model (adapter off) is the reference. `callbacks`
    (`TrainerCallback`s) see every step; `settings` override `trainer_settings`. Returns (peft
    model with the trained adapter, log history with `rewards/*` per step)."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    if not pairs:
        raise ValueError("no preference pairs to train on")
    if not math.isfinite(beta) or beta <= 0:
        raise ValueError(f"beta must be a positive number, got {beta!r}")
    device = next(model.parameters()).device
    plumbing = trainer_settings(device, seed=seed, data_seed=seed, **(settings or {}))
    args = DPOConfig(**plumbing, beta=beta, loss_type=["sigmoid"],
                     num_train_epochs=n_epochs, learning_rate=learning_rate,
                     per_device_train_batch_size=batch_size, max_length=max_length, lr_scheduler_type="linear",
                     warmup_steps=2)
    rows = [{"prompt": p["prompt"], "chosen": p["chosen"], "rejected": p["rejected"]} for p in pairs]
    trainer, history = train_adapter(DPOTrainer, model, tokenizer, args, Dataset.from_list(rows),
                                     lora_config(target_modules, lora_r, lora_alpha), callbacks)
    return trainer.model, history
