import torch
import pytest

from course_utils import profile


def test_explicit_and_env_profile(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "full")
    assert profile.resolve_profile() == "full"
    assert profile.resolve_profile("tiny") == "tiny"
    monkeypatch.setenv("COURSE_PROFILE", " TINY ")
    assert profile.resolve_profile() == "tiny"


def test_unknown_profile_is_an_error(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "huge")
    with pytest.raises(ValueError, match="huge"):
        profile.resolve_profile()


@pytest.mark.parametrize("gpu, expected", [(True, "full"), (False, "tiny")])
def test_default_profile_follows_the_gpu(monkeypatch, gpu, expected):
    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    monkeypatch.setattr(profile, "cuda_available", lambda: gpu)
    assert profile.resolve_profile() == expected


@pytest.mark.parametrize("capability, expected", [((7, 5), "fp16"), ((8, 0), "bf16"), ((9, 0), "bf16"),
                                                  ((6, 1), "fp16")])
def test_precision_on_gpus(monkeypatch, capability, expected):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert profile.mixed_precision(torch.device("cuda")) == expected


def test_precision_on_cpu_is_fp32():
    assert profile.mixed_precision("cpu") == "fp32"
    assert profile.torch_dtype("fp16") is torch.float16


def test_seeding_makes_runs_repeat():
    import random

    import numpy as np

    profile.seed_everything(3)
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    profile.seed_everything(3)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first


def test_cache_dir_respects_course_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))
    path = profile.cache_dir("models", "x")
    assert path == tmp_path / "models" / "x" and path.is_dir()


def test_a_cache_entry_appears_whole_and_a_second_builder_keeps_the_first_copy(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()  # cache_dir() makes the entry's folder before anything is built in it
    with profile.cache_entry(folder) as scratch:
        scratch.mkdir()
        (scratch / "config.json").write_text("first")
        assert not (folder / "config.json").exists()  # nothing shows until the block ends
    with profile.cache_entry(folder) as scratch:  # a process that started building at the same time
        scratch.mkdir()
        (scratch / "config.json").write_text("second")
    assert (folder / "config.json").read_text() == "first"
    single = tmp_path / "weights.pt"
    with pytest.raises(RuntimeError), profile.cache_entry(single) as scratch:
        scratch.write_text("half")
        raise RuntimeError("the build failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no entry, no scratch left


def test_setup_prints_one_line_with_everything(capsys, monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "tiny")
    monkeypatch.delenv("COURSE_SEED", raising=False)
    cfg = profile.setup(models={"tiny": "m-tiny", "full": "m-full"}, data={"tiny": "d", "full": "D"},
                        budgets={"tiny": "5 s", "full": "1 min"}, seed=1)
    out = capsys.readouterr().out.strip()
    assert out.count("\n") == 0
    for part in ("profile=tiny", "device=cpu", "fp32", "seed 1", "model=m-tiny", "data=d", "5 s"):
        assert part in out
    assert cfg.profile == "tiny" and cfg.seed == 1


def test_course_seed_overrides_the_lesson_seed_and_is_printed(capsys, monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "tiny")
    monkeypatch.setenv("COURSE_SEED", "3")
    cfg = profile.setup(models={"tiny": "m", "full": "M"}, data={"tiny": "d", "full": "D"},
                        budgets={"tiny": "5 s", "full": "1 min"}, seed=0)
    assert cfg.seed == 3 and "seed 3" in capsys.readouterr().out
    first = torch.rand(3)
    profile.seed_everything(3)
    assert torch.equal(first, torch.rand(3))  # setup seeded torch with the override
    monkeypatch.setenv("COURSE_SEED", "three")
    with pytest.raises(ValueError, match="COURSE_SEED must be a whole number"):
        profile.resolve_seed()


def test_the_suite_runs_on_the_seed_and_numeric_path_its_commit_drew():
    """conftest.py draws both from the commit (or takes them from the environment), so kernels and
    workers started by the suite compute with them."""
    import os

    from course_utils.numeric_paths import NUMERIC_PATHS

    assert os.environ["COURSE_SEED"].lstrip("-").isdigit()
    path = os.environ["COURSE_NUMERIC_PATH"]
    assert path in NUMERIC_PATHS
    for key in ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY"):
        assert os.environ.get(key) == NUMERIC_PATHS[path].get(key, os.environ.get(key))
    assert profile.resolve_seed() == int(os.environ["COURSE_SEED"])
