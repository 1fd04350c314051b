"""Adversarial submissions: each way a learner's notebook can hang, crash, hog memory, spawn
processes, escape its sandbox or try to fake its grade, graded in one bounded run of the real
grader (`--jobs 2`, default sandbox). Attacks start from the untouched lesson 00 and must score 0;
honest answers next to hostile code must still pass."""

import hashlib
import json
import os
import socket
import time
import zipfile
from pathlib import Path

import nbformat
import psutil
import pytest

from course_utils.checks import ERROR, FAILED, NOT_ATTEMPTED, PASSED
from course_utils.grading.grade import Limits, grade, grade_all, resolve_sandbox, table, write_report
from course_utils.grading.submissions import gather

ROOT = Path(__file__).resolve().parent.parent
LESSON = ROOT / "lessons" / "00_setup.ipynb"
PACKAGE = ROOT / "course_utils"
GOOD_1 = ("def to_device(batch, device):\n"
          "    return {k: v.to(device) if hasattr(v, 'to') else v for k, v in batch.items()}")
GOOD_2 = "def choose_precision(cap):\n    return 'fp32' if cap is None else ('bf16' if cap >= (8, 0) else 'fp16')"
WRONG_2 = "def choose_precision(cap):\n    return 'bf16'"
CORRECT = json.dumps(GOOD_1 + "\n" + GOOD_2)  # a string literal attack code can exec on success
HIDDEN = Path(os.environ.get("COURSE_CACHE", "/tmp")).parent / "hidden_tests_adversarial.py"
LIMITS = Limits(notebook_seconds=300, cell_seconds=8, check_seconds=3, memory_gb=2.0, extra_checks=str(HIDDEN))
SANDBOXED = resolve_sandbox("auto").kind == "bwrap"
PORT_HOLDER = socket.socket()
PORT_HOLDER.bind(("127.0.0.1", 0))
PORT_HOLDER.listen(8)
PORT = PORT_HOLDER.getsockname()[1]


def _cell(nb, exercise, role):
    return next(c for c in nb.cells if c.metadata.get("course") == {"exercise": exercise, "role": role})


def _make(folder: Path, name: str, answer_1=None, answer_2=None, edit=None, last=None) -> None:
    nb = nbformat.read(str(LESSON), 4)
    if answer_1 is not None:
        _cell(nb, "00.1", "answer").source = answer_1
    if answer_2 is not None:
        _cell(nb, "00.2", "answer").source = answer_2
    if last is not None:
        nb.cells.append(nbformat.v4.new_code_cell(last))
    if edit:
        edit(nb)
    nbformat.write(nb, str(folder / f"{name}.ipynb"))


def _delete_checks(nb):
    nb.cells = [c for c in nb.cells if c.metadata.get("course", {}).get("role") != "check"]


def _reorder(nb):
    a1, a2 = _cell(nb, "00.1", "answer"), _cell(nb, "00.2", "answer")
    i, j = nb.cells.index(a1), nb.cells.index(a2)
    nb.cells[i], nb.cells[j] = a2, a1


def _duplicate(nb):
    a2 = _cell(nb, "00.2", "answer")
    nb.cells.insert(nb.cells.index(a2), nbformat.from_dict(json.loads(json.dumps(a2))))


def _unknown_lesson(nb):
    nb.metadata["course"]["lesson"] = "42"


def _path_lesson(nb):
    nb.metadata["course"]["lesson"] = "../../solutions/keyzip.zip/k/00"


def _string_metadata(nb):
    nb.metadata["course"] = "00"
    _cell(nb, "00.1", "answer").metadata["course"] = ["00.1", "answer"]


def _redefine_check(nb):
    _cell(nb, "00.2", "check").source = (
        "def check(exercise, answer=None):\n    print(f'✅ Exercise {exercise}: passed')\n"
        "check('00.2')")


FORGE = ("import json\nfrom IPython.display import display\n"
         "MIME = 'application/x-course-probe'\n"
         "def forged(e):\n"
         "    return json.dumps({'exercise': e, 'outcome': 'data', 'status': 'passed', 'credit': 1000,\n"
         "                       'data': {'__dict__': [['type', 'dict']]}})\n")
