"""The local OpenAI-compatible service, driven end to end by the official `openai` client (raw
HTTP or sockets only where the client cannot express the request)."""

import json
import os
import re
import socket
import statistics
import time

import httpx
import openai
import pytest
from openai import OpenAI
from openai.types import FileDeleted, FileObject, Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.fine_tuning import FineTuningJob, FineTuningJobEvent
from openai.types.fine_tuning.jobs import FineTuningJobCheckpoint

from course_utils.claims import claim
from course_utils.llm import instruct_data as data
from course_utils.llm.causal_lm import style_pairs
from course_utils.llm.chat_data import chat_example, write_jsonl
from course_utils.llm.preference_data import to_openai
from course_utils.service.client import latencies
from course_utils.service.server import local_service
from course_utils.service.store import TERMINAL

GPT = "gpt-4o-mini-2024-07-18"
GPT_DPO = "gpt-4.1-mini-2025-04-14"  # a model OpenAI's DPO guide lists
JSON_LIMIT, UPLOAD_LIMIT = 256 << 10, 1 << 20


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    with local_service(tmp_path_factory.mktemp("svc"), json_limit=JSON_LIMIT, upload_limit=UPLOAD_LIMIT) as running:
        yield running


def connect(running):
    return OpenAI(base_url=running.base_url, api_key=running.api_key, max_retries=0)


@pytest.fixture(scope="module")
def client(svc):
    return connect(svc)


@pytest.fixture(scope="module")
def raw(svc):
    with httpx.Client(base_url=svc.base_url, headers={"Authorization": f"Bearer {svc.api_key}"}) as http:
        yield http


def wait(client, job_id, timeout=180, until=TERMINAL):
    deadline = time.time() + timeout
    while (job := client.fine_tuning.jobs.retrieve(job_id)).status not in until:
        assert time.time() < deadline, f"job stuck in {job.status}"
        time.sleep(0.05)
    return job


def upload(client, tmp_path, examples, name="train.jsonl"):
    path = write_jsonl(examples, tmp_path / name)
    with open(path, "rb") as fh:
        return client.files.create(file=fh, purpose="fine-tune")


def ask(client, model, prompt, **options):
    """`model`'s greedy reply to `prompt`: a user message's text, or a whole list of messages."""
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
    reply = client.chat.completions.create(model=model, messages=messages,
                                           **({"temperature": 0, "max_tokens": 12} | options))
    return reply.choices[0].message.content


def steps_done(client, job_id):
    events = client.fine_tuning.jobs.list_events(job_id, limit=20).data
    return max((e.data["step"] for e in events if e.type == "metrics"), default=0)


@pytest.fixture(scope="module")
def train_file(client, tmp_path_factory):
    train, _ = style_pairs()
    return upload(client, tmp_path_factory.mktemp("data"), [chat_example(q, a) for q, a in train])


