"""Stand-in hub checkpoints: the real model classes and configs (shrunk, or full size with
COURSE_REHEARSAL_SIZE=full), random weights, saved with their tokenizer in one folder so that every
`from_pretrained(folder, ...)` call of the full code (heads, dtype, quantization_config,
device_map) runs unchanged. Full-size values are those of each checkpoint's config.json on the hub."""

from __future__ import annotations

from pathlib import Path

import torch

from course_utils.rehearsal import checkpoint
from course_utils.rehearsal.tokenizers import qwen2, wordpiece


def _padded(n: int, multiple: int = 64) -> int:
    return -(-n // multiple) * multiple


def _save(model, tok, folder: Path, dtype: torch.dtype = torch.float32) -> None:
    from course_utils.text.models import quiet_transformers

    torch.manual_seed(0)
    model.to(dtype)
    with quiet_transformers():
        model.save_pretrained(folder)
        tok.save_pretrained(folder)


@checkpoint("distilbert-base-uncased")
def distilbert(size: str, folder: Path) -> None:
    """distilbert-base-uncased: DistilBertForMaskedLM, 6 layers x 768, uncased WordPiece."""
    from transformers import DistilBertConfig, DistilBertForMaskedLM, DistilBertTokenizer

    tok = wordpiece(DistilBertTokenizer, cased=False)
    dims = (dict(vocab_size=30522, dim=768, n_layers=6, n_heads=12, hidden_dim=3072) if size == "full"
            else dict(vocab_size=_padded(len(tok)), dim=32, n_layers=2, n_heads=2, hidden_dim=64))
    config = DistilBertConfig(max_position_embeddings=512, pad_token_id=tok.pad_token_id, **dims)
    torch.manual_seed(0)
    _save(DistilBertForMaskedLM(config), tok, folder)


@checkpoint("bert-base-cased")
def bert_cased(size: str, folder: Path) -> None:
    """bert-base-cased: BertForMaskedLM, 12 layers x 768, cased WordPiece."""
    from transformers import BertConfig, BertForMaskedLM, BertTokenizer

    tok = wordpiece(BertTokenizer, cased=True)
    dims = (dict(vocab_size=28996, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072) if size == "full"
            else dict(vocab_size=_padded(len(tok)), hidden_size=32, num_hidden_layers=2,
                      num_attention_heads=2, intermediate_size=64))
    config = BertConfig(max_position_embeddings=512, type_vocab_size=2, pad_token_id=tok.pad_token_id, **dims)
    torch.manual_seed(0)
    _save(BertForMaskedLM(config), tok, folder)


@checkpoint("Qwen/Qwen2.5-0.5B-Instruct")
def qwen25_instruct(size: str, folder: Path) -> None:
    """Qwen2.5-0.5B-Instruct: Qwen2ForCausalLM, 24 layers x 896, GQA 14/2 heads, tied embeddings,
    stored in bfloat16 (so `dtype="auto"` loads bf16, as from the hub), with its generation config."""
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    tok = qwen2()
    dims = (dict(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                 num_attention_heads=14, num_key_value_heads=2, max_window_layers=21) if size == "full"
            else dict(vocab_size=_padded(len(tok)), hidden_size=64, intermediate_size=128,
                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      max_window_layers=2))
    endoftext, im_end = tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_end|>"])
    config = Qwen2Config(max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-6,
                         tie_word_embeddings=True, use_sliding_window=False, sliding_window=32768,
                         hidden_act="silu", bos_token_id=endoftext, eos_token_id=im_end,
                         dtype="bfloat16", **dims)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=endoftext, eos_token_id=[im_end, endoftext], pad_token_id=endoftext,
        do_sample=True, temperature=0.7, top_p=0.8, top_k=20, repetition_penalty=1.1)
    _save(model, tok, folder, torch.bfloat16)
