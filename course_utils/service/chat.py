"""Chat completions for the local OpenAI-compatible service: load the base model or an `ft:` model
(base + saved LoRA adapter) by name and answer with OpenAI's response shape; plus the
OpenAI-shaped error that every route raises."""

from __future__ import annotations

import json
import threading
import time
import warnings
from collections import OrderedDict
from typing import Any

import torch

from course_utils.service.jobs import BaseModel, Store, new_id


class ApiError(Exception):
    """An error that becomes an OpenAI-shaped JSON response with a 4xx status."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.body = status, {"error": {"message": message, "type": kind, "param": param, "code": code}}


def not_found(what: str, ident: str) -> ApiError:
    return ApiError(404, f"No {what} found with id '{ident}'.", "id", f"{what.replace(' ', '_')}_not_found")


class ChatModels:
    """Loaded models by name: the base, and `ft:` models as base + their saved LoRA adapter."""

    def __init__(self, store: Store, base: BaseModel, size: int = 4) -> None:
        self.store, self.base, self.size = store, base, size
        self.cache: OrderedDict[str, tuple[Any, Any]] = OrderedDict()
        self.lock = threading.Lock()

    def names(self) -> list[str]:
        index = json.loads((self.store.root / "models" / "index.json").read_text()) \
            if (self.store.root / "models" / "index.json").exists() else {}
        return [self.base.name] + [n for n in index if ":ckpt-step-" not in n]

    def get(self, name: str) -> tuple[Any, Any]:
        if name in self.cache:
            self.cache.move_to_end(name)
            return self.cache[name]
        if name == self.base.name:
            pair = self.base.load()
        else:
            path = self.store.adapter_dir(name)
            if path is None:
                raise ApiError(404, f"The model '{name}' does not exist or you do not have access to it.",
                               "model", "model_not_found")
            from peft import PeftModel

            model, tok = self.base.load()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                pair = (PeftModel.from_pretrained(model, path).eval(), tok)
        self.cache[name] = pair
        while len(self.cache) > self.size:
            self.cache.popitem(last=False)
        return pair

    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        """Answer a chat-completions request: temperature, max_tokens, stop and seed are honoured."""
        name, messages = body.get("model"), body.get("messages")
        if not isinstance(name, str):
            raise ApiError(400, "'model' is required.", "model", "missing_required_parameter")
        if not isinstance(messages, list) or not messages or not all(
                isinstance(m, dict) and isinstance(m.get("content"), str) and "role" in m for m in messages):
            raise ApiError(400, "'messages' must be a non-empty list of {role, content} objects.", "messages")
        temperature = float(body.get("temperature", 1.0) if body.get("temperature") is not None else 1.0)
        max_tokens = int(body.get("max_completion_tokens") or body.get("max_tokens") or 16)
        stop = body.get("stop") or []
        stop = [stop] if isinstance(stop, str) else list(stop)
        if not 0 <= temperature <= 2 or max_tokens < 1:
            raise ApiError(400, "temperature must be in [0, 2] and max_tokens >= 1.", "temperature")
        with self.lock:
            model, tok = self.get(name)
            chat = [{"role": m["role"], "content": m["content"]} for m in messages]
            text = tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
            ids = tok(text, return_tensors="pt")["input_ids"]
            limit = getattr(model.config, "max_position_embeddings", 4096)
            max_tokens = min(max_tokens, max(1, limit // 2))
            ids = ids[:, -(limit - max_tokens):]
            if body.get("seed") is not None:
                torch.manual_seed(int(body["seed"]))
            sample = temperature > 0
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_tokens,
                                 do_sample=sample, temperature=temperature if sample else None, top_p=None,
                                 top_k=None, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
        new = out[0, ids.shape[1]:]
        content = tok.decode(new, skip_special_tokens=True).strip()
        finish = "stop" if (len(new) < max_tokens or new[-1].item() == tok.eos_token_id) else "length"
        for s in stop:
            if s and s in content:
                content, finish = content[:content.index(s)], "stop"
        usage = {"prompt_tokens": ids.shape[1], "completion_tokens": len(new),
                 "total_tokens": ids.shape[1] + len(new)}
        return {"id": new_id("chatcmpl"), "object": "chat.completion", "created": int(time.time()),
                "model": name, "system_fingerprint": None, "usage": usage,
                "choices": [{"index": 0, "finish_reason": finish, "logprobs": None,
                             "message": {"role": "assistant", "content": content, "refusal": None}}]}