@pytest.fixture(scope="module")
def finished(client, train_file):
    """The lesson's job, with the seed's OpenAI model name; latency is measured while it trains."""
    models = lambda: client.models.list()
    chat = lambda: ask(client, GPT, "what color is the fox ?", max_tokens=8)
    chat()  # load the base model once
    idle = {"models": latencies(models, 8), "chat": latencies(chat, 8)}
    job = client.fine_tuning.jobs.create(model=GPT, training_file=train_file.id, suffix="oneword",
                                         seed=int(os.environ["COURSE_SEED"]),
                                         method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": "auto"}}})
    assert job.status == "validating_files" and job.object == "fine_tuning.job"
    wait(client, job.id, until=("running",) + TERMINAL)
    while (first := steps_done(client, job.id)) < 1:  # the model is loaded; steps are under way
        time.sleep(0.05)
    busy = {"models": latencies(models, 8), "chat": latencies(chat, 8)}
    during = steps_done(client, job.id) - first
    assert client.fine_tuning.jobs.retrieve(job.id).status == "running", "the job ended before the measurement did"
    measured = {"idle": idle, "training": busy, "steps_during_measurement": during}
    print("latency (s):", json.dumps({k: v if isinstance(v, int) else {c: round(statistics.median(x), 4)
                                                                       for c, x in v.items()} for k, v in measured.items()}))
    return job.id, wait(client, job.id), measured


# ---------------------------------------------------------------- files


def test_files_round_trip_and_strict_types(client, raw, tmp_path):
    f = upload(client, tmp_path, [chat_example("q ?", "a")] * 2, "small.jsonl")
    assert f.object == "file" and f.purpose == "fine-tune" and f.filename == "small.jsonl" and f.status == "processed"
    FileObject.model_validate(raw.get(f"/files/{f.id}").json(), strict=True)
    assert client.files.retrieve(f.id).bytes == f.bytes
    lines = client.files.content(f.id).content.decode().splitlines()
    assert json.loads(lines[0]) == chat_example("q ?", "a")
    assert f.id in [x.id for x in client.files.list(purpose="fine-tune")]
    FileDeleted.model_validate(raw.delete(f"/files/{f.id}").json(), strict=True)
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(f.id)


def test_bad_uploads_are_400(client, raw, tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text("{}\n")
    with open(path, "rb") as fh, pytest.raises(openai.BadRequestError) as err:
        client.files.create(file=fh, purpose="nonsense")
    assert err.value.body["param"] == "purpose"
    missing = raw.post("/files", data={"purpose": "fine-tune"})
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "file"
    garbage = raw.post("/files", content=b"--x\r\nnot a form", headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert garbage.status_code == 400 and "error" in garbage.json()


# ---------------------------------------------------------------- the lesson's job


def test_job_succeeds_under_an_openai_name_with_events_checkpoints_and_model(client, raw, finished):
    job_id, job, _ = finished
    assert job.status == "succeeded", job.error
    assert job.model == GPT and job.fine_tuned_model == f"ft:{GPT}:course:oneword:{job_id.split('-')[1][:8]}"
    body = raw.get(f"/fine_tuning/jobs/{job_id}").json()
    FineTuningJob.model_validate(body, strict=True)
    assert body["user_provided_suffix"] == "oneword" and "suffix" not in body
    assert body["metadata"]["local_base_model"] == "tiny-llama-world"
    assert job.trained_tokens > 0 and job.finished_at >= job.created_at
    assert job.hyperparameters.n_epochs >= 3 and job.method.type == "supervised"
    events = client.fine_tuning.jobs.list_events(job_id, limit=5)
    assert len(events.data) == 5 and events.has_more
    assert events.data[0].message == "The job has successfully completed"
    everything = raw.get(f"/fine_tuning/jobs/{job_id}/events", params={"limit": 1000}).json()["data"]
    for e in everything:
        FineTuningJobEvent.model_validate(e, strict=True)
    assert any("in place of 'gpt-4o-mini-2024-07-18'" in e["message"] for e in everything)
    metrics = [e for e in everything if e["type"] == "metrics"]
    assert metrics and metrics[0]["data"]["train_loss"] < metrics[-1]["data"]["train_loss"]
    page2 = client.fine_tuning.jobs.list_events(job_id, limit=5, after=events.data[-1].id)
    assert page2.data[0].id not in {e.id for e in events.data}
    ckpts = raw.get(f"/fine_tuning/jobs/{job_id}/checkpoints").json()["data"]
    for c in ckpts:
        FineTuningJobCheckpoint.model_validate(c, strict=True)
    assert len(ckpts) == 3 and ckpts[0]["step_number"] > ckpts[-1]["step_number"]
    assert ckpts[0]["fine_tuned_model_checkpoint"].startswith(job.fine_tuned_model + ":ckpt-step-")
    for m in raw.get("/models").json()["data"]:
        Model.model_validate(m, strict=True)
    assert {GPT, job.fine_tuned_model} <= {m.id for m in client.models.list()}
    assert client.models.retrieve(job.fine_tuned_model).id == job.fine_tuned_model
    assert job_id in [j.id for j in client.fine_tuning.jobs.list(limit=10)]


def test_fine_tuned_model_answers_in_the_trained_style(client, finished):
    _, job, _ = finished
    train, held_out = style_pairs()
    prompt, answer = train[0]
    base, tuned = ask(client, GPT, prompt), ask(client, job.fine_tuned_model, prompt)
    # the base answers in a sentence ("the yak is white ."); the fine-tuned model in one word
    assert base != tuned and tuned == answer and len(base.split()) > 2
    replies = [ask(client, job.fine_tuned_model, q) for q, _ in held_out[:9]]
    one_word = sum(len(r.split()) == 1 for r in replies)
    # 7-9 of 9 over seeds 0-4 x two CPU paths; the base answers none in one word
    claim("test: the supervised job's model answers 5 of 9 held-out prompts in one word", one_word >= 5,
          one_word=one_word)
    ckpt = client.fine_tuning.jobs.checkpoints.list(job.id).data[-1].fine_tuned_model_checkpoint
    assert ask(client, ckpt, prompt)


def test_models_and_chat_stay_responsive_while_a_job_trains(finished):
    """Generous bound: a request made while the worker trains is at most ~20x its idle time (plus
    0.5 s of scheduling slack); the old single lock made chat wait for whole generations."""
    _, _, measured = finished
    assert measured["steps_during_measurement"] > 0, "no training happened during the measurement"
    for call in ("models", "chat"):
        idle, busy = statistics.median(measured["idle"][call]), max(measured["training"][call])
        assert busy < 20 * idle + 0.5, (call, measured)


def test_the_seed_lessons_code_runs_with_only_base_url_changed(svc, tmp_path, monkeypatch):
    """The seed lesson's OpenAI snippet, verbatim but for `base_url` (and ten examples, the minimum
    OpenAI accepts too)."""
    monkeypatch.chdir(tmp_path)
    system = "You are a customer service assistant."
    training_data = [{"messages": [{"role": "system", "content": system},
                                   {"role": "user", "content": f"How do I return product {i}?"},
                                   {"role": "assistant", "content": "Visit returns.example.com within 30 days."}]}
                     for i in range(10)]
    with open('training_data.jsonl', 'w') as f:
        for item in training_data:
            f.write(json.dumps(item) + '\n')
    client = OpenAI(base_url=svc.base_url, api_key=svc.api_key)
    with open('training_data.jsonl', 'rb') as f:
        training_file = client.files.create(file=f, purpose='fine-tune')
    job = client.fine_tuning.jobs.create(training_file=training_file.id, model="gpt-4o-mini-2024-07-18",
                                         hyperparameters={"n_epochs": 3})
    job_status = client.fine_tuning.jobs.retrieve(job.id)
    assert job_status.status in ("validating_files", "queued", "running")
    job_status = wait(client, job.id)
    events = client.fine_tuning.jobs.list_events(job.id)
    assert [event.message for event in events.data][0] == "The job has successfully completed"
    response = client.chat.completions.create(model=job_status.fine_tuned_model, messages=[
        {"role": "system", "content": system}, {"role": "user", "content": "How do I track my order?"}])
    assert isinstance(response.choices[0].message.content, str)


# ---------------------------------------------------------------- chat


def test_chat_options_and_strict_type(client, raw):
    reply = client.chat.completions.create(model="tiny-llama-world", max_tokens=3, temperature=0,
                                           messages=[{"role": "user", "content": "what color is the fox ?"}])
    assert reply.object == "chat.completion" and reply.usage.completion_tokens <= 3
    assert reply.choices[0].finish_reason == "length"
    body = raw.post("/chat/completions", json={"model": GPT, "messages": [{"role": "user", "content": "hi"}]}).json()
    ChatCompletion.model_validate(body, strict=True)
    stopped = client.chat.completions.create(model=GPT, temperature=0, stop=["is"],
                                             messages=[{"role": "user", "content": "what color is the fox ?"}])
    assert "is" not in stopped.choices[0].message.content and stopped.choices[0].finish_reason == "stop"
    sampled = [ask(client, GPT, "what does the owl eat ?", temperature=1.5, seed=7) for _ in range(2)]
    assert sampled[0] == sampled[1]


@pytest.mark.parametrize("stop", [None, ["is"]])
def test_streaming_matches_the_whole_answer(client, raw, stop):
    messages = [{"role": "user", "content": "what color is the fox ?"}]
    whole = client.chat.completions.create(model=GPT, messages=messages, temperature=0, max_tokens=12, stop=stop)
    stream = client.chat.completions.create(model=GPT, messages=messages, temperature=0, max_tokens=12, stop=stop,
                                            stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert all(isinstance(c, ChatCompletionChunk) for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content and len(chunks) > 3
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == \
        [whole.choices[0].finish_reason]
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    lines = raw.post("/chat/completions", json={"model": GPT, "messages": messages, "stream": True}).text.split("\n\n")
    assert lines[-2] == "data: [DONE]"
    for line in lines[:-2]:
        ChatCompletionChunk.model_validate(json.loads(line.removeprefix("data: ")), strict=True)


@pytest.mark.parametrize("change, param", [
    ({"messages": [{"role": "human", "content": "hi"}]}, "messages.0.role"),
    ({"messages": []}, "messages"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"n": 2}, "n"),
    ({"temperature": 3}, "temperature"),
    ({"frequency_penalty": 0.5}, "frequency_penalty"),
    ({"messages": [{"role": "user", "content": "fox " * 200}]}, "messages"),
    ({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 10_000}, "messages"),
])
def test_bad_chat_requests_are_400_naming_the_parameter(client, change, param):
    request = {"model": GPT, "messages": [{"role": "user", "content": "hi"}]} | change
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(**request)
    assert err.value.body["param"] == param and err.value.body["type"] == "invalid_request_error"
    assert "Traceback" not in err.value.body["message"]


def test_prompt_over_the_context_window_is_refused_fast(client):
    start = time.perf_counter()
    with pytest.raises(openai.BadRequestError) as err:  # ~200 KB, under the body limit
        ask(client, GPT, "the fox is red . " * 12_000)
    assert err.value.code == "context_length_exceeded" and "maximum context length is 64" in err.value.message
    assert time.perf_counter() - start < 30
    assert ask(client, GPT, "what color is the fox ?")


# ---------------------------------------------------------------- job creation is validated


@pytest.mark.parametrize("hp, param", [
    ({"n_epochs": -1}, "n_epochs"), ({"n_epochs": 0}, "n_epochs"), ({"n_epochs": 1.7}, "n_epochs"),
    ({"n_epochs": "abc"}, "n_epochs"), ({"n_epochs": 1e9}, "n_epochs"), ({"n_epochs": 10**9}, "n_epochs"),
    ({"n_epochs": True}, "n_epochs"), ({"batch_size": 0}, "batch_size"), ({"batch_size": "x"}, "batch_size"),
    ({"learning_rate_multiplier": -0.5}, "learning_rate_multiplier"),
    ({"learning_rate_multiplier": 0}, "learning_rate_multiplier"),
])
def test_bad_hyperparameters_are_400_at_creation(client, train_file, hp, param):
    for where in ("top", "method"):
        options = {"hyperparameters": hp} if where == "top" else \
            {"method": {"type": "supervised", "supervised": {"hyperparameters": hp}}}
        with pytest.raises(openai.BadRequestError) as err:
            client.fine_tuning.jobs.create(model=GPT, training_file=train_file.id, **options)
        assert err.value.body["param"].endswith(param), err.value.body


@pytest.mark.parametrize("options, param", [
    ({"training_file": "file-nope"}, "training_file"), ({"validation_file": "file-nope"}, "validation_file"),
    ({"model": "gpt-5-turbo"}, "model"), ({"suffix": "x" * 65}, "suffix"), ({"seed": -1}, "seed"),
    ({"method": {"type": "reinforcement"}}, "method.type"), ({"extra_body": {"bogus": 1}}, "bogus"),
    ({"method": {"type": "dpo", "supervised": {"hyperparameters": {"n_epochs": 2}}}}, "method.supervised"),
    ({"method": {"type": "supervised", "dpo": {}}}, "method.dpo"),
    ({"method": {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0}}}}, "method.dpo.hyperparameters.beta"),
    ({"method": {"type": "dpo", "dpo": {"hyperparameters": {"beta": "high"}}}}, "method.dpo.hyperparameters.beta"),
    ({"method": {"type": "dpo", "dpo": {"hyperparameters": {"beta": True}}}}, "method.dpo.hyperparameters.beta"),
    ({"method": {"type": "dpo", "dpo": {"hyperparameters": {"n_epochs": 0}}}}, "method.dpo.hyperparameters.n_epochs"),
    ({"method": {"type": "dpo", "dpo": {"hyperparameters": {"gamma": 1}}}}, "method.dpo.hyperparameters.gamma"),
])
def test_bad_job_requests_are_400(client, train_file, options, param):
    request = {"model": GPT, "training_file": train_file.id} | options
    with pytest.raises(openai.BadRequestError) as err:
        client.fine_tuning.jobs.create(**request)
    assert err.value.body["param"] == param, err.value.body


def test_malformed_file_fails_the_job_with_an_error(client, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"messages": [{"role": "human", "content": "hi"}]}\nnot json\n')
    with open(path, "rb") as fh:
        f = client.files.create(file=fh, purpose="fine-tune")
    job = wait(client, client.fine_tuning.jobs.create(model=GPT, training_file=f.id).id)
    assert job.status == "failed" and job.fine_tuned_model is None
    assert job.error.code == "invalid_training_file" and "line 1" in job.error.message


# ---------------------------------------------------------------- preference fine-tuning (DPO)


def preference_lines(animals):
    """OpenAI DPO lines about `animals`: the one-word answer preferred over the full sentence
    the base model gives ("the fox is red .")."""
    facts = data.world()
    reply = lambda text: [{"role": "assistant", "content": text}]
    return [to_openai({"prompt": data.prompt_messages(a, k), "chosen": reply(facts[a][k]),
                       "rejected": reply(data.answer(a, k, "sentence"))}) for a, k, _ in data.qa_prompts(animals)]


def test_a_dpo_job_moves_held_out_answers_away_from_the_rejected_style(client, raw, tmp_path, course_seed):
    train_animals, test_animals = data.split_animals()  # held-out prompts ask about other animals
    f = upload(client, tmp_path, preference_lines(train_animals), "preferences.jsonl")
    asked = data.qa_prompts(test_animals)
    held_out = [data.prompt_messages(a, k) for a, k, _ in asked]
    rejected = [data.answer(a, k, "sentence") for a, k, _ in asked]
    share_rejected = lambda replies: sum(r.strip() == t for r, t in zip(replies, rejected)) / len(rejected)
    before = share_rejected([ask(client, GPT_DPO, m) for m in held_out])
    after = {}
    for seed in (course_seed, course_seed + 1):
        job = client.fine_tuning.jobs.create(model=GPT_DPO, training_file=f.id, seed=seed, suffix="terse",
                                             method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.1}}})
        assert job.method.type == "dpo" and job.method.dpo.hyperparameters.beta == 0.1
        job = wait(client, job.id)
        assert job.status == "succeeded", job.error
        body = raw.get(f"/fine_tuning/jobs/{job.id}").json()
        FineTuningJob.model_validate(body, strict=True)
        assert body["method"] == {"type": "dpo", "dpo": {"hyperparameters": {
            "batch_size": 16, "beta": 0.1, "learning_rate_multiplier": 1.0, "n_epochs": 3}}}  # 'auto' resolved
        assert body["hyperparameters"] == {"batch_size": 16, "learning_rate_multiplier": 1.0, "n_epochs": 3}
        assert job.trained_tokens > 0 and job.fine_tuned_model.startswith(f"ft:{GPT_DPO}:course:terse:")
        events = raw.get(f"/fine_tuning/jobs/{job.id}/events", params={"limit": 1000}).json()["data"]
        for e in events:
            FineTuningJobEvent.model_validate(e, strict=True)
        metrics = [e["data"] for e in events if e["type"] == "metrics"]
        assert len(metrics) == 12 and {m["total_steps"] for m in metrics} == {12}  # 63 pairs / 16, 3 epochs
        ckpts = raw.get(f"/fine_tuning/jobs/{job.id}/checkpoints").json()["data"]
        for c in ckpts:
            FineTuningJobCheckpoint.model_validate(c, strict=True)
        assert [c["step_number"] for c in ckpts] == [12, 8, 4]
        replies = [ask(client, job.fine_tuned_model, m) for m in held_out]
        after[seed] = share_rejected(replies)
        print(f"seed {seed}: held-out replies in the rejected style {before:.2f} -> {after[seed]:.2f}; {replies[:6]}")
    # The base answers every held-out prompt with the rejected full sentence ("the fox is red .").
    # DPO's loss asks that the rejected answer lose probability against the chosen one, and it
    # does on every seed and CPU; what takes its place depends on the machine: the one-word answer
    # on some, a single frequent word repeated ("insects . insects .") on others (likelihood
    # displacement, lesson 14). So the test asserts the move away from the rejected answers, not
    # the length or the facts of what replaces them. Margins: benchmarks/claims_sweep.py --tests.
    claim("test: a DPO job moves held-out replies away from the rejected style (base: 3/4 or more, "
          "after: 1/4 or less, both seeds)", before >= 0.75 and max(after.values()) <= 0.25,
          base_share=before, worst_share=max(after.values()), best_share=min(after.values()))


