"""Lesson 15: the data-parallel plan and loss, exact memory counts, the exercise checks (run on two
real processes), and that a launch never outlives an interrupt, an alarm or its time limit."""

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from course_utils.checks import FAILED, CheckFailed, NOT_ATTEMPTED, PASSED, evaluate, learner_or_reference
from course_utils.distributed import launch as launching
from course_utils.distributed.training import (Plan, all_chunks, global_batch_and_steps, labelled_tokens,
                                               save_on_main, state_bytes, token_loss_sum)
from course_utils.exercises import ex15

ROOT = Path(__file__).resolve().parent.parent


# the plan and the loss ------------------------------------------------------------------------

def test_ranks_and_accumulation_steps_split_the_same_global_batch():
    ddp, single = Plan(4, 2, 1, 8, 9, 1e-3), Plan(4, 1, 2, 8, 9, 1e-3)
    seen = []
    for step in range(ddp.steps):
        ids = ddp.global_indices(step, 27)
        assert len(ids) == 8 and ids == single.global_indices(step, 27)
        ranks = [mb for r in range(2) for mb in ddp.micro_batches(step, r, 27)]
        assert ranks == single.micro_batches(step, 0, 27)  # rank r's chunk == accumulation step r
        assert sorted(sum(ranks, [])) == sorted(ids)
        assert list(all_chunks(ddp, step, 27)) == ranks
        seen += ids
    per_epoch = 27 // 8
    assert len(set(seen[:per_epoch * 8])) == per_epoch * 8  # no example twice within an epoch


def test_a_plan_whose_numbers_do_not_multiply_is_an_error():
    with pytest.raises(ValueError, match="global batch"):
        Plan(4, 2, 2, 8, 10, 1e-3)
    with pytest.raises(ValueError, match="cannot fill"):
        Plan(4, 2, 1, 8, 1, 1e-3).global_indices(0, 7)


def _tiny_lm():
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=40, hidden_size=16, num_hidden_layers=1,
                                        num_attention_heads=2, intermediate_size=32))


def _batch(lengths, label_from):
    ids = torch.randint(3, 40, (len(lengths), max(lengths)), generator=torch.Generator().manual_seed(1))
    mask = torch.zeros_like(ids)
    for i, n in enumerate(lengths):
        mask[i, :n] = 1
    labels = ids.masked_fill(mask == 0, -100)
    labels[:, :label_from] = -100
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def test_token_sums_over_the_global_count_equal_the_full_batch_mean_and_a_mean_of_means_does_not():
    model = _tiny_lm()
    a, b = _batch([9, 9], 2), _batch([4, 3], 1)  # very different numbers of labelled tokens
    whole = {k: torch.cat([a[k], torch.nn.functional.pad(b[k], (0, 5), value=0 if k != "labels" else -100)])
             for k in a}
    full = model(**whole).loss
    (sa, na), (sb, nb) = token_loss_sum(model, a), token_loss_sum(model, b)
    assert na == labelled_tokens(a) and na != nb
    assert torch.allclose((sa + sb) / (na + nb), full, atol=1e-6)
    assert abs(float((sa / na + sb / nb).detach() / 2 - full.detach())) > 1e-3


def test_state_bytes_counts_parameters_gradients_and_adam_moments_exactly():
    model = torch.nn.Linear(10, 3)
    opt = torch.optim.AdamW(model.parameters())
    model(torch.randn(2, 10)).sum().backward()
    opt.step()
    assert state_bytes(model, opt) == {"parameters": 33 * 4, "gradients": 33 * 4, "optimizer": 2 * 33 * 4}


# exercise 15.1 ---------------------------------------------------------------------------------

def test_global_batch_reference_passes():
    assert evaluate("15.1", global_batch_and_steps).status == PASSED


