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
# Gradient checkpointing without torch's reentrant autograd.Function: reentrant checkpointing
# needs an input that requires grad (a frozen 4-bit base has none) and warns on every layer call.
NON_REENTRANT = {"use_reentrant": False}


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
                    heads: int | None = None, vocab: int | None = None, trainable: float = 0.005,
                    linear: float = 0.97, optimizer_bytes: float = 8.0, checkpointing: bool = False,
                    master_weights: bool = True) -> MemoryEstimate:
    """GiB to fine-tune a `parameters`-sized transformer with `full`, `lora` or `qlora` in `dtype`.

    Weights, gradients, optimizer: `full` in fp32 keeps 4 + 4 + 8 (AdamW's two fp32 moments,
    `optimizer_bytes`) bytes per parameter; `full` in 16-bit is mixed precision: fp32 master
    weights and gradients plus the 16-bit copy autocast computes with, 6 + 4 + 8 = 18 bytes
    (`master_weights=False`: pure 16-bit weights, 2 + 2 + 8, which loses small updates; lesson
    10). `lora`/`qlora` keep the frozen base at `dtype` (4-bit NF4 for the `linear` share under
    qlora) and train a `trainable` fraction in fp32: 4 + 4 + 8 bytes each.
    Activations (Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer
    Models", sec. 4): s*b*h*(34 + 5*a*s/h) *bytes* per layer with 16-bit activations, twice that
    in fp32; the 5*a*s/h attention-score term only with `heads` given (eager attention: fused
    SDPA/flash kernels do not store the scores); checkpointing keeps only each layer's input,
    2*s*b*h bytes. With `vocab`, plus the fp32 logits the loss keeps, 4*s*b*vocab bytes."""
    if method not in ("full", "lora", "qlora"):
        raise ValueError("method is one of full, lora, qlora")
    b = BYTES[dtype]
    if method == "qlora":
        weights = parameters * (linear * (4 + NF4_DQ_OVERHEAD_BITS) / 8 + (1 - linear) * b)
    else:
        weights = parameters * b
    if method == "full":
        if b < 4 and master_weights:  # fp32 master weights and gradients beside the 16-bit copy
            weights, grads = parameters * (4 + b), parameters * 4
        else:
            grads = parameters * b
        optim = parameters * optimizer_bytes
    else:  # adapters: fp32 weights, fp32 gradients, AdamW moments
        n = parameters * trainable
        weights += n * 4
        grads, optim = n * 4, n * optimizer_bytes
    if layers is None or hidden is None:  # a Llama-shaped guess: parameters ~ 12 * layers * hidden^2
        hidden = hidden or int(round((parameters / (12 * 32)) ** 0.5 / 128) * 128) or 128
        layers = layers or max(1, round(parameters / (12 * hidden**2)))
    scale = 1.0 if b < 4 else 2.0  # Korthikanti counts 16-bit activations; fp32 doubles them
    tokens = batch * sequence
    if checkpointing:
        per_layer = 2 * tokens * hidden * scale
    else:
        per_layer = tokens * hidden * (34 + (5 * heads * sequence / hidden if heads else 0)) * scale
    acts = layers * per_layer + (4 * tokens * vocab if vocab else 0)
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