def test_malformed_preference_files_fail_the_job_with_an_error(client, raw, tmp_path):
    good = preference_lines(data.split_animals()[0])
    broken = [{k: v for k, v in good[0].items() if k != "non_preferred_output"}] + good[1:]
    chat_file = upload(client, tmp_path, [chat_example(q, a) for q, a in style_pairs()[0]], "chat.jsonl")
    cases = [(upload(client, tmp_path, broken, "broken.jsonl").id, None, "training_file", "bad_output"),
             (chat_file.id, None, "training_file", "unknown_key"),  # a supervised file sent to a DPO job
             (upload(client, tmp_path, good, "good.jsonl").id, chat_file.id, "validation_file", "unknown_key")]
    for training, validation, param, kind in cases:
        job = client.fine_tuning.jobs.create(model=GPT_DPO, training_file=training, validation_file=validation,
                                             method={"type": "dpo"})
        assert job.method.dpo.hyperparameters.beta == "auto"
        job = wait(client, job.id)
        assert job.status == "failed" and job.fine_tuned_model is None
        assert job.error.code == f"invalid_{param}" and job.error.param == param
        assert "line 1" in job.error.message and kind in job.error.message, job.error.message
        FineTuningJob.model_validate(raw.get(f"/fine_tuning/jobs/{job.id}").json(), strict=True)


