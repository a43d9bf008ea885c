"""GRPO reward functions: the built-ins, a user's file (loaded only when named), and the checks
that turn a bad spec into one sentence. Called with TRL's keyword signature."""

from __future__ import annotations

import pytest

from engine.jobs import JobError
from engine.train import rewards
from engine.train.rewards import RewardSpecError, parse, reward_functions

CHAT = [{"role": "assistant", "content": "so the answer is \\boxed{\\frac{1}{2}}."}]


def call(fn, completions, **columns):
    ids = [[0] * len(rewards.completion_text(c).split()) for c in completions]
    return fn(prompts=["p"] * len(completions), completions=completions, completion_ids=ids, trainer_state=None,
              **columns)


def test_exact_answer_compares_the_boxed_or_stripped_answer_with_a_column():
    fn = parse("exact:answer")
    got = call(fn, ["4.", " 4 ", "it is \\boxed{4}", "5", CHAT], answer=["4", "4", "4", "4", "\\frac{1}{2}"])
    assert got == [1.0, 1.0, 1.0, 0.0, 1.0]
    assert fn.__name__ == "exact_answer"  # TRL logs rewards/exact_answer/mean
    with pytest.raises(JobError, match="no 'answer' column"):
        call(fn, ["4"], solution=["4"])


def test_firstline_gives_full_credit_to_a_bare_answer_and_half_to_one_inside_a_sentence():
    """A base model continuing "Q: ...\nA:" answers on its first line and writes on; only that line counts."""
    fn = parse("firstline:answer")
    completions = [" Paris.\nQ: What is the capital of Spain?", " The capital of France is Paris.\nQ: Paris",
                   " paris", " Parisian food\nParis", " Lyon\nParis", "\n Paris\n", CHAT]
    assert call(fn, completions, answer=["Paris"] * 6 + ["1/2"]) == [1.0, 0.5, 1.0, 0.0, 0.0, 1.0, 0.0]
    assert call(fn, [" 3+4=7", " 17", " 7"], answer=["7"] * 3) == [0.5, 0.0, 1.0]  # "7" is not inside "17"
    assert fn.__name__ == "firstline_answer"
    with pytest.raises(JobError, match="firstline:answer: the dataset has no 'answer' column"):
        call(fn, ["4"], solution=["4"])


def test_regex_length_and_boxed():
    assert call(parse(r"regex:\d+ apples"), ["3 apples", "apples"]) == [1.0, 0.0]
    length = parse("length:2:4")
    assert call(length, ["a", "a b", "a b c d", "a b c d e", "a b c d e f g"]) == [0.0, 1.0, 1.0, 0.0, 0.0]
    assert call(parse("length:2:8"), ["a b c d e f g h i"]) == [pytest.approx(1 - 1 / 3)]  # linear fall-off
    assert call(parse("boxed"), ["x \\boxed{4}", "x \\boxed{4}.", "\\boxed{4} then more", "\\boxed{}", CHAT]) == [
        1.0, 1.0, 0.0, 0.0, 1.0]


def test_a_users_file_is_loaded_only_when_named_and_checked(tmp_path):
    marker = tmp_path / "imported.txt"
    path = tmp_path / "my_rewards.py"
    path.write_text(
        f"open({str(marker)!r}, 'w').write('yes')\n"
        "def short(completions, **kwargs):\n    return [1.0 if len(c) < 5 else 0.0 for c in completions]\n"
        "def broken(completions, **kwargs):\n    return ['x' for c in completions]\n"
    )
    assert rewards.check([f"{path}:short"]) == [] and not marker.exists()  # checking never imports
    [fn] = reward_functions([f"{path}:short"])
    assert marker.exists() and fn.__name__ == "short"
    assert call(fn, ["ok", "far too long"]) == [1.0, 0.0]
    [bad] = reward_functions([f"{path}:broken"])
    with pytest.raises(JobError, match="must return a list of numbers"):
        call(bad, ["a"])
    with pytest.raises(JobError, match="has no function 'nope'"):
        reward_functions([f"{path}:nope"])


@pytest.mark.parametrize("spec, needle", [
    ("exact:", "needs the dataset column"),
    ("firstline:", "needs the dataset column"),
    ("regex:(", "not a valid regular expression"),
    ("length:9:2", "give MIN:MAX"),
    ("missing.py:f", "is not a file"),
    ("fancy", "use exact:COLUMN"),
])
def test_bad_specs_are_one_sentence(spec, needle):
    with pytest.raises(RewardSpecError, match=needle):
        parse(spec)
    assert needle in rewards.check([spec])[0]


def test_two_regex_rewards_get_distinct_names():
    first, second = reward_functions(["regex:a", "regex:b"])
    assert (first.__name__, second.__name__) == ("regex", "regex2")
