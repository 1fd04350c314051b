"""The local service's parts without HTTP: the atomic store, hyperparameters, the device the
models land on, and the client's job follower."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from types import SimpleNamespace

import pytest
import torch

from course_utils.llm.causal_lm import style_pairs
from course_utils.service import jobs as service_jobs
from course_utils.service.client import follow_job
from course_utils.service.jobs import MAX_EPOCHS, LocalBase, full_base, tiny_base
from course_utils.service.store import FolderInUse, Store, atomic_write
from course_utils.service.training import DPO_AUTO_BETA, DPO_AUTO_EPOCHS, resolve_hyperparameters


def test_atomic_write_keeps_the_old_file_when_the_replace_fails(tmp_path, monkeypatch):
    target = tmp_path / "job.json"
    atomic_write(target, b'{"status": "running"}')

    def crash(*args):
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        atomic_write(target, b'{"status": "succ')
    assert target.read_bytes() == b'{"status": "running"}' and list(tmp_path.iterdir()) == [target]


def test_events_survive_a_writer_killed_mid_stream(tmp_path):
    """A process appending events as fast as it can is SIGKILLed; every event on disk reads back."""
    code = textwrap.dedent(f"""
        from course_utils.service.store import Store
        store = Store({str(tmp_path)!r})
        store.save_job({{"id": "ftjob-x", "status": "running", "created_at": 0}})
        print("ready", flush=True)
        i = 0
        while True:
            store.add_event("ftjob-x", "step " + str(i) + " " + "x" * 2000, data={{"step": i}})
            i += 1
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env=os.environ | {"PYTHONPATH": os.getcwd()})
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    store = Store(tmp_path)
    events, more = store.events("ftjob-x", limit=100_000)
    assert events and not more
    steps = [e["data"]["step"] for e in events]
    assert steps == list(range(len(steps) - 1, -1, -1))  # newest first, none lost or torn
    store.add_event("ftjob-x", "after the restart")
    assert store.events("ftjob-x", limit=1)[0][0]["message"] == "after the restart"


def test_one_service_per_folder(tmp_path):
    first = Store(tmp_path)
    with pytest.raises(FolderInUse):
        Store(tmp_path)
    first.close()
    Store(tmp_path).close()


def test_ids_cannot_walk_out_of_the_store(tmp_path):
    store = Store(tmp_path)
    (tmp_path / "secret.json").write_text('{"id": "file-x"}')
    assert store.file("../secret") is None and store.job("../../secret") is None and store.file(["x"]) is None


def test_auto_epochs_are_capped_and_explicit_values_kept():
    steps = tiny_base().min_steps
    assert resolve_hyperparameters({"n_epochs": "auto"}, 1, steps)["n_epochs"] == MAX_EPOCHS
    assert resolve_hyperparameters({"n_epochs": "auto"}, 44, steps) == \
        {"batch_size": 16, "learning_rate_multiplier": 1.0, "n_epochs": 50}
    assert resolve_hyperparameters({"n_epochs": 2, "batch_size": 4, "learning_rate_multiplier": 0.5}, 10, steps) == \
        {"batch_size": 4, "learning_rate_multiplier": 0.5, "n_epochs": 2}


def test_dpo_auto_means_a_few_epochs_and_the_usual_beta():
    steps = tiny_base().min_steps
    assert resolve_hyperparameters({}, 44, steps, "dpo") == \
        {"batch_size": 16, "learning_rate_multiplier": 1.0, "n_epochs": DPO_AUTO_EPOCHS, "beta": DPO_AUTO_BETA}
    assert resolve_hyperparameters({"beta": 0.5, "n_epochs": 7}, 44, steps, "dpo")["beta"] == 0.5
    assert resolve_hyperparameters({"beta": 1}, 44, steps, "dpo")["beta"] == 1.0  # a float, as OpenAI reports it
    assert "beta" not in resolve_hyperparameters({}, 44, steps)


def test_full_profile_models_go_to_the_picked_device(monkeypatch):
    """`serve-openai --profile full` and lesson 11 on a GPU: training and chat load through
    `LocalBase.load`, which moves the model to `pick_device()` (here a stand-in device)."""
    from course_utils.llm.causal_lm import load_base

    monkeypatch.setattr(service_jobs, "pick_device", lambda: torch.device("meta"))
    monkeypatch.setattr("course_utils.llm.causal_lm.load_causal_lm", lambda profile, **kw: load_base(progress=False))
    base = full_base()
    assert base.device == torch.device("meta")
    model, _ = base.load()
    assert {p.device.type for p in model.parameters()} == {"meta"}
    from course_utils.service.chat import ChatModels

    models = ChatModels(SimpleNamespace(model_index=dict), base)
    chat_model, _ = models.get("gpt-4o-mini-2024-07-18")
    assert next(chat_model.parameters()).device.type == "meta"
    assert full_base("cpu").device == "cpu" and tiny_base().device == "cpu"


