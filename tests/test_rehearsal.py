"""The full-profile rehearsal: the loading boundary (`course_utils.hub`) returns stand-ins of the
real classes and features in the rehearsal and calls the real loaders with the real names outside
it; and every untouched lesson runs its full code path against the stand-ins through the grader."""

import resource
from pathlib import Path

import pytest
import torch

from course_utils import hub
from course_utils.checks import NOT_ATTEMPTED
from course_utils.grading.grade import Limits, grade
from course_utils.grading.submissions import lesson_key
from course_utils.rehearsal import kernel_environment

ROOT = Path(__file__).resolve().parent.parent
LESSONS = sorted((ROOT / "lessons").glob("[0-9][0-9]_*.ipynb"))


@pytest.fixture
def rehearsing(monkeypatch):
    monkeypatch.setenv("COURSE_REHEARSAL", "1")
    monkeypatch.delenv("COURSE_REHEARSAL_SIZE", raising=False)


@pytest.fixture
def real(monkeypatch):
    monkeypatch.delenv("COURSE_REHEARSAL", raising=False)


# ---------------------------------------------------------------- outside the rehearsal: real loaders
def test_outside_rehearsal_model_source_is_the_hub_id(real):
    assert hub.model_source("Qwen/Qwen2.5-0.5B-Instruct") == "Qwen/Qwen2.5-0.5B-Instruct"


def test_outside_rehearsal_encoder_and_causal_lm_load_the_hub_ids(real, monkeypatch):
    import transformers

    from course_utils.llm.causal_lm import load_causal_lm
    from course_utils.text.models import encoder_source

    assert encoder_source("full") == "distilbert-base-uncased"
    asked = []
    for cls in (transformers.AutoTokenizer, transformers.AutoModelForCausalLM):
        monkeypatch.setattr(cls, "from_pretrained",
                            lambda name, *a, cls=cls, **k: asked.append((cls.__name__, name)) or torch.nn.Linear(1, 1))
    load_causal_lm("full")
    assert asked == [("AutoTokenizer", "Qwen/Qwen2.5-0.5B-Instruct"),
                     ("AutoModelForCausalLM", "Qwen/Qwen2.5-0.5B-Instruct")]


@pytest.mark.parametrize("loader, name", [
    ("course_utils.text.data:imdb_splits", "stanfordnlp/imdb"),
    ("course_utils.text.ner:conll2003", "lhoestq/conll2003"),
    ("course_utils.text.qa:squad", "rajpurkar/squad"),
    ("course_utils.vision.data:hub_image_task", "uoft-cs/cifar10"),
    ("course_utils.llm.instruct_data:load_hub_sft_dataset", "trl-lib/Capybara"),
    ("course_utils.llm.preference_data:load_hub_preference_dataset", "trl-lib/ultrafeedback_binarized"),
])
def test_outside_rehearsal_datasets_come_from_the_hub(real, monkeypatch, loader, name):
    import importlib

    import datasets

    class Asked(Exception):
        pass

    def fake(asked_name, **kwargs):
        raise Asked(asked_name)

    monkeypatch.setattr(datasets, "load_dataset", fake)
    module, func = loader.split(":")
    with pytest.raises(Asked, match=name):
        getattr(importlib.import_module(module), func)()


def test_outside_rehearsal_backbones_come_from_torchvision_with_their_weights(real, monkeypatch):
    import torchvision
    from torchvision.models import ResNet50_Weights

    from course_utils.vision.backbones import load_backbone

    asked = []
    monkeypatch.setattr(torchvision.models, "get_model",
                        lambda name, weights=None: asked.append((name, weights)) or torch.nn.Linear(1, 1))
    _, transform = load_backbone("resnet50")
    load_backbone("resnet50", pretrained=False)
    assert asked == [("resnet50", ResNet50_Weights.IMAGENET1K_V2), ("resnet50", None)]
    assert transform.crop_size == [224] and transform.resize_size == [232]


def test_hub_loaders_are_called_only_at_the_boundary():
    import re

    pattern = re.compile(r"from datasets import load_dataset|datasets\.load_dataset\(|"
                         r"from_pretrained\(FULL_|from_pretrained\(\"|\(weights=(?!None)\w")
    offenders = [f"{path.relative_to(ROOT)}: {match.group()}"
                 for path in (ROOT / "course_utils").rglob("*.py")
                 if path.name != "hub.py" and "rehearsal" not in path.parts
                 for match in pattern.finditer(path.read_text())]
    assert offenders == []