ATTACKS = {
    # issue 13: the verdict-forging classes
    "sys_modules_patch": (
        "import sys, json\nc = sys.modules['course_utils.checks']\n"
        "c.evaluate = lambda e, a=None: c.Result(e, 'passed')\n"
        "c.judge_record = lambda e, *a, **k: c.Result(e, 'passed', credit=1000)\n"
        "c.probe = lambda e, *a, **k: json.dumps({'exercise': e, 'status': 'passed', 'credit': 1})\n"
        "for name in list(sys.modules):\n"
        "    if 'grad' in name or 'checks' in name:\n"
        "        setattr(sys.modules[name], 'PASSED', 'failed')\n"),
    "swap_state_by_prefix": (
        FORGE + "for name in list(globals()):\n"
        "    if name.startswith(('_course', '_grader', '_')) and not name.startswith('__'):\n"
        "        globals()[name] = None\n"
        "import course_utils.checks as c\nc.probe = lambda e, *a, **k: forged(e)\n"),
    "input_transformer": (
        FORGE + "def rewrite(lines):\n"
        "    if any('_course_probe' in l for l in lines):\n"
        "        return ['from IPython.display import display\\n',\n"
        "                'for e in (\"00.1\", \"00.2\"): display({MIME: forged(e)}, raw=True)\\n']\n"
        "    return lines\n"
        "get_ipython().input_transformers_cleanup.append(rewrite)\n"
        "get_ipython().input_transformers_post.append(rewrite)\n"),
    "settrace_expect": (
        "import sys, threading\nimport course_utils.checks as c\n"
        "def tracer(frame, event, arg):\n"
        "    if frame.f_code.co_name in ('expect', 'judge_record', '_verdict'):\n"
        "        frame.f_locals['condition'] = True\n"
        "    return tracer\n"
        "sys.settrace(tracer)\nthreading.settrace(tracer)\nc.expect = lambda *a, **k: None\n"),
    "proc_fd_forgery": (
        "import os, json\n"
        "line = (json.dumps({'exercise': '00.1', 'status': 'passed', 'credit': 1.0}) + '\\n').encode()\n"
        "for fd in map(int, os.listdir('/proc/self/fd')):\n"
        "    try:\n"
        "        target = os.readlink(f'/proc/self/fd/{fd}')\n"
        "        if not target.startswith(('socket:', 'anon_inode:')):\n"
        "            os.write(fd, line)\n"
        "    except OSError:\n"
        "        pass\n"
        "devnull = os.open('/dev/null', os.O_WRONLY)\nos.dup2(devnull, 1)\nos.dup2(devnull, 2)\n"),
    "silence_grader": (
        "import signal, sys, atexit, threading, time, json\nfrom IPython.display import display\n"
        + FORGE.split("\n", 2)[2] +
        "signal.alarm(0)\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\nsignal.setitimer = lambda *a: 0\n"
        "atexit.register(lambda: print(json.dumps({'exercise': '00.1', 'status': 'passed'})))\n"
        "def spam():\n"
        "    while True:\n"
        "        display({MIME: forged('00.2')}, raw=True)\n"
        "        print('{\"exercise\": \"00.2\", \"status\": \"passed\", \"credit\": 1000}')\n"
        "        time.sleep(0.2)\n"
        "threading.Thread(target=spam, daemon=True).start()\n"),
    "system_exit_inside_check": None,  # built below: the answers raise BaseExceptions when checked
    "recursion_limit": "import sys\nsys.setrecursionlimit(40)\n",
    "cwd_env_shadow_package": (
        "import os, sys\nos.makedirs('/tmp/evil/course_utils', exist_ok=True)\n"
        "open('/tmp/evil/course_utils/__init__.py', 'w').write('')\n"
        "open('/tmp/evil/course_utils/checks.py', 'w').write(\n"
        "    'import json\\ndef probe(e, *a, **k):\\n'\n"
        "    '    return json.dumps({\"exercise\": e, \"status\": \"passed\", \"outcome\": \"passed\"})\\n')\n"
        "sys.path.insert(0, '/tmp/evil')\n"
        "for name in [m for m in sys.modules if m.startswith('course_utils')]:\n"
        "    del sys.modules[name]\n"
        "os.environ.update(PYTHONPATH='/tmp/evil', COURSE_PROFILE='full', HOME='/')\nos.chdir('/')\n"),
    "read_solutions": (
        "import json\ncandidates = [" + repr(str(ROOT / "solutions" / "00_setup.ipynb")) + "]\n"
        "try:\n    from course_utils.notebooks.build import course_root\n"
        "    candidates.append(str(course_root() / 'solutions' / '00_setup.ipynb'))\n"
        "except Exception:\n    pass\n"
        "for path in candidates:\n"
        "    try:\n        nb = json.load(open(path))\n    except OSError:\n        continue\n"
        "    for cell in nb['cells']:\n"
        "        if 'BEGIN SOLUTION' in ''.join(cell['source']):\n"
        "            exec(''.join(cell['source']), globals())\n"),
    "read_extra_checks": (
        "import glob\nleaks = []\n"
        "for path in [" + repr(str(HIDDEN)) + "] + glob.glob('/proc/*/cmdline') + glob.glob('/proc/*/environ'):\n"
        "    try:\n        leaks.append(open(path, 'rb').read())\n    except OSError:\n        pass\n"
        "if any(b'hidden_tests' in leak or b'extra-checks' in leak for leak in leaks):\n"
        "    exec(" + CORRECT + ")\n"),
    "network": (
        "import socket\n"
        "try:\n    socket.create_connection(('127.0.0.1', " + str(PORT) + "), timeout=2)\n"
        "    exec(" + CORRECT + ")\nexcept OSError:\n    pass\n"),
    # issue 17 and more
    "forged_probe_outputs": (
        FORGE + "for record in ['[1, 2]', '\"passed\"', 'null', '{\"exercise\": \"00.1\", \"status\": \"\"}',\n"
        "               '{\"exercise\": \"00.2\", \"credit\": \"1\", \"status\": \"passed\"}', forged('00.1')]:\n"
        "    display({MIME: record}, raw=True)\n"),
    "detached_daemon": (
        "import os, time\n"
        "if os.fork() == 0:\n    os.setsid()\n"
        "    if os.fork() == 0:\n        os.chdir('/')\n        os.execvp('sleep', ['sleep', '4321'])\n"
        "    os._exit(0)\ntime.sleep(0.5)\n"),
    "backdoor_writes": (
        "import os, site, course_utils\n"
        "targets = [os.path.join(os.path.dirname(course_utils.__file__), 'checks.py'),\n"
        "           " + repr(str(PACKAGE / "checks.py")) + ",\n"
        "           os.path.expanduser('~/.ipython/profile_default/startup/00-backdoor.py'),\n"
        "           '/root/.ipython/profile_default/startup/00-backdoor.py',\n"
        "           " + repr(str(Path(os.environ.get("IPYTHONDIR", "/nonexistent")) / "profile_default/startup/00-backdoor.py")) + ",\n"
        "           os.path.join(site.getsitepackages()[0], 'sitecustomize.py')]\n"
        "for target in targets:\n"
        "    try:\n        os.makedirs(os.path.dirname(target), exist_ok=True)\n"
        "        open(target, 'a').write('\\n# backdoor\\n')\n    except OSError:\n        pass\n"),
    "fork_bomb": (
        "import os, time\n"
        "for _ in range(5000):\n"
        "    try:\n        pid = os.fork()\n    except OSError:\n        break\n"
        "    if pid == 0:\n        time.sleep(15)\n        os._exit(0)\n"),
    "kill_parent": "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nos.kill(1, signal.SIGKILL)\n",
    "output_flood": ("import sys\nfor _ in range(40):\n    print('x' * 1_000_000)\n"
                     "sys.stdout.write('y' * 30_000_000)\nsys.stdout.flush()\n"),
}
BASE_EXCEPTIONS = ("def to_device(batch, device):\n    raise SystemExit(0)\n",
                   "def choose_precision(cap):\n    raise KeyboardInterrupt\n")
