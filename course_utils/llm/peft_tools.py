"""PEFT and quantisation: 4/8-bit loading, footprints, adapter sizes, and the training-memory
estimator that explains why a 7B model fits a 15 GB T4 only with QLoRA."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

GB = 1024**3
BYTES = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "int8": 1.0, "nf4": 0.5}
# NF4 with double quantisation stores per 64-weight block an 8-bit absmax, plus one fp32 constant
# per 256 blocks for those absmaxes (QLoRA paper, section 3): 8/64 + 32/(64*256) bits per weight.
NF4_DQ_OVERHEAD_BITS = 8 / 64 + 32 / (64 * 256)


def bnb_config(bits: int, compute_dtype: torch.dtype = torch.float32, double_quant: bool = True):
    """The `BitsAndBytesConfig` for 4-bit NF4 (QLoRA's choice) or 8-bit LLM.int8() loading."""
    from transformers import BitsAndBytesConfig

    if bits == 4:
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                  bnb_4bit_use_double_quant=double_quant,
                                  bnb_4bit_compute_dtype=compute_dtype)
    if bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    raise ValueError("bitsandbytes loads weights in 4 or 8 bits")


def load_quantized(model_class, path: str | Path, bits: int, compute_dtype: torch.dtype = torch.float32,
                   device_map: str = "cpu", **kwargs):
    """Load a saved checkpoint with its linear layers quantised to `bits` (4 or 8), or as a given
    `quantization_config`; everything else (embeddings, norms, heads) stays in `compute_dtype`."""
    from course_utils.text.models import quiet_transformers

    config = kwargs.pop("quantization_config", None) or bnb_config(bits, compute_dtype)
    with quiet_transformers():
        return model_class.from_pretrained(str(path), quantization_config=config,
                                           device_map=device_map, dtype=compute_dtype, **kwargs)


def footprint_mb(model: nn.Module) -> float:
    """Bytes held by a model's parameters and buffers, in MB: what quantisation shrinks."""
    tensors = list(model.parameters()) + list(model.buffers())
    seen, total = set(), 0
    for t in tensors:
        if id(t) not in seen:
            seen.add(id(t))
            total += t.numel() * t.element_size()
    return total / 1e6


def folder_mb(path: str | Path) -> float:
    """Size on disk of a saved model or adapter folder, in MB."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) / 1e6


def linear_share(model: nn.Module) -> float:
    """Share of a model's parameters inside quantisable `nn.Linear` layers (not the embeddings,
    norms or output head, which bitsandbytes keeps in 16/32 bits)."""
    total = sum(p.numel() for p in model.parameters())
    skip = {id(m) for n, m in model.named_modules() if n.split(".")[-1] in ("lm_head", "classifier", "score")}
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear) and id(m) not in skip)
    return linear / total


@dataclass
class MemoryEstimate:
    """Training memory in GB, split the way the lesson explains it."""

    weights: float
    gradients: float
    optimizer: float
    activations: float

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer + self.activations

    def row(self) -> dict[str, float]:
        return {"weights": self.weights, "gradients": self.gradients, "optimizer": self.optimizer,
                "activations": self.activations, "total": self.total}


def estimate_memory(parameters: float, method: str, dtype: str = "bf16", batch: int = 1,
                    sequence: int = 512, *, hidden: int | None = None, layers: int | None = None,
                    trainable: float = 0.005, linear: float = 0.97, optimizer_bytes: float = 8.0,
                    checkpointing: bool = False) -> MemoryEstimate:
    """GB to fine-tune a `parameters`-sized transformer with `full`, `lora` or `qlora`:
    weights at `dtype` (4-bit NF4 for the `linear` share under qlora), gradients and AdamW state
    (two fp32 moments, `optimizer_bytes` per trainable parameter) for what trains (everything,
    or a `trainable` fraction kept in fp32 for adapters), and the activations autograd saves."""
    if method not in ("full", "lora", "qlora"):
        raise ValueError("method is one of full, lora, qlora")
    b = BYTES[dtype]
    if method == "qlora":
        weights = parameters * (linear * (4 + NF4_DQ_OVERHEAD_BITS) / 8 + (1 - linear) * b)
    else:
        weights = parameters * b
    if method == "full":
        grads, optim = parameters * b, parameters * optimizer_bytes
    else:  # adapters: fp32 weights, fp32 gradients, AdamW moments
        n = parameters * trainable
        weights += n * 4
        grads, optim = n * 4, n * optimizer_bytes
    if layers is None or hidden is None:  # a Llama-shaped guess: parameters ~ 12 * layers * hidden^2
        hidden = hidden or int(round((parameters / (12 * 32)) ** 0.5 / 128) * 128) or 128
        layers = layers or max(1, round(parameters / (12 * hidden**2)))
    # ~34 values of size hidden saved per token per layer (attention + MLP inputs, norms,
    # softmax-free flash attention); with checkpointing only each layer's input is kept.
    per_token_layer = (2 if checkpointing else 34) * hidden * b
    acts = batch * sequence * layers * per_token_layer
    return MemoryEstimate(weights / GB, grads / GB, optim / GB, acts / GB)


def saved_activation_bytes(model: nn.Module, batch: dict) -> int:
    """Bytes autograd keeps for the backward pass of one forward: activation memory, measured."""
    total, seen = 0, set()
    params = {p.data_ptr() for p in model.parameters()}

    def pack(t: torch.Tensor):
        nonlocal total
        key = (t.data_ptr(), t.shape, t.dtype)
        if t.data_ptr() not in params and key not in seen:
            seen.add(key)
            total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = model(**batch).loss
    loss.backward()
    model.zero_grad(set_to_none=True)
    return total


def measured_training_memory(model: nn.Module, batch: dict, lr: float = 1e-4) -> MemoryEstimate:
    """The same four numbers as `estimate_memory`, counted from real tensors after one AdamW step."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    acts = saved_activation_bytes(model, batch)
    opt = torch.optim.AdamW(trainable, lr=lr)
    model(**batch).loss.backward()
    grads = sum(p.grad.numel() * p.grad.element_size() for p in trainable if p.grad is not None)
    opt.step()
    state = sum(v.numel() * v.element_size() for s in opt.state.values() for k, v in s.items()
                if torch.is_tensor(v) and k != "step")
    opt.zero_grad(set_to_none=True)
    return MemoryEstimate(footprint_mb(model) * 1e6 / GB, grads / GB, state / GB, acts / GB)


class PeakMemory:
    """Peak memory of a block: `torch.cuda.max_memory_allocated` on a GPU, else the process's
    resident set size (psutil) sampled every few milliseconds, minus what it was at the start."""

    def __init__(self, device: torch.device | str = "cpu", interval: float = 0.002) -> None:
        self.device, self.interval = torch.device(device), interval
        self.peak_mb = 0.0

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self._start = torch.cuda.memory_allocated(self.device)
            return self
        import psutil

        self._proc, self._stop = psutil.Process(), threading.Event()
        self._start = self._high = self._proc.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._high = max(self._high, self._proc.memory_info().rss)
            time.sleep(self.interval)

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            self.peak_mb = (torch.cuda.max_memory_allocated(self.device) - self._start) / 1e6
            return
        self._stop.set()
        self._thread.join()
        self._high = max(self._high, self._proc.memory_info().rss)
        self.peak_mb = (self._high - self._start) / 1e6