# ---------------------------------------------------------------- queueing and cancel


def short_job(client, file_id, epochs=2, **options):
    return client.fine_tuning.jobs.create(model=GPT, training_file=file_id, seed=0,
                                          hyperparameters={"n_epochs": epochs, "batch_size": 16}, **options)


def test_jobs_queue_one_at_a_time(client, train_file):
    first, second = short_job(client, train_file.id, 3), short_job(client, train_file.id, 1)
    wait(client, first.id, until=("running",) + TERMINAL)
    assert wait(client, second.id, until=("queued",) + TERMINAL).status == "queued"
    assert client.fine_tuning.jobs.retrieve(first.id).status in ("running", "succeeded")
    done = [wait(client, j.id) for j in (first, second)]
    assert [j.status for j in done] == ["succeeded", "succeeded"]
    assert done[0].finished_at <= done[1].finished_at


def test_max_running_trains_jobs_side_by_side(tmp_path):
    with local_service(tmp_path / "two", max_running=2) as two:
        client = connect(two)
        train, _ = style_pairs()
        f = upload(client, tmp_path, [chat_example(q, a) for q, a in train])
        jobs = [short_job(client, f.id, 8) for _ in range(2)]
        for j in jobs:
            wait(client, j.id, until=("running",) + TERMINAL)
        assert {client.fine_tuning.jobs.retrieve(j.id).status for j in jobs} == {"running"}
        for j in jobs:
            client.fine_tuning.jobs.cancel(j.id)


