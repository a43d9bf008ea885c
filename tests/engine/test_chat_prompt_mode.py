"""Chat or plain completion: the automatic choice, the completion document, the repeat stop."""

from __future__ import annotations

import pytest

from engine.chat.prompt_mode import RepeatGuard, choose_prompt_mode, completion_text, tuned_name


def test_a_model_with_no_template_and_no_sign_of_tuning_is_a_completion() -> None:
    bundled = ("gemma-3-270m-q4_k_m.gguf", "Gemma 3 270m", None, "gemma-3", ["gemma3", "gemma", "google",
                                                                              "text-generation"])
    mode = choose_prompt_mode("auto", has_template=False, names=bundled)
    assert mode.mode == "completion" and mode.completion and "base model" in mode.reason
    assert mode.label == "completion (auto)"
    assert choose_prompt_mode("auto", has_template=True, names=bundled).mode == "chat"


@pytest.mark.parametrize("name", ["gemma-3-270m-it-Q4_K_M.gguf", "Meta-Llama-3-8B-Instruct", "llama-2-7b-chat",
                                  "Qwen2.5 0.5B Instruct", "my_model_sft", "zephyr dpo", "gemma it"])
def test_names_of_instruction_tuned_models_choose_chat(name) -> None:
    assert tuned_name(["x.gguf", name]) == name
    mode = choose_prompt_mode("auto", has_template=False, names=["x.gguf", name])
    assert mode.mode == "chat" and "instruction-tuned" in mode.reason


@pytest.mark.parametrize("name", ["gemma-3-270m", "unit-test-model", "llama-3-8b", "mistral-7b-v0.1", "pythia"])
def test_names_that_only_look_like_tuning_do_not(name) -> None:
    assert tuned_name([name]) == ""


def test_a_forced_mode_wins_and_an_unknown_one_is_refused() -> None:
    assert choose_prompt_mode("chat", has_template=False).mode == "chat"
    forced = choose_prompt_mode("completion", has_template=True)
    assert forced.mode == "completion" and forced.label == "completion (chosen)"
    with pytest.raises(ValueError, match="unknown prompt mode 'notes'"):
        choose_prompt_mode("notes", has_template=True)


def test_the_conversation_as_one_document() -> None:
    messages = [
        {"role": "system", "content": "A list of capitals."},
        {"role": "user", "content": "The capital of France is"},
        {"role": "assistant", "content": " Paris."},
        {"role": "user", "content": "The capital of Italy is"},
    ]
    expected = "A list of capitals.\n\nThe capital of France is Paris.\nThe capital of Italy is"
    assert completion_text(messages) == expected
    assert completion_text([{"role": "user", "content": "Once upon a time"}]) == "Once upon a time"


def feed_all(guard: RepeatGuard, pieces: list[str]) -> str:
    out = "".join(guard.feed(p) for p in pieces)
    return out + guard.flush()


def test_a_repeated_sentence_ends_the_completion_before_it() -> None:
    # what the bundled Gemma 3 270M base model gives for "The capital of France is" at temperature 0
    looping = (" the capital of the country of France. It is the largest city in France. It is the capital of the"
               " country of France. It is the largest city in France. It is the capital of the country")
    guard = RepeatGuard()
    pieces = [looping[i:i + 3] for i in range(0, len(looping), 3)]  # token-sized pieces
    shown = feed_all(guard, pieces)
    assert guard.stopped
    assert shown == (" the capital of the country of France. It is the largest city in France. It is the capital of"
                     " the country of France. ")


def test_repeated_lines_stop_but_short_or_new_lines_do_not() -> None:
    guard = RepeatGuard()
    shown = feed_all(guard, ["def f():\n", "    return 1\n", "}\n", "}\n", "print('hello world')\n",
                             "print('hello world')\n", "never shown\n"])
    assert guard.stopped and shown == "def f():\n    return 1\n}\n}\nprint('hello world')\n"
    fresh = RepeatGuard()
    text = "First line of a poem here.\nSecond line of the poem.\nThird one, different.\n"
    assert feed_all(fresh, list(text)) == text and not fresh.stopped


def test_text_is_held_back_only_while_it_could_still_be_a_repeat() -> None:
    guard = RepeatGuard()
    assert guard.feed("The sea is wide and deep.\n") == "The sea is wide and deep.\n"
    assert guard.feed("The sea") == ""  # could still become the same line
    assert guard.feed(" was") == "The sea was"  # it did not
    assert guard.flush() == ""