@pytest.mark.parametrize("method", ["supervised", "dpo"])
def test_the_worker_trains_with_the_lessons_trl_call(monkeypatch, tmp_path, method):
    """One training function per method, shared with the lessons: supervised jobs call
    `llm.sft.sft_train` (lesson 13), DPO jobs `llm.dpo.dpo_train` (lesson 14), on the base's device."""
    seen = {}

    def fake(model, tok, examples, **kwargs):
        seen.update(device=next(model.parameters()).device.type, epochs=kwargs["n_epochs"],
                    batch=kwargs["batch_size"], beta=kwargs.get("beta"), first=examples[0])
        raise RuntimeError("stop here")

    monkeypatch.setattr(f"course_utils.llm.{'dpo.dpo' if method == 'dpo' else 'sft.sft'}_train", fake)
    from course_utils.llm import instruct_data as data
    from course_utils.llm.causal_lm import load_base
    from course_utils.llm.chat_data import chat_example, write_jsonl
    from course_utils.llm.preference_data import preference_rows, ranked_answers, to_openai

    store = Store(tmp_path)
    if method == "dpo":
        lines = [to_openai(r) for r in preference_rows(ranked_answers(data.split_animals()[0]))]
    else:
        lines = [chat_example(q, a) for q, a in style_pairs()[0]]
    path = write_jsonl(lines, tmp_path / "t.jsonl")
    with open(path, "rb") as fh:
        f = store.add_file(fh, "t.jsonl", "fine-tune")
    worker = service_jobs.Worker(store, LocalBase("tiny", lambda: load_base(progress=False)))
    hp = {"n_epochs": 2, "batch_size": 16, "learning_rate_multiplier": 1}
    job = service_jobs.new_job({"model": "tiny", "training_file": f["id"], "seed": 0, "hyperparameters": hp,
                                "method": {"type": method, method: {"hyperparameters": {**hp, "beta": 0.3}
                                                                    if method == "dpo" else hp}}},
                               worker.base, "course")
    store.save_job(job)
    worker.submit(job["id"])
    deadline = time.time() + 60
    while store.job(job["id"])["status"] != "failed":
        assert time.time() < deadline
        time.sleep(0.05)
    worker.stop()
    assert seen["device"] == "cpu" and (seen["epochs"], seen["batch"]) == (2, 16)
    if method == "dpo":  # TRL's conversational pairs, converted from OpenAI's lines
        assert seen["beta"] == 0.3 and set(seen["first"]) == {"prompt", "chosen", "rejected"}
    else:  # OpenAI chat records as they are
        assert seen["first"] == lines[0]
    error = store.job(job["id"])["error"]
    assert error["code"] == "internal_error" and "stop here" not in error["message"]


class FakeJobs:
    def __init__(self, statuses):
        self.statuses = iter(statuses)

    def retrieve(self, job_id):
        return SimpleNamespace(status=next(self.statuses), finished_at=None)

    def list_events(self, job_id, limit):
        return SimpleNamespace(data=[SimpleNamespace(type="metrics", data={"step": 1, "total_steps": 9,
                                                                           "train_loss": 1.0})])


def test_follow_job_returns_the_finished_job_and_raises_on_timeout():
    client = SimpleNamespace(fine_tuning=SimpleNamespace(jobs=FakeJobs(["running", "succeeded"])))
    assert follow_job(client, "ftjob-x", poll=0).status == "succeeded"
    client = SimpleNamespace(fine_tuning=SimpleNamespace(jobs=FakeJobs(["running"] * 1000)))
    with pytest.raises(TimeoutError, match="still running"):
        follow_job(client, "ftjob-x", poll=0.01, timeout=0.1)


@pytest.mark.parametrize("capability, dtype", [((7, 5), torch.float32), ((8, 0), torch.bfloat16)])
def test_full_base_loads_qwen_in_the_lessons_precision(monkeypatch, capability, dtype):
    # on a T4 Qwen2.5 computes in fp32 (fp16 overflows), on Ampere in bf16: the lessons' rule
    import course_utils.llm.causal_lm as clm

    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    asked = []
    monkeypatch.setattr(clm, "load_causal_lm", lambda profile, **kw: asked.append((profile, kw)))
    base = service_jobs.full_base(device=torch.device("cuda"))
    base.loader()
    assert asked == [("full", {"dtype": dtype})]


@pytest.mark.parametrize("method", ["supervised", "dpo"])
def test_a_job_starting_mid_training_does_not_reset_the_running_trainer(method):
    """`max_running` > 1: a second job builds its TRL config while the first trains. Every
    TrainingArguments resets accelerate's process-wide state unless told to reuse it, and the
    running trainer then fails at its next step; the service's settings make it reuse the state."""
    from transformers import TrainerCallback
    from trl import SFTConfig

    from course_utils.llm import instruct_data as data
    from course_utils.llm.causal_lm import load_base
    from course_utils.llm.chat_data import chat_example
    from course_utils.llm.preference_data import preference_rows, ranked_answers
    from course_utils.llm.sft import trainer_settings
    from course_utils.service import training

    class SecondJobArrives(TrainerCallback):
        steps = 0

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 1:  # what the other job's worker thread does meanwhile
                SFTConfig(**trainer_settings(**training.SHARED_STATE)).device
            self.steps = state.global_step

    model, tok = load_base(progress=False)
    examples = preference_rows(ranked_answers(data.split_animals()[0][:4])) if method == "dpo" else \
        [chat_example(q, a) for q, a in style_pairs()[0][:16]]
    hp = {"n_epochs": 1, "batch_size": 4, "beta": 0.1}
    progress = SecondJobArrives()
    training.train(method, model, tok, examples, hp, 0, 5e-3, progress)
    assert progress.steps >= 3
