"""Chat completions for the local OpenAI-compatible service: load the base model (under its own
name or any OpenAI base name it stands in for) or an `ft:` model (base + its published LoRA
adapter), and answer in OpenAI's shape, whole or streamed as `chat.completion.chunk` events."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Iterator

import torch

from course_utils.service.errors import ApiError, short
from course_utils.service.jobs import LOAD_LOCK, OPENAI_FINETUNABLE, LocalBase
from course_utils.service.schemas import ChatRequest
from course_utils.service.store import Store, new_id

DEFAULT_MAX_TOKENS = 256  # when a request sets no max_tokens (and the context leaves room)


def _cut(text: str, stops: list[str]) -> int | None:
    hits = [text.index(s) for s in stops if s in text]
    return min(hits) if hits else None


def _held_back(text: str, stops: list[str]) -> int:
    """How many trailing characters could still turn into a stop sequence."""
    return max((k for s in stops for k in range(1, len(s)) if text.endswith(s[:k])), default=0)


@dataclass
class _Prepared:
    name: str
    model: Any
    tok: Any
    ids: torch.Tensor
    max_new: int
    request: ChatRequest


class _Halt:
    """A stopping criterion another thread can trip (a stop sequence, a closed stream)."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


class ChatModels:
    """Loaded models by name, at most `size` at once; generation runs without a global lock, so a
    long answer from one model never makes requests to the others wait."""

    def __init__(self, store: Store, base: LocalBase, size: int = 4) -> None:
        self.store, self.base, self.size = store, base, size
        self.cache: OrderedDict[str, tuple[Any, Any]] = OrderedDict()
        self.lock = threading.Lock()
        self.loading: dict[str, threading.Lock] = {}
        self.seeded = threading.Lock()  # seeding and sampling in one step, so `seed` reproduces

    def names(self) -> list[str]:
        """The models a client may ask for: the base, the OpenAI names it stands in for, `ft:` models."""
        tuned = [n for n in self.store.model_index() if ":ckpt-step-" not in n]
        return [self.base.name, *OPENAI_FINETUNABLE, *tuned]

    def exists(self, name: str) -> bool:
        return self.base.serves(name) or self.store.adapter_dir(name) is not None

    def get(self, name: str) -> tuple[Any, Any]:
        """(model, tokenizer) for a model name, loaded on the service's device on first use."""
        key = self.base.name if self.base.serves(name) else name
        with self.lock:
            if key in self.cache:
                self.cache.move_to_end(key)
                return self.cache[key]
            gate = self.loading.setdefault(key, threading.Lock())
        with gate:  # one load per name; other names load or answer meanwhile
            with self.lock:
                if key in self.cache:
                    return self.cache[key]
            pair = self._load(key)
            with self.lock:
                self.cache[key] = pair
                self.loading.pop(key, None)
                while len(self.cache) > self.size:
                    self.cache.popitem(last=False)
        return pair

    def _load(self, key: str) -> tuple[Any, Any]:
        if key == self.base.name:
            return self.base.load()
        path = self.store.adapter_dir(key)
        if path is None:
            raise ApiError(404, f"The model '{short(key)}' does not exist or you do not have access to it.",
                           "model", "model_not_found")
        from peft import PeftModel

        with LOAD_LOCK, warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            model, tok = self.base.load()
            return PeftModel.from_pretrained(model, path).to(self.base.device).eval(), tok

    def _prepare(self, req: ChatRequest) -> _Prepared:
        model, tok = self.get(req.model)
        chat = [{"role": "system" if m.role == "developer" else m.role, "content": m.text()}
                for m in req.messages]
        text = tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        ids = tok(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
        limit = getattr(model.config, "max_position_embeddings", None) or 4096
        n, asked = ids.shape[1], req.max_completion_tokens or req.max_tokens
        if n >= limit or (asked is not None and n + asked > limit):
            wanted = f"you requested {n + asked} tokens ({n} in the messages, {asked} in the completion)" \
                if asked else f"your messages resulted in {n} tokens"
            raise ApiError(400, f"This model's maximum context length is {limit} tokens. However, {wanted}. "
                                "Please reduce the length of the messages or completion.",
                           "messages", "context_length_exceeded")
        return _Prepared(req.model, model, tok, ids, asked or min(DEFAULT_MAX_TOKENS, limit - n), req)

    def _generate(self, p: _Prepared, **extra: Any) -> torch.Tensor:
        req = p.request
        temperature = 1.0 if req.temperature is None else req.temperature
        sample = temperature > 0
        ids = p.ids.to(p.model.device)
        seeded = self.seeded if sample and req.seed is not None else contextlib.nullcontext()
        with seeded, torch.no_grad():
            if sample and req.seed is not None:
                torch.manual_seed(req.seed)
            out = p.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=p.max_new,
                                   do_sample=sample, temperature=temperature if sample else None,
                                   top_p=req.top_p if sample else None, top_k=None,
                                   eos_token_id=p.tok.eos_token_id, pad_token_id=p.tok.pad_token_id,
                                   **({"stop_strings": req.stops(), "tokenizer": p.tok} if req.stops() else {}),
                                   **extra)
        return out[0, ids.shape[1]:].cpu()

    def _finish(self, p: _Prepared, new: torch.Tensor) -> str:
        ended = len(new) < p.max_new or (len(new) and new[-1].item() == p.tok.eos_token_id)
        return "stop" if ended else "length"

    def _usage(self, p: _Prepared, new: torch.Tensor) -> dict[str, int]:
        return {"prompt_tokens": p.ids.shape[1], "completion_tokens": len(new),
                "total_tokens": p.ids.shape[1] + len(new)}

    def complete(self, req: ChatRequest) -> dict[str, Any]:
        """Answer a chat-completions request: temperature, top_p, max_tokens, stop and seed are honoured."""
        p = self._prepare(req)
        new = self._generate(p)
        content, finish = p.tok.decode(new, skip_special_tokens=True).strip(), self._finish(p, new)
        cut = _cut(content, req.stops())
        if cut is not None:
            content, finish = content[:cut], "stop"
        return {"id": new_id("chatcmpl"), "object": "chat.completion", "created": int(time.time()),
                "model": req.model, "system_fingerprint": None, "usage": self._usage(p, new),
                "choices": [{"index": 0, "finish_reason": finish, "logprobs": None,
                             "message": {"role": "assistant", "content": content, "refusal": None}}]}

    def stream(self, req: ChatRequest) -> Iterator[bytes]:
        """The same answer as server-sent events: a role chunk, content chunks as tokens arrive,
        a chunk with the finish reason, usage when asked for, then `data: [DONE]`. Its content
        joins to exactly what `complete` returns."""
        from transformers import StoppingCriteriaList, TextIteratorStreamer

        p = self._prepare(req)  # errors surface here, before the response starts
        stops, halt = req.stops(), _Halt()
        streamer = TextIteratorStreamer(p.tok, skip_prompt=True, skip_special_tokens=True)
        result: list[Any] = []

        def run() -> None:
            try:
                result.append(self._generate(p, streamer=streamer, stopping_criteria=StoppingCriteriaList([halt])))
            except Exception as exc:  # re-raised in the response's thread, which logs it
                result.append(exc)
                streamer.end()

        worker = threading.Thread(target=run, daemon=True)
        meta = {"id": new_id("chatcmpl"), "object": "chat.completion.chunk", "created": int(time.time()),
                "model": req.model, "system_fingerprint": None}

        def event(delta: dict[str, Any], finish: str | None = None, **more: Any) -> bytes:
            choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
            return b"data: " + json.dumps({**meta, "choices": [choice], **more}).encode() + b"\n\n"

        return self._events(p, worker, streamer, halt, stops, result, event, meta)

    def _events(self, p, worker, streamer, halt, stops, result, event, meta) -> Iterator[bytes]:
        worker.start()
        yield event({"role": "assistant", "content": "", "refusal": None})
        full, sent, stopped = "", 0, False
        try:
            for piece in streamer:
                full += piece
                text = full.lstrip()
                cut = _cut(text, stops)
                if cut is not None:
                    if cut > sent:
                        yield event({"content": text[sent:cut]})
                    stopped = True
                    break
                safe = min(len(text) - _held_back(text, stops), len(text.rstrip()))
                if safe > sent:
                    yield event({"content": text[sent:safe]})
                    sent = safe
            else:
                text = full.strip()
                if len(text) > sent:
                    yield event({"content": text[sent:]})
        finally:
            halt.event.set()
            worker.join()
        if result and isinstance(result[0], Exception):
            raise result[0]
        new = result[0] if result else torch.zeros(0, dtype=torch.long)
        yield event({}, "stop" if stopped else self._finish(p, new))
        if p.request.stream_options is not None and p.request.stream_options.include_usage:
            usage = self._usage(p, new)
            yield b"data: " + json.dumps({**meta, "choices": [], "usage": usage}).encode() + b"\n\n"
        yield b"data: [DONE]\n\n"
