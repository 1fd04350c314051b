"""The local OpenAI-compatible service, driven end to end by the official `openai` client."""

import json
import time

import httpx
import openai
import pytest
from openai import OpenAI

from course_utils.llm.causal_lm import style_pairs
from course_utils.llm.chat_data import chat_example, write_jsonl
from course_utils.service.server import local_service

TERMINAL = ("succeeded", "failed", "cancelled")


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    with local_service(tmp_path_factory.mktemp("svc")) as running:
        yield running


@pytest.fixture(scope="module")
def client(svc):
    return OpenAI(base_url=svc.base_url, api_key=svc.api_key, max_retries=0)


def wait(client, job_id, timeout=120):
    deadline = time.time() + timeout
    while (job := client.fine_tuning.jobs.retrieve(job_id)).status not in TERMINAL:
        assert time.time() < deadline, f"job stuck in {job.status}"
        time.sleep(0.2)
    return job


def upload(client, tmp_path, examples, name="train.jsonl"):
    path = write_jsonl(examples, tmp_path / name)
    with open(path, "rb") as fh:
        return client.files.create(file=fh, purpose="fine-tune")


def ask(client, model, prompt):
    reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}],
                                           temperature=0, max_tokens=12)
    return reply.choices[0].message.content


@pytest.fixture(scope="module")
def finished(client, tmp_path_factory):
    train, held_out = style_pairs()
    f = upload(client, tmp_path_factory.mktemp("data"), [chat_example(q, a) for q, a in train])
    job = client.fine_tuning.jobs.create(model="tiny-llama-world", training_file=f.id, suffix="oneword",
                                         method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": "auto"}}})
    assert job.status == "validating_files" and job.object == "fine_tuning.job"
    return f, wait(client, job.id), train, held_out


def test_files_round_trip(client, tmp_path):
    f = upload(client, tmp_path, [chat_example("q ?", "a")] * 2, "small.jsonl")
    assert f.object == "file" and f.purpose == "fine-tune" and f.filename == "small.jsonl" and f.status == "processed"
    assert client.files.retrieve(f.id).bytes == f.bytes
    lines = client.files.content(f.id).content.decode().splitlines()
    assert json.loads(lines[0]) == chat_example("q ?", "a")
    assert f.id in [x.id for x in client.files.list(purpose="fine-tune")]
    assert client.files.delete(f.id).deleted is True
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(f.id)


def test_job_succeeds_with_events_checkpoints_and_model(client, finished):
    f, job, train, _ = finished
    assert job.status == "succeeded", job.error
    assert job.fine_tuned_model == f"ft:tiny-llama-world:course:oneword:{job.id.split('-')[1][:8]}"
    assert job.trained_tokens > 0 and job.finished_at >= job.created_at
    assert job.hyperparameters.n_epochs >= 3 and job.method.type == "supervised"
    events = client.fine_tuning.jobs.list_events(job.id, limit=5)
    assert len(events.data) == 5 and events.has_more
    assert events.data[0].message == "The job has successfully completed"
    metrics = [e for e in client.fine_tuning.jobs.list_events(job.id, limit=1000).data if e.type == "metrics"]
    assert metrics and metrics[0].data["train_loss"] < metrics[-1].data["train_loss"]
    page2 = client.fine_tuning.jobs.list_events(job.id, limit=5, after=events.data[-1].id)
    assert page2.data[0].id not in {e.id for e in events.data}
    ckpts = client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert len(ckpts) == 3 and ckpts[0].step_number > ckpts[-1].step_number
    assert ckpts[0].fine_tuned_model_checkpoint.startswith(job.fine_tuned_model + ":ckpt-step-")
    assert job.fine_tuned_model in [m.id for m in client.models.list()]
    assert job.id in [j.id for j in client.fine_tuning.jobs.list(limit=10)]


def test_fine_tuned_model_answers_differently_toward_the_trained_style(client, finished):
    _, job, train, held_out = finished
    prompt, answer = train[0]
    base, tuned = ask(client, "tiny-llama-world", prompt), ask(client, job.fine_tuned_model, prompt)
    # the base answers in a sentence ("the yak is white ."); the fine-tuned model in one word
    assert base != tuned and tuned == answer and len(base.split()) > 2
    # and on prompts it never saw, it keeps the one-word style (measured 27/27 one word)
    replies = [ask(client, job.fine_tuned_model, q) for q, _ in held_out[:9]]
    assert sum(len(r.split()) == 1 for r in replies) >= 7, replies
    ckpt = client.fine_tuning.jobs.checkpoints.list(job.id).data[-1].fine_tuned_model_checkpoint
    assert ask(client, ckpt, prompt)


def test_chat_options(client):
    reply = client.chat.completions.create(model="tiny-llama-world", max_tokens=3, temperature=0,
                                           messages=[{"role": "user", "content": "what color is the fox ?"}])
    assert reply.object == "chat.completion" and reply.usage.completion_tokens <= 3
    assert reply.choices[0].finish_reason == "length"
    stopped = client.chat.completions.create(model="tiny-llama-world", temperature=0, stop=["is"],
                                             messages=[{"role": "user", "content": "what color is the fox ?"}])
    assert "is" not in stopped.choices[0].message.content and stopped.choices[0].finish_reason == "stop"
    sampled = [client.chat.completions.create(model="tiny-llama-world", temperature=1.5, seed=7,
                                              messages=[{"role": "user", "content": "what does the owl eat ?"}])
               .choices[0].message.content for _ in range(2)]
    assert sampled[0] == sampled[1]


def test_malformed_file_fails_the_job_with_an_error(client, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"messages": [{"role": "human", "content": "hi"}]}\nnot json\n')
    with open(path, "rb") as fh:
        f = client.files.create(file=fh, purpose="fine-tune")
    job = wait(client, client.fine_tuning.jobs.create(model="tiny-llama-world", training_file=f.id).id)
    assert job.status == "failed" and job.fine_tuned_model is None
    assert job.error.code == "invalid_training_file" and "line 1" in job.error.message


def test_cancel(client, tmp_path):
    train, _ = style_pairs()
    f = upload(client, tmp_path, [chat_example(q, a) for q, a in train])
    job = client.fine_tuning.jobs.create(model="tiny-llama-world", training_file=f.id,
                                         hyperparameters={"n_epochs": 500})
    assert client.fine_tuning.jobs.cancel(job.id).status == "cancelled"
    time.sleep(1.0)
    assert client.fine_tuning.jobs.retrieve(job.id).status == "cancelled"
    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.jobs.cancel(job.id)


def test_unknown_ids_and_bad_requests_are_4xx(client, svc):
    for call in (lambda: client.fine_tuning.jobs.retrieve("ftjob-nope"),
                 lambda: client.files.retrieve("file-nope"),
                 lambda: client.fine_tuning.jobs.list_events("ftjob-nope"),
                 lambda: client.fine_tuning.jobs.cancel("ftjob-nope"),
                 lambda: ask(client, "ft:tiny-llama-world:course::nope", "hi")):
        with pytest.raises(openai.NotFoundError) as err:
            call()
        assert err.value.body["type"] == "invalid_request_error"
    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.jobs.create(model="gpt-4o-mini-2024-07-18", training_file="file-nope")
    with pytest.raises(openai.AuthenticationError):
        OpenAI(base_url=svc.base_url, api_key="wrong", max_retries=0).models.list()
    raw = httpx.post(svc.base_url + "/chat/completions", content=b"{nope",
                     headers={"Authorization": f"Bearer {svc.api_key}"})
    assert raw.status_code == 400 and raw.json()["error"]["code"] == "invalid_json"


def test_restart_keeps_files_and_models(client, svc, finished):
    f, job, train, _ = finished
    with local_service(svc.root) as again:
        other = OpenAI(base_url=again.base_url, api_key=again.api_key, max_retries=0)
        assert other.files.retrieve(f.id).id == f.id
        assert other.fine_tuning.jobs.retrieve(job.id).status == "succeeded"
        assert ask(other, job.fine_tuned_model, train[0][0]) == train[0][1]
