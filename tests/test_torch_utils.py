"""The shared parameter counter and thread guard."""

import torch
from peft import LoraConfig, get_peft_model
from torch import nn
from transformers import LlamaForCausalLM

from course_utils.llm import causal_lm as clm
from course_utils.llm.peft_tools import load_quantized
from course_utils.torch_utils import ParamCount, count_parameters, one_thread_on_cpu


def test_plain_module_counts_trainable_and_total():
    net = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    net[0].requires_grad_(False)
    count = count_parameters(net)
    assert count == ParamCount(trainable=8, total=23)
    trainable, total = count  # unpacks like the old (trainable, total) tuple
    assert (trainable, total) == (8, 23) and abs(count.fraction - 8 / 23) < 1e-12
    assert "8 of 23" in str(count)


def test_four_bit_weights_count_once_each_like_transformers():
    path = clm.base_model_path(progress=False)
    fp32 = LlamaForCausalLM.from_pretrained(str(path))
    q4 = load_quantized(LlamaForCausalLM, path, bits=4)
    packed = sum(p.numel() for p in q4.parameters())
    assert packed < fp32.num_parameters()  # two weights per byte: the naive sum under-counts
    assert count_parameters(q4).total == fp32.num_parameters() == q4.num_parameters()


def test_peft_model_uses_peft_counter():
    model, _ = clm.load_base(progress=False)
    lora = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"]))
    assert tuple(count_parameters(lora)) == lora.get_nb_trainable_parameters()


def test_thread_guard_restores_threads_and_skips_big_models():
    before = torch.get_num_threads()
    with one_thread_on_cpu(nn.Linear(2, 2)):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with one_thread_on_cpu(nn.Linear(2, 2), below=1):
        assert torch.get_num_threads() == before