def assert_published_nothing(client, job_id):
    job = client.fine_tuning.jobs.retrieve(job_id)
    assert job.status == "cancelled" and job.fine_tuned_model is None
    assert not [m.id for m in client.models.list() if job_id.split("-")[1][:8] in m.id]
    with pytest.raises(openai.NotFoundError):
        ask(client, f"ft:{GPT}:course::{job_id.split('-')[1][:8]}", "hi")
    assert client.fine_tuning.jobs.checkpoints.list(job_id).data == []


def test_cancel_during_training_never_publishes_a_model(client, train_file):
    for cancel_at in (1, 4, 7, 8, 8):  # 8 steps in all: some cancels land after the last one
        job = short_job(client, train_file.id, 2)
        wait(client, job.id, until=("running",) + TERMINAL)
        while steps_done(client, job.id) < cancel_at and client.fine_tuning.jobs.retrieve(job.id).status == "running":
            pass
        try:
            client.fine_tuning.jobs.cancel(job.id)
        except openai.BadRequestError as err:  # too late: it had already succeeded
            assert err.code == "job_not_cancellable"
            assert client.fine_tuning.jobs.retrieve(job.id).status == "succeeded"
            continue
        time.sleep(0.3)
        assert_published_nothing(client, job.id)
    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.jobs.cancel(job.id)


