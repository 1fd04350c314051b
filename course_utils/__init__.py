"""Helper package for the finetune-course notebooks: the real code behind every lesson.

Subpackages by concern, so the code behind any notebook cell is one hop away:

- ``vision/``    lessons 02-03: CNN backbones and surgery (``models``), digits and hub images
                 (``data``), the training loop (``train``), the four recipes side by side (``compare``).
- ``text/``      lessons 01, 04-07, 12: offline text data (``data``), encoders (``models``), a
                 plain loop (``loop``), the ``Trainer`` recipe for every task (``trainer``), learning
                 curves (``curves``), ``ner``, ``qa``, reports and sweeps (``evaluation``), data
                 quality (``quality``).
- ``llm/``       lessons 08-11: the generated world the tiny LMs learn and their chat layouts
                 (``tiny_world``), the tiny causal LM and LoRA (``causal_lm``), quantisation and memory
                 (``peft_tools``), method comparison (``methods``), chat JSONL (``chat_data``),
                 generated support tickets (``support_tickets``); lessons 13-14: TRL's SFT
                 (``sft``, ``instruct_data``), DPO (``dpo``, ``preference_data``), ``judging``.
- ``service/``   the local OpenAI-compatible fine-tuning service: on-disk store (``store``), base
                 model and training worker (``jobs``), chat completions (``chat``), request models
                 (``schemas``), errors (``errors``), FastAPI app and runners (``server``,
                 ``middleware``), and the client-side ``follow_job`` (``client``).
- ``distributed/`` lesson 15: the data-parallel plan and shared loop (``training``), launching
                 ranks with torchrun and always stopping them (``launch``), what each rank runs
                 (``worker``, ``ranks``), the notebook's baseline and comparisons (``compare``).
- ``grading/``   ``course check``: gathering submissions (``submissions``), the bubblewrap sandbox
                 (``sandbox``, ``confine``), the confined kernel and its probe cell (``kernel``), the
                 data-only boundary (``wire``), verdicts (``grade``), reports (``report``).
- ``notebooks/`` ``course build`` and ``course run``: lesson files, learner copies, Colab cells,
                 headless execution.
- ``exercises/`` one checker module per lesson (``exNN``).
- ``rehearsal/`` local stand-ins (real classes and features, shrunk, random weights) that ``hub``
                 returns in the full-profile rehearsal instead of hub models and data.
- shared: ``profile`` (tiny/full, device, precision, seeds, caches), ``checks`` (``check()``),
  ``hub`` (the one loading boundary for hub checkpoints, datasets and torchvision weights),
  ``torch_utils`` (parameter counts, CPU threads), ``plots``, ``doctor`` and ``cli``.
"""

import logging as _logging

__version__ = "0.1.0"

# bitsandbytes logs a warning on CPUs with AVX512-BF16 when it cannot fetch an optional faster
# 4-bit kernel from a hub; offline that fetch always fails and the built-in kernel is used instead.
_logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(_logging.ERROR)
