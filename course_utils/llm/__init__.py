"""Lessons 08-11: the tiny causal LM, LoRA/QLoRA tools, method comparison and chat-format data."""