def test_a_cancel_racing_the_final_save_wins(client, svc, train_file, monkeypatch):
    store, publish = svc.service.store, svc.service.store.publish

    def cancel_first(job_id, *args, **kwargs):  # the cancel arrives between the last step and publishing
        svc.service.cancel_job(job_id)
        return publish(job_id, *args, **kwargs)

    monkeypatch.setattr(store, "publish", cancel_first)
    job = wait(client, short_job(client, train_file.id, 1).id)
    assert_published_nothing(client, job.id)


# ---------------------------------------------------------------- errors, limits and connections


def test_unknown_ids_are_404(client, raw):
    for call in (lambda: client.fine_tuning.jobs.retrieve("ftjob-nope"),
                 lambda: client.files.retrieve("file-nope"),
                 lambda: client.files.content("../../etc/passwd"),
                 lambda: client.fine_tuning.jobs.list_events("ftjob-nope"),
                 lambda: client.fine_tuning.jobs.checkpoints.list("ftjob-nope"),
                 lambda: client.fine_tuning.jobs.cancel("ftjob-nope"),
                 lambda: client.models.retrieve("ft:nope"),
                 lambda: ask(client, f"ft:{GPT}:course::nope", "hi")):
        with pytest.raises(openai.NotFoundError) as err:
            call()
        assert err.value.body["type"] == "invalid_request_error"
    unknown = raw.get("/nowhere")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_url"


