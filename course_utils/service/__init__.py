"""The local OpenAI-compatible fine-tuning service: job store and worker, chat completions, HTTP."""