# ---------------------------------------------------------------- in the rehearsal: stand-ins
def test_rehearsal_checkpoints_are_the_real_classes(rehearsing):
    from transformers import AutoConfig, AutoTokenizer

    expected = {"distilbert-base-uncased": ("distilbert", "DistilBertTokenizer"),
                "bert-base-cased": ("bert", "BertTokenizer"),
                "Qwen/Qwen2.5-0.5B-Instruct": ("qwen2", "Qwen2Tokenizer")}
    for name, (model_type, tokenizer) in expected.items():
        source = hub.model_source(name)
        assert Path(source).is_dir() and source != name
        assert AutoConfig.from_pretrained(source).model_type == model_type
        assert type(AutoTokenizer.from_pretrained(source)).__name__ == tokenizer


def test_rehearsal_wordpiece_casing_follows_the_checkpoint(rehearsing):
    from transformers import AutoTokenizer

    cased = AutoTokenizer.from_pretrained(hub.model_source("bert-base-cased"))
    uncased = AutoTokenizer.from_pretrained(hub.model_source("distilbert-base-uncased"))
    assert cased.tokenize("Grace") == ["Grace"] and uncased.tokenize("Grace") == ["grace"]
    assert cased.tokenize("Zyx") == ["Z", "##y", "##x"]  # unseen words split, never [UNK]
    assert cased("a", "b")["input_ids"][0] == cased.cls_token_id and cased.model_max_length == 512