@pytest.mark.parametrize("method", ["PUT", "PATCH", "HEAD", "DELETE"])
def test_unsupported_methods_are_json_405(raw, method):
    reply = raw.request(method, "/fine_tuning/jobs")
    assert reply.status_code == 405 and reply.headers["content-type"] == "application/json"
    if method != "HEAD":
        assert reply.json()["error"]["code"] == "method_not_allowed"


def test_wrong_or_missing_key_is_401(svc):
    with pytest.raises(openai.AuthenticationError) as err:
        OpenAI(base_url=svc.base_url, api_key="wrong", max_retries=0).models.list()
    assert err.value.code == "invalid_api_key"
    missing = httpx.get(svc.base_url + "/models")  # the client refuses to send no key at all
    assert missing.status_code == 401 and "didn't provide an API key" in missing.json()["error"]["message"]


def test_bodies_over_the_limit_are_413(client, raw, tmp_path):
    with pytest.raises(openai.APIStatusError) as err:  # a 20 MB prompt never reaches the model
        ask(client, GPT, "x" * (20 << 20))
    assert err.value.status_code == 413 and err.value.body["code"] == "request_too_large"
    big = tmp_path / "big.jsonl"
    big.write_bytes(b"{}\n" * (UPLOAD_LIMIT // 3 + 10))
    with open(big, "rb") as fh, pytest.raises(openai.APIStatusError) as err:
        client.files.create(file=fh, purpose="fine-tune")
    assert err.value.status_code == 413
    chunked = raw.post("/chat/completions", content=iter([b"{" + b" " * (64 << 10)] * 8),
                       headers={"Content-Type": "application/json"})  # no Content-Length: counted as it streams
    assert chunked.status_code == 413 and chunked.json()["error"]["code"] == "request_too_large"
    assert ask(client, GPT, "what color is the fox ?")


def test_bad_json_is_400(raw):
    reply = raw.post("/chat/completions", content=b"{nope", headers={"Content-Type": "application/json"})
    assert reply.status_code == 400 and reply.json()["error"]["code"] == "invalid_json"
    reply = raw.post("/fine_tuning/jobs", json=[1, 2])
    assert reply.status_code == 400 and set(reply.json()["error"]) == {"message", "type", "param", "code"}


def test_a_server_bug_is_a_logged_500_not_the_clients_fault(client, svc, monkeypatch, caplog):
    def broken():
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(svc.service.models, "names", broken)
    with caplog.at_level("ERROR", logger="course_utils.service"), pytest.raises(openai.InternalServerError) as err:
        client.models.list()
    assert err.value.status_code == 500 and err.value.body["type"] == "server_error"
    assert "secret" not in json.dumps(err.value.body) and "RuntimeError" not in json.dumps(err.value.body)
    assert "secret internal detail" in caplog.text  # the traceback is in the server's log


def address(svc):
    host, port = svc.base_url.split("//")[1].split("/")[0].rsplit(":", 1)
    return host, int(port)


def read_responses(sock, seconds=1.5):
    sock.settimeout(seconds)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except socket.timeout:
        pass
    return data


def test_a_401_does_not_leave_its_body_to_be_parsed_as_the_next_request(svc):
    smuggled = f"DELETE /v1/files/file-x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {svc.api_key}\r\n\r\n".encode()
    follow = f"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {svc.api_key}\r\n\r\n".encode()
    with socket.create_connection(address(svc)) as sock:
        sock.sendall(b"POST /v1/files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\n"
                     b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(smuggled) + smuggled)
        sock.sendall(follow)
        data = read_responses(sock)
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", data)
    assert statuses == [b"401", b"200"], data[:500]  # the smuggled DELETE was never run
    assert b'"object":"list"' in data


def test_one_slow_client_does_not_block_the_others(client, svc):
    with socket.create_connection(address(svc)) as slow:
        slow.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {svc.api_key}\r\n"
                     "Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n{\"model\": ".encode())
        start = time.perf_counter()
        assert client.models.list().data and ask(client, GPT, "what color is the fox ?")
        assert time.perf_counter() - start < 10


# ---------------------------------------------------------------- restart


def test_a_clean_stop_fails_the_running_job_and_keeps_files_and_models(tmp_path):
    with local_service(tmp_path / "root") as first:
        client = connect(first)
        train, _ = style_pairs()
        f = upload(client, tmp_path, [chat_example(q, a) for q, a in train])
        done = wait(client, short_job(client, f.id, 1).id)
        before = ask(client, done.fine_tuned_model, train[0][0])
        running = short_job(client, f.id, 50)
        queued = short_job(client, f.id, 1)
        wait(client, running.id, until=("running",) + TERMINAL)
    with local_service(tmp_path / "root") as again:
        client = connect(again)
        assert client.files.retrieve(f.id).id == f.id
        stopped = client.fine_tuning.jobs.retrieve(running.id)
        assert stopped.status == "failed" and stopped.error.code == "service_interrupted"
        assert "stopped" in stopped.error.message
        assert ask(client, done.fine_tuned_model, train[0][0]) == before
        assert wait(client, queued.id).status == "succeeded"  # a job that had not started is run after all


def test_a_killed_service_restarts_without_a_job_stuck_in_running(tmp_path):
    import os
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = tmp_path / "root"
    proc = subprocess.Popen([sys.executable, "-m", "course_utils.cli", "serve-openai", "--data", str(root),
                             "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ)
    try:
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-local-course", max_retries=0)
        deadline = time.time() + 120
        while True:
            try:
                client.models.list()
                break
            except openai.APIConnectionError:
                assert time.time() < deadline and proc.poll() is None, "the service did not start"
                time.sleep(0.2)
        train, _ = style_pairs()
        f = upload(client, tmp_path, [chat_example(q, a) for q, a in train])
        job = short_job(client, f.id, 50)
        wait(client, job.id, until=("running",) + TERMINAL)
        while steps_done(client, job.id) < 3:
            time.sleep(0.05)
    finally:
        proc.kill()  # SIGKILL: no clean-up runs
        proc.wait()
    events = root / "jobs" / job.id / "events"
    (events / ".00009999-ftevent-x.json.crash.tmp").write_text('{"id": "ftevent-x", "mess')  # a write cut short
    with local_service(root) as again:
        client = connect(again)
        failed = client.fine_tuning.jobs.retrieve(job.id)
        assert failed.status == "failed" and failed.error.code == "service_interrupted"
        assert failed.finished_at is not None and client.files.retrieve(f.id).bytes == f.bytes
        listed = client.fine_tuning.jobs.list_events(job.id, limit=1000).data
        assert listed[0].level == "error" and any(e.type == "metrics" for e in listed)