SANDBOX_ONLY = {"read_solutions", "read_extra_checks", "network", "detached_daemon", "backdoor_writes",
                "fork_bomb", "cwd_env_shadow_package", "kill_parent"}
HONEST = {
    "correct": dict(answer_1=GOOD_1, answer_2=GOOD_2),
    "untouched": dict(),
    "wrong": dict(answer_1=GOOD_1, answer_2=WRONG_2),
    "redefined_check": dict(answer_1=GOOD_1, answer_2=WRONG_2, edit=_redefine_check),
    "deleted_checks": dict(answer_1=GOOD_1, answer_2=GOOD_2, edit=_delete_checks),
    "reordered": dict(answer_1=GOOD_1, answer_2=GOOD_2, edit=_reorder),
    "duplicated": dict(answer_1=GOOD_1, answer_2=GOOD_2, edit=_duplicate),
    "00_malformed_metadata": dict(edit=_string_metadata),
    "infinite_loop": dict(answer_1="while True:\n    pass", answer_2=GOOD_2),
    "slow_answer": dict(answer_1="def to_device(batch, device):\n    while True:\n        pass",
                        answer_2=GOOD_2),
    "sleeps": dict(answer_1="import time\ntime.sleep(600)\n" + GOOD_1, answer_2=GOOD_2),
    "memory_hog": dict(answer_1="hog = bytearray(8 * 2**30)\n" + GOOD_1, answer_2=GOOD_2),
    "sys_exit": dict(answer_1="import sys\nsys.exit(0)", answer_2=GOOD_2),
    "code_keyboard_interrupt": dict(answer_1="raise KeyboardInterrupt\n" + GOOD_1, answer_2=GOOD_2),
    "base_exception_then_correct": dict(answer_1=BASE_EXCEPTIONS[0], answer_2=GOOD_2),
    "kernel_exit": dict(answer_1="import os\nos._exit(3)", answer_2=GOOD_2),
    "spawns_children": dict(answer_1="import subprocess\nsubprocess.Popen(['sleep', '987'])\n"
                                     "subprocess.Popen(['sleep', '986'], start_new_session=True)\n" + GOOD_1,
                            answer_2=GOOD_2),
    "overwrites_files": dict(answer_1="for name in ('submission.ipynb', '00_setup.ipynb', 'correct.ipynb'):\n"
                                      "    open(name, 'w').write('overwritten')\n" + GOOD_1, answer_2=GOOD_2),
    "unknown_lesson": dict(edit=_unknown_lesson),
    "path_lesson": dict(edit=_path_lesson),
}
EXTRA = '''
@extra("00.2", calls=[((6, 0),), ((12, 0),)])
def old_and_future_gpus(outputs):
    expect(outputs == ["fp16", "bf16"], "a P100 (6.0) has no bf16; future GPUs have it")
'''


