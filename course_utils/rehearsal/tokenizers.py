"""Stand-in tokenizers of the same kind as the hub ones: WordPiece for the BERT family (cased or
uncased) and Qwen2's byte-level BPE with Qwen2.5-Instruct's special tokens and chat template."""

from __future__ import annotations

import json
import string

from course_utils.rehearsal.text import corpus

BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

# The added tokens of Qwen2.5-Instruct, in id order from 151643 (its tokenizer_config.json).
QWEN_ADDED = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>",
              "<|object_ref_end|>", "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>",
              "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>",
              "<|video_pad|>", "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>",
              "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>"]

# Qwen2.5-Instruct's chat template, verbatim from `chat_template` in
# https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct/blob/main/tokenizer_config.json
# (ChatML; the default system prompt applies when the first message is not a system message).
QWEN25_CHAT_TEMPLATE = (
    "{%- if tools %}\n"
    "    {{- '<|im_start|>system\\n' }}\n"
    "    {%- if messages[0]['role'] == 'system' %}\n"
    "        {{- messages[0]['content'] }}\n"
    "    {%- else %}\n"
    "        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}\n"
    "    {%- endif %}\n"
    "    {{- \"\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\n"
    "You are provided with function signatures within <tools></tools> XML tags:\\n<tools>\" }}\n"
    "    {%- for tool in tools %}\n"
    "        {{- \"\\n\" }}\n"
    "        {{- tool | tojson }}\n"
    "    {%- endfor %}\n"
    "    {{- \"\\n</tools>\\n\\nFor each function call, return a json object with function name and "
    "arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\\"name\\\": <function-name>, "
    "\\\"arguments\\\": <args-json-object>}\\n</tool_call><|im_end|>\\n\" }}\n"
    "{%- else %}\n"
    "    {%- if messages[0]['role'] == 'system' %}\n"
    "        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n"
    "    {%- else %}\n"
    "        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
    "assistant.<|im_end|>\\n' }}\n"
    "    {%- endif %}\n"
    "{%- endif %}\n"
    "{%- for message in messages %}\n"
    "    {%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first) or "
    "(message.role == \"assistant\" and not message.tool_calls) %}\n"
    "        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}\n"
    "    {%- elif message.role == \"assistant\" %}\n"
    "        {{- '<|im_start|>' + message.role }}\n"
    "        {%- if message.content %}\n"
    "            {{- '\\n' + message.content }}\n"
    "        {%- endif %}\n"
    "        {%- for tool_call in message.tool_calls %}\n"
    "            {%- if tool_call.function is defined %}\n"
    "                {%- set tool_call = tool_call.function %}\n"
    "            {%- endif %}\n"
    "            {{- '\\n<tool_call>\\n{\"name\": \"' }}\n"
    "            {{- tool_call.name }}\n"
    "            {{- '\", \"arguments\": ' }}\n"
    "            {{- tool_call.arguments | tojson }}\n"
    "            {{- '}\\n</tool_call>' }}\n"
    "        {%- endfor %}\n"
    "        {{- '<|im_end|>\\n' }}\n"
    "    {%- elif message.role == \"tool\" %}\n"
    "        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != \"tool\") %}\n"
    "            {{- '<|im_start|>user' }}\n"
    "        {%- endif %}\n"
    "        {{- '\\n<tool_response>\\n' }}\n"
    "        {{- message.content }}\n"
    "        {{- '\\n</tool_response>' }}\n"
    "        {%- if loop.last or (messages[loop.index0 + 1].role != \"tool\") %}\n"
    "            {{- '<|im_end|>\\n' }}\n"
    "        {%- endif %}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|im_start|>assistant\\n' }}\n"
    "{%- endif %}\n"
)


def wordpiece_vocab(cased: bool) -> dict[str, int]:
    """Specials, every printable ASCII character alone and as a `##` continuation (so no ASCII
    word is ever [UNK]), then the words of the generated corpus."""
    chars = [c for c in string.printable if not c.isspace()]
    if not cased:
        chars = [c for c in chars if not c.isupper()]
    words = sorted({w for line in corpus() for w in line.replace(".", " . ").replace(",", " , ").split()
                    if w.isalpha()})
    if not cased:
        words = sorted({w.lower() for w in words})
    tokens = BERT_SPECIALS + chars + ["##" + c for c in chars if c.isalnum()] + words
    return {t: i for i, t in enumerate(dict.fromkeys(tokens))}


def wordpiece(tokenizer_class: type, cased: bool):
    """A BERT-family tokenizer (`BertTokenizer`, `DistilBertTokenizer`, ...) over a generated
    WordPiece vocabulary, with the hub checkpoints' 512-token limit."""
    return tokenizer_class(vocab=wordpiece_vocab(cased), do_lower_case=not cased, model_max_length=512)


def _chat_corpus() -> list[str]:
    # What the LLM lessons send through the chat template: merges for it keep sequences short
    # (measured: 0.05 against 0.02 CPU s per training step at 112 vs 40 tokens).
    from course_utils.llm.causal_lm import pretraining_corpus, style_pairs

    system = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
    pairs = [f"{q} {a}" for part in style_pairs(context=True) for q, a in part]
    return corpus() + pretraining_corpus() + pairs + [system] * 20


def qwen2(vocab_size: int = 1500):
    """A `Qwen2Tokenizer`: byte-level BPE trained on the generated corpus with Qwen2's own
    pre-tokenizer, Qwen2.5-Instruct's added tokens (eos `<|im_end|>`, pad `<|endoftext|>`) and
    its chat template."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    bpe.train_from_iterator(_chat_corpus(), trainers.BpeTrainer(
        vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    model = json.loads(bpe.to_str())["model"]
    vocab = dict(model["vocab"])
    for token in QWEN_ADDED:
        vocab[token] = len(vocab)
    special = QWEN_ADDED[1:14]  # <|im_start|> ... <|video_pad|>: its additional_special_tokens
    tok = Qwen2Tokenizer(vocab=vocab, merges=[tuple(m) for m in model["merges"]], unk_token=None,
                         eos_token="<|im_end|>", pad_token="<|endoftext|>",
                         extra_special_tokens=[t for t in special if t != "<|im_end|>"],
                         model_max_length=131072, errors="replace", split_special_tokens=False)
    tok.add_tokens(QWEN_ADDED[14:])  # <tool_call> ... <|file_sep|>: added, not special
    tok.chat_template = QWEN25_CHAT_TEMPLATE
    return tok