def test_rehearsal_qwen_is_byte_level_bpe_with_the_chat_template(rehearsing):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = hub.model_source("Qwen/Qwen2.5-0.5B-Instruct")
    tok = AutoTokenizer.from_pretrained(source)
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                   add_generation_prompt=True)
    assert text == ("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
                    "assistant.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
    own = tok.apply_chat_template([{"role": "system", "content": "One word."},
                                   {"role": "user", "content": "hi"}], tokenize=False)
    assert own.startswith("<|im_start|>system\nOne word.<|im_end|>")
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    assert tok.convert_ids_to_tokens(tok("<|im_start|>")["input_ids"]) == ["<|im_start|>"]
    assert tok.decode(tok("naïve café")["input_ids"]) == "naïve café"  # bytes, never unknown
    model = AutoModelForCausalLM.from_pretrained(source, dtype="auto")
    assert type(model).__name__ == "Qwen2ForCausalLM" and model.dtype == torch.bfloat16
    assert model.config.num_key_value_heads < model.config.num_attention_heads  # GQA kept
    assert model.config.tie_word_embeddings and len(tok) <= model.config.vocab_size


def test_rehearsal_full_size_configs_are_the_real_ones(rehearsing, monkeypatch, tmp_path):
    from transformers import AutoConfig

    from course_utils.rehearsal import models

    monkeypatch.setenv("COURSE_REHEARSAL_SIZE", "full")
    models.distilbert("full", tmp_path / "d")
    config = AutoConfig.from_pretrained(tmp_path / "d")
    assert (config.dim, config.n_layers, config.vocab_size) == (768, 6, 30522)
    monkeypatch.setenv("COURSE_REHEARSAL_SIZE", "huge")
    with pytest.raises(ValueError, match="COURSE_REHEARSAL_SIZE"):
        hub.model_source("bert-base-cased")


def test_rehearsal_datasets_have_the_real_features(rehearsing):
    from datasets import ClassLabel, Image

    imdb = hub.load_dataset("stanfordnlp/imdb")
    assert set(imdb) == {"train", "test", "unsupervised"}
    assert imdb["train"].features["label"].names == ["neg", "pos"]
    assert set(imdb["unsupervised"]["label"]) == {-1}
    conll = hub.load_dataset("lhoestq/conll2003")
    assert set(conll) == {"train", "validation", "test"}
    assert conll["train"].features["ner_tags"].feature.names == [
        "O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
    assert len(conll["train"].features["pos_tags"].feature.names) == 47
    assert len(conll["train"].features["chunk_tags"].feature.names) == 23
    squad = hub.load_dataset("rajpurkar/squad")
    assert set(squad) == {"train", "validation"}
    for row in squad["train"]:
        start, text = row["answers"]["answer_start"][0], row["answers"]["text"][0]
        assert row["context"][start:start + len(text)] == text
    cifar = hub.load_dataset("uoft-cs/cifar10")
    assert isinstance(cifar["train"].features["img"], Image)
    label = cifar["train"].features["label"]
    assert isinstance(label, ClassLabel) and label.names[:2] == ["airplane", "automobile"]
    assert cifar["train"][0]["img"].size == (32, 32)


def test_rehearsal_chat_datasets_have_the_real_columns(rehearsing):
    capybara = hub.load_dataset("trl-lib/Capybara")
    assert set(capybara) == {"train", "test"}
    assert set(capybara["train"].column_names) == {"source", "messages", "num_turns"}
    for row in capybara["train"]:
        assert [m["role"] for m in row["messages"]] == ["user", "assistant"] * (len(row["messages"]) // 2)
    prefs = hub.load_dataset("trl-lib/ultrafeedback_binarized")
    assert set(prefs) == {"train", "test"}
    assert set(prefs["train"].column_names) == {"chosen", "rejected", "score_chosen", "score_rejected"}
    for row in prefs["train"]:
        assert row["chosen"][:-1] == row["rejected"][:-1] and row["chosen"][-1]["role"] == "assistant"
        assert row["score_chosen"] > row["score_rejected"]


def test_rehearsal_backbones_are_torchvision_classes_with_the_enum_preprocessing(rehearsing):
    from torchvision.models import MobileNetV3, ResNet
    from torchvision.models.resnet import Bottleneck

    from course_utils.vision.backbones import load_backbone

    model, transform = load_backbone("resnet50")
    assert isinstance(model, ResNet) and isinstance(model.layer1[0], Bottleneck)
    assert model.fc.in_features == 512  # shrunk: no fourfold widening (see rehearsal.vision)
    assert type(transform).__name__ == "ImageClassification" and transform.mean == [0.485, 0.456, 0.406]
    assert isinstance(load_backbone("mobilenet_v3_small", pretrained=False)[0], MobileNetV3)
    x = transform(hub.load_dataset("uoft-cs/cifar10")["train"][0]["img"])
    assert model.eval()(x[None]).shape == (1, 1000)


def test_rehearsal_full_size_keeps_the_enum_transforms_and_real_backbone(rehearsing, monkeypatch):
    from torchvision.models import ResNet50_Weights

    monkeypatch.setenv("COURSE_REHEARSAL_SIZE", "full")
    transform = hub.vision_transforms(ResNet50_Weights.IMAGENET1K_V2)
    assert transform.crop_size == [224] and transform.resize_size == [232]
    assert sum(p.numel() for p in hub.vision_model("resnet50").parameters()) == 25_557_032


def test_transfer_setup_draws_only_the_sizes_its_pool_holds(rehearsing):
    from course_utils.vision.compare import transfer_setup

    setup = transfer_setup("full")
    assert setup.sizes == (5,) and setup.pool.counts() == {n: 5 for n in setup.pool.names}
    image, label = setup.pool[0]
    assert image.shape == (3, 16, 16) and 0 <= label < 10


def test_small_image_passes_decode_in_process(monkeypatch):
    import torch.utils.data

    from course_utils.vision.data import ImageSplit
    from course_utils.vision.train import batches

    made = []
    real_loader = torch.utils.data.DataLoader
    monkeypatch.setattr(torch.utils.data, "DataLoader",
                        lambda *a, **k: made.append(k["num_workers"]) or real_loader(*a, **k))
    pil = [object()] * 8
    for n in (50, 1000):
        split = ImageSplit(pil * (n // 8) + pil[:n % 8], [0] * n, ["a"], transform=lambda _: torch.zeros(1))
        assert sum(len(y) for _, y in batches(split, 64, workers=2)) == n
    assert made == [0, 2]


def test_rehearsal_names_without_stand_in_fail_clearly(rehearsing):
    with pytest.raises(KeyError, match="no stand-in for the checkpoint 'org/unknown'"):
        hub.model_source("org/unknown")
    with pytest.raises(KeyError, match="dataset"):
        hub.load_dataset("org/unknown")


def test_cli_rehearsal_needs_the_full_profile(capsys):
    from course_utils.cli import main

    assert main(["run", "--rehearsal", "00"]) == 2
    assert "--profile full" in capsys.readouterr().err


# ---------------------------------------------------------------- every untouched lesson, full path
# The rehearsal runs the full profile offline against the stand-ins; it replaces grading the
# untouched lessons in tiny (each notebook then runs twice: solution in tiny, lesson here).
@pytest.mark.parametrize("lesson", LESSONS, ids=[p.stem for p in LESSONS])
def test_untouched_lesson_rehearses_the_full_profile(lesson):
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    # Generous fences: this asserts what runs, not how fast on a shared machine.
    graded = grade(lesson, Limits(profile="full", environment=kernel_environment(),
                                  notebook_seconds=1800, cell_seconds=900, memory_gb=8.0))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime
    assert graded.problem is None and graded.notes == [], (graded.problem, graded.notes)
    assert all(": NotImplementedError:" in e for e in graded.errors), graded.errors  # only the stubs
    assert len(graded.results) == len(lesson_key(lesson.name[:2]).exercises)
    assert {r.status for r in graded.results} == {NOT_ATTEMPTED}, graded.results
    print(f"\nrehearsal {lesson.stem}: {graded.seconds:.1f} s wall, {cpu_s:.1f} s CPU (kernel and workers)")


def test_imdb_samples_are_class_balanced_halves_of_the_sizes(rehearsing):
    from course_utils.text.data import imdb_splits

    train, test = imdb_splits(10, 6)
    assert (len(train), len(test)) == (10, 6)
    assert sorted(train.labels) == [0] * 5 + [1] * 5 and sorted(test.labels) == [0] * 3 + [1] * 3
    assert train.names == ["negative", "positive"] and train.source == "IMDB reviews"