def _cases() -> dict[str, dict]:
    cases = dict(HONEST)
    for name, code in ATTACKS.items():
        if name in SANDBOX_ONLY and not SANDBOXED:
            continue
        if name == "system_exit_inside_check":
            cases[name] = dict(answer_1=BASE_EXCEPTIONS[0], answer_2=BASE_EXCEPTIONS[1])
        else:
            cases[f"attack_{name}"] = dict(last=code)
    return cases


def _digest(folder: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*.py"))}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("class")
    HIDDEN.write_text(EXTRA)
    cases = _cases()
    for name, spec in cases.items():
        _make(folder, name, **spec)
    _make(folder, "evil\x1b[2J\nname", answer_1=GOOD_1)
    (folder / "corrupt.ipynb").write_text('{"cells": [ truncated')
    (folder / "notes.txt").write_text("not a notebook")
    bundle = tmp_path_factory.mktemp("zips") / "late.zip"
    with zipfile.ZipFile(bundle, "w") as zf:
        zf.write(folder / "correct.ipynb", "bob/00_setup.ipynb")
        zf.writestr("../escape.ipynb", "{}")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    package_before = _digest(PACKAGE)
    start = time.perf_counter()
    with gather([str(folder), str(bundle)]) as submissions:
        grades = grade_all(submissions, LIMITS, jobs=2, progress=False)
    seconds = time.perf_counter() - start
    by_name = {Path(g.path).stem if ":" not in g.path else g.path: g for g in grades}
    return by_name, folder, before, package_before, seconds, len(cases)


def _statuses(grade):
    return [r.status for r in grade.results]


def test_whole_class_finishes_in_bounded_time(graded):
    grades, *_, seconds, n = graded
    assert len(grades) == n + 5
    assert seconds < 900, seconds


@pytest.mark.parametrize("name", [n if n == "system_exit_inside_check" else f"attack_{n}" for n in ATTACKS])
def test_every_attack_on_the_untouched_lesson_scores_zero(graded, name):
    if name.removeprefix("attack_") in SANDBOX_ONLY and not SANDBOXED:
        pytest.skip("needs the bwrap sandbox")
    grade = graded[0][name]
    assert grade.results, grade
    assert grade.score == 0 and PASSED not in _statuses(grade), grade


@pytest.mark.parametrize("name, expected", [
    ("correct", [PASSED, PASSED]),
    ("untouched", [NOT_ATTEMPTED, NOT_ATTEMPTED]),
    ("wrong", [PASSED, FAILED]),
    ("redefined_check", [PASSED, FAILED]),
    ("deleted_checks", [PASSED, PASSED]),
    ("reordered", [PASSED, PASSED]),
    ("duplicated", [PASSED, PASSED]),
    ("00_malformed_metadata", [NOT_ATTEMPTED, NOT_ATTEMPTED]),
    ("slow_answer", [FAILED, PASSED]),
    ("sys_exit", [ERROR, PASSED]),
    ("code_keyboard_interrupt", [ERROR, PASSED]),
    ("base_exception_then_correct", [FAILED, PASSED]),
    ("system_exit_inside_check", [FAILED, FAILED]),
    ("spawns_children", [PASSED, PASSED]),
    ("overwrites_files", [PASSED, PASSED]),
    ("memory_hog", [ERROR, PASSED]),
])
def test_verdicts_cannot_be_faked_or_broken(graded, name, expected):
    grade = graded[0][name]
    assert _statuses(grade) == expected, grade


def test_structure_changes_and_malformed_metadata_are_reported(graded):
    grades = graded[0]
    assert "check cell of 00.1 deleted" in grades["deleted_checks"].notes
    assert "exercise cells reordered" in grades["reordered"].notes
    assert "answer cell of 00.2 duplicated" in grades["duplicated"].notes
    assert any("metadata `course` is not an object" in n for n in grades["00_malformed_metadata"].notes)
    assert grades["correct"].notes == []


@pytest.mark.parametrize("name", ["infinite_loop", "sleeps"])
def test_hanging_cells_are_interrupted_and_grading_goes_on(graded, name):
    grade = graded[0][name]
    assert any("interrupted" in note for note in grade.notes), grade.notes
    assert grade.results[1].status == PASSED
    assert grade.seconds < 200


def test_a_keyboard_interrupt_raised_by_code_is_not_a_timeout(graded):
    grade = graded[0]["code_keyboard_interrupt"]
    assert not any("interrupted" in note for note in grade.notes), grade.notes
    assert "KeyboardInterrupt" in grade.results[0].message


def test_base_exceptions_inside_checks_fail_only_their_exercise(graded):
    results = graded[0]["system_exit_inside_check"].results
    assert "SystemExit" in results[0].message and "KeyboardInterrupt" in results[1].message


def test_slow_answer_fails_with_a_time_limit_message(graded):
    assert "did not finish within 3 s" in graded[0]["slow_answer"].results[0].message


def test_memory_is_capped_by_an_rlimit(graded):
    grade = graded[0]["memory_hog"]
    assert any("memory cap" in note for note in grade.notes), grade.notes
    assert not grade.ok


def test_kernel_exit_is_reported(graded):
    grade = graded[0]["kernel_exit"]
    assert grade.problem and "kernel" in grade.problem.lower()
    assert all(r.status == ERROR for r in grade.results)


def test_spawned_and_detached_processes_do_not_survive(graded):
    wanted = (["987"], ["986"], ["4321"], ["15"])
    survivors = [p for p in psutil.process_iter(["cmdline"])
                 if p.info["cmdline"] and p.info["cmdline"][:1] == ["sleep"] and p.info["cmdline"][1:] in wanted]
    assert survivors == []


@pytest.mark.skipif(not SANDBOXED, reason="needs the bwrap sandbox")
def test_the_package_and_startup_files_cannot_be_written(graded):
    _, _, _, package_before, *_ = graded
    import site

    assert _digest(PACKAGE) == package_before
    assert not Path(site.getsitepackages()[0], "sitecustomize.py").exists()
    for folder in (Path.home() / ".ipython", Path(os.environ.get("IPYTHONDIR", "/nonexistent"))):
        assert not (folder / "profile_default/startup/00-backdoor.py").exists()


def test_output_is_capped(graded):
    grade = graded[0]["attack_output_flood"]
    assert any("capped" in note for note in grade.notes), grade.notes
    assert _statuses(grade) == [NOT_ATTEMPTED, NOT_ATTEMPTED]


def test_submissions_on_disk_are_untouched(graded):
    _, folder, before, *_ = graded
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_unreadable_foreign_and_forged_lessons_are_reported(graded):
    grades = graded[0]
    assert "not a readable notebook" in grades["corrupt"].problem
    assert "not a notebook" in grades["notes"].problem
    assert "lesson 42 does not exist" in grades["unknown_lesson"].problem
    assert "not two digits" in grades["path_lesson"].problem
    zipped = {k: g for k, g in grades.items() if k.startswith("late.zip:")}
    assert _statuses(zipped["late.zip:bob/00_setup.ipynb"]) == [PASSED, PASSED]
    assert "unsafe path" in zipped["late.zip:../escape.ipynb"].problem


def test_terminal_table_escapes_names(graded):
    text = table(list(graded[0].values()))
    assert "\x1b" not in text and "evil\\x1b[2J\\nname" in text
    assert len(text.splitlines()) == len(graded[0]) + 1


def test_reports_in_every_format(graded, tmp_path):
    grades = list(graded[0].values())
    for suffix in ("csv", "json", "html"):
        write_report(grades, tmp_path / f"r.{suffix}")
    page = (tmp_path / "r.html").read_text()
    assert "pass rate per exercise" in page and "data:image/png;base64," in page
    records = json.loads((tmp_path / "r.json").read_text())
    assert {r["status"] for r in records} >= {PASSED, FAILED, NOT_ATTEMPTED, ERROR}
    assert all(0 <= r["credit"] <= 1 for r in records)


def test_hidden_checks_give_partial_credit_and_catch_a_lookup_table(tmp_path):
    HIDDEN.write_text(EXTRA)
    almost = ("def choose_precision(cap):\n    return 'fp32' if cap is None else "
              "('bf16' if cap >= (8, 0) or cap < (7, 0) else 'fp16')")
    table_only = ("def choose_precision(cap):\n    return {None: 'fp32', (7, 5): 'fp16', (7, 0): 'fp16', "
                  "(8, 0): 'bf16', (8, 6): 'bf16', (9, 0): 'bf16'}[cap]")
    _make(tmp_path, "00_almost", answer_1=GOOD_1, answer_2=almost)
    _make(tmp_path, "00_table", answer_1=GOOD_1, answer_2=table_only)
    limits = Limits(extra_checks=str(HIDDEN), check_seconds=3)
    for name, credit in (("00_almost", 0.5), ("00_table", 0.5)):
        second = grade(tmp_path / f"{name}.ipynb", limits).results[1]
        assert second.status == FAILED and "hidden test" in second.message, second
        assert abs(second.credit - credit) < 1e-9


def test_hard_notebook_time_limit(tmp_path):
    nb = nbformat.read(str(LESSON), 4)
    nb.cells = [c for c in nb.cells if c.cell_type == "markdown"][:1] + \
        [nbformat.v4.new_code_cell("import time\ntime.sleep(0.9)") for _ in range(40)]
    nbformat.write(nb, str(tmp_path / "00_sleepy.ipynb"))
    result = grade(tmp_path / "00_sleepy.ipynb", Limits(notebook_seconds=10, cell_seconds=120, check_seconds=3))
    assert "time limit of 10 s" in (result.problem or ""), result
    skipped = int(result.problem.split("; ")[1].split()[0])
    assert skipped >= 25, result.problem
    assert result.seconds < 10 + 20 + 15
