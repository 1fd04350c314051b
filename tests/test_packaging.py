"""README, .ci/run, environment.yml and pyproject.toml describe one and the same set-up."""

import re
import tomllib
from pathlib import Path

import yaml

from course_utils import __version__
from course_utils.notebooks import build as notebooks

ROOT = Path(__file__).resolve().parent.parent


def _quick_start() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line for line in block.splitlines() if line.strip()]


def test_quick_start_is_two_commands_install_and_test():
    install, test = _quick_start()
    assert 'pip install -e ".[dev]"' in install and install.rstrip().endswith("course run")
    assert test == "python -m pytest -n 2"


def test_ci_runs_the_readme_commands_as_typed():
    """CI types both quick-start commands verbatim, in order, the test command last: no upgraded
    pip, no extra install step, nothing the README does not tell a learner to do."""
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    install, test = _quick_start()
    assert install in ci and test in ci
    assert ci.index(install) < ci.index(test)
    commands = [line for line in ci if line.strip() and not line.lstrip().startswith("#")]
    assert commands[-1] == test
    assert not any(re.search(r"\bpip\b", line) for line in commands if line != install), \
        "CI installs more than the README"


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    minimum = project["requires-python"].removeprefix(">=")
    assert tuple(map(int, python.split("=")[1].split("."))) >= tuple(map(int, minimum.split(".")))
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pip == ['-e ".[dev]"']


def test_version_is_declared_once():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["version"] == __version__


def test_readme_lesson_map_lists_every_lesson():
    text = (ROOT / "README.md").read_text()
    for lesson in notebooks.lessons(ROOT):
        assert re.search(rf"^\| {lesson.number} \|", text, re.M), f"lesson {lesson.number} missing"