@pytest.mark.parametrize("wrong, words", [
    (lambda b, p, a, n, e: (b * a, e * (n // (b * a))), "every process"),
    (lambda b, p, a, n, e: (b * p, e * (n // (b * p))), "accumulation"),
    (lambda b, p, a, n, e: (b * p * a, e * -(-n // (b * p * a))), "//"),
    (lambda b, p, a, n, e: (b * p * a, n // (b * p * a)), "epochs"),
    (lambda b, p, a, n, e: (b * p * a, e * (n // (b * p))), "micro-batches"),
    (lambda b, p, a, n, e: b * p * a, "pair"),
])
def test_global_batch_known_mistakes_fail_with_their_hint(wrong, words):
    result = evaluate("15.1", wrong)
    assert result.status == FAILED and words in result.message + result.hint, result


# exercise 15.2: two real processes ---------------------------------------------------------------

def _defined(source: str):
    """A function with real source on disk (the checker ships it to the ranks by its source)."""
    path = Path(tempfile.mkdtemp(prefix="learner-")) / "answer.py"
    path.write_text(textwrap.dedent(source))
    namespace = {"torch": torch}  # as in a notebook that imported torch at the top
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    return namespace["save_on_main"]


EVERY_RANK_SAVES = """
def save_on_main(rank, state, path, barrier):
    import torch
    torch.save(state, path)
    barrier()
"""
NO_WAIT = """
def save_on_main(rank, state, path, barrier):
    import torch
    barrier()
    if rank == 0:
        torch.save(state, path)
"""
BARRIER_ONLY_ON_RANK0 = """
def save_on_main(rank, state, path, barrier):
    import torch
    if rank == 0:
        torch.save(state, path)
        barrier()
"""
BOTH_BARRIERS = """
def save_on_main(rank, state, path, barrier):
    barrier()
    if rank == 0:
        torch.save(state, path)
    barrier()
"""


def test_save_reference_and_a_two_barrier_variant_pass():
    ex15._RUNS.clear()
    assert evaluate("15.2", save_on_main).status == PASSED
    assert evaluate("15.2", _defined(BOTH_BARRIERS)).status == PASSED  # uses the `torch` it is given


@pytest.mark.parametrize("source, words", [
    (EVERY_RANK_SAVES, "written 2 times"),
    (NO_WAIT, "returned before the checkpoint existed"),
    (BARRIER_ONLY_ON_RANK0, "barrier() [1, 0] times"),
])
def test_save_known_mistakes_fail_on_two_processes(source, words):
    result = evaluate("15.2", _defined(source))
    assert result.status == FAILED and words in result.message, result


def test_save_mistakes_found_from_rank_logs():
    log = lambda rank, saves, barriers=1, seen=True: {"rank": rank, "saves": saves, "barriers": barriers,
                                                        "error": "", "file_on_return": seen}

    def verdict(logs, file_exists=False, written_by=None):
        try:
            ex15.judge_save_on_main({"logs": logs, "file_exists": file_exists, "written_by": written_by})
        except CheckFailed as exc:
            return exc.message, exc.hint
        return "", ""

    assert "no rank" in verdict([log(0, 0), log(1, 0)])[0]
    assert "rank 1 wrote" in verdict([log(0, 0), log(1, 1)], True, 1)[0]
    crashed = [log(0, 1), {**log(1, 0), "error": "KeyError: 'weights'"}]
    assert "raised KeyError" in verdict(crashed)[0]
    no_numpy = [log(0, 1), {**log(1, 0), "error": "NameError: name 'np' is not defined"}]
    assert "inside the function" in verdict(no_numpy)[1]
    # rank 0 claims the save, but no file by rank 0 exists: the judge does not take the logs' word
    assert "rank 0 wrote" in verdict([log(0, 1), log(1, 0)], False, None)[0]
    assert verdict([log(0, 1), log(1, 0)], True, 0) == ("", "")


def test_a_check_whose_ranks_hang_is_stopped(tmp_path):
    source = "def save_on_main(rank, state, path, barrier):\n    import time\n    time.sleep(300)\n"
    settings = {"source": source, "name": "save_on_main", "path": str(tmp_path / "c.pt"),
                "slow_save": 0, "pg_timeout": 10}
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    with pytest.raises(TimeoutError, match="did not finish"):
        ex15.two_ranks(settings, tmp_path / "run", timeout=5)
    assert _gone([p.pid for p in psutil.Process().children(recursive=True) if p.pid not in before])


def test_save_stub_is_not_attempted_and_the_lesson_falls_back(capsys):
    def save_on_main_stub(rank, state, path, barrier):
        raise NotImplementedError

    assert evaluate("15.2", save_on_main_stub).status == NOT_ATTEMPTED
    assert learner_or_reference("15.2", save_on_main_stub, save_on_main) is save_on_main
    assert "using the course's version until yours passes" in capsys.readouterr().out
    assert learner_or_reference("15.1", global_batch_and_steps, None) is global_batch_and_steps


# launches always clean up -------------------------------------------------------------------------

def _pids(run_dir: Path, n: int = 2, wait: float = 120) -> list[int]:
    deadline = time.time() + wait
    while time.time() < deadline:
        files = sorted(run_dir.glob("pid*"))
        if len(files) == n and all(f.read_text() for f in files):
            return [int(f.read_text()) for f in files]
        time.sleep(0.2)
    raise AssertionError(f"the ranks never started: {list(run_dir.iterdir())}")


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _gone(pids: list[int], wait: float = 10) -> bool:
    deadline = time.time() + wait
    while time.time() < deadline:
        alive = [p for p in pids if _alive(p)]
        if not alive:
            return True
        time.sleep(0.1)
    return False


def test_interrupting_a_launch_leaves_no_process(tmp_path):
    """Ctrl-C (the kernel's interrupt) while the ranks run: the launching process stops them all."""
    script = ("import signal\n"  # a shell may start background jobs with SIGINT ignored; a kernel never is
              "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
              f"from course_utils.distributed.launch import launch\n"
              f"launch('sleep', {{'seconds': 120}}, 2, timeout=300, run_dir={str(tmp_path)!r})\n")
    parent = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        pids = _pids(tmp_path)
        family = [p.pid for p in psutil.Process(parent.pid).children(recursive=True)]
        parent.send_signal(signal.SIGINT)
        assert parent.wait(timeout=120) != 0  # KeyboardInterrupt
        assert _gone(pids + family), "a rank or the launcher survived the interrupt"
    finally:
        parent.kill()
        parent.wait()


def test_an_alarm_during_a_launch_stops_every_rank(tmp_path):
    """The grader's per-check SIGALRM raises inside the wait; the launch's `finally` stops the ranks."""
    class Alarm(Exception):
        pass

    def ring(signum, frame):
        raise Alarm

    def ring_once_ranks_run() -> None:
        _pids(tmp_path)
        os.kill(os.getpid(), signal.SIGALRM)

    old = signal.signal(signal.SIGALRM, ring)
    started = time.time()
    try:
        threading.Thread(target=ring_once_ranks_run, daemon=True).start()
        with pytest.raises(Alarm):
            launching.launch("sleep", {"seconds": 120}, 2, timeout=300, run_dir=tmp_path)
    finally:
        signal.signal(signal.SIGALRM, old)
    assert time.time() - started < 150
    assert _gone(_pids(tmp_path, wait=1))
    assert not [c for c in psutil.Process().children(recursive=True)
                if _alive(c.pid) and "torch.distributed.run" in " ".join(c.cmdline())]


def test_a_launch_past_its_time_limit_is_stopped_with_a_clear_error(tmp_path):
    with pytest.raises(TimeoutError, match="did not finish within"):
        launching.launch("sleep", {"seconds": 120}, 2, timeout=15, run_dir=tmp_path)
    pids = [int(f.read_text()) for f in tmp_path.glob("pid*") if f.read_text()]
    assert len(pids) == 2 and _gone(pids)  # both ranks had joined, and neither outlived the limit


def test_a_failing_rank_is_a_clear_error(tmp_path):
    with pytest.raises(RuntimeError, match="KeyError"):
        launching.launch("sleep", {}, 2, timeout=120, run_dir=tmp_path)


def test_backend_and_processes_follow_the_device():
    assert launching.backend_for("cpu") == "gloo" and launching.processes_for("cpu") == 2
    assert launching.backend_for("cuda") == "nccl"


def test_a_process_group_that_fails_to_form_is_launched_again_once(monkeypatch):
    real, calls = ex15.two_ranks, []

    def flaky(settings, run_dir, timeout):
        calls.append(run_dir.name)
        if len(calls) == 1:
            raise RuntimeError("Gloo connectFullMesh failed with [...] Connection closed by peer")
        return real(settings, run_dir, timeout)

    ex15._RUNS.clear()
    monkeypatch.setattr(ex15, "two_ranks", flaky)
    assert evaluate("15.2", save_on_main).status == PASSED and calls == ["run1", "run2"]
    ex15._RUNS.clear()
    monkeypatch.setattr(ex15, "two_ranks", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("Gloo: peer gone")))
    result = evaluate("15.2", save_on_main)  # failing twice is reported, never passed
    assert result.status == FAILED and "did not finish" in result.message
