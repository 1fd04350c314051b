"""Lesson 15: fine-tuning on several processes with `accelerate` and `torch.distributed`.

- ``training`` the data-parallel plan (global batch, who trains on which examples), the
  token-weighted loss and loop that one process and N ranks share, gradient snapshots, exact
  per-rank bytes, and the course's answers to the exercises.
- ``launch``   start N ranks with `torchrun` from a notebook, with time limits, and always stop them.
- ``worker``   the program each rank runs, and the light jobs (the exercise check, a sleeper).
- ``ranks``    the lesson's job on every rank: DDP (accelerate), FSDP (`fully_shard`), saving.
- ``compare``  the notebook side: the single-process baseline, reloading the checkpoint, tables.
"""
