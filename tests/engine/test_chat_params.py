"""Sampling parameters, the stop-string filter and the stats arithmetic."""

from __future__ import annotations

import pytest

from engine.chat.base import GenerationStats, StopFilter, with_system_prompt
from engine.chat.params import ParamError, SamplingParams, parse_value


def test_defaults_validate_and_round_trip() -> None:
    p = SamplingParams(stop=["###"], seed=3)
    assert p.stop == ("###",)
    assert SamplingParams.from_dict(p.to_dict() | {"unknown": 1}) == p
    assert SamplingParams(temperature=0).greedy


@pytest.mark.parametrize(
    "bad",
    [{"temperature": -1}, {"top_p": 0}, {"top_k": -1}, {"min_p": 1.0},
     {"max_new_tokens": 0}, {"repetition_penalty": 9}],
)
def test_out_of_range_values_name_the_field(bad) -> None:
    with pytest.raises(ParamError, match=next(iter(bad))):
        SamplingParams(**bad)


def test_parse_value() -> None:
    assert parse_value("top_k", "20") == 20
    assert parse_value("temperature", "0.3") == 0.3
    assert parse_value("seed", "random") is None
    assert parse_value("stop", "###|\\n\\n") == ("###", "\n\n")
    with pytest.raises(ParamError, match="not a number"):
        parse_value("top_p", "lots")


def test_stop_filter_holds_back_split_stop_strings() -> None:
    f = StopFilter(["<end_of_turn>"])
    out = [f.feed("Hello <end"), f.feed("_of"), f.feed("_turn> tail")]
    assert "".join(out) == "Hello "
    assert f.stopped and f.flush() == ""
    g = StopFilter(["###"])
    assert g.feed("a#") == "a" and g.feed("b") == "#b" and g.flush() == ""
    h = StopFilter(["###"])
    assert h.feed("x##") == "x" and h.flush() == "##"


def test_stats_speed_and_fill() -> None:
    s = GenerationStats(
        prompt_tokens=100, generated_tokens=11, ttft_s=0.2, total_s=1.2, decode_s=1.0, context_size=1000
    )
    assert s.tokens_per_s == pytest.approx(10.0)
    assert s.context_fill == pytest.approx(0.111)
    assert "TTFT 0.20 s" in s.summary() and "10.0 tok/s" in s.summary()
    assert GenerationStats.from_dict(s.to_dict()) == s


def test_system_prompt_goes_first_once() -> None:
    msgs = [{"role": "user", "content": "hi"}]
    assert with_system_prompt(msgs, "sys")[0] == {"role": "system", "content": "sys"}
    already = [{"role": "system", "content": "own"}, *msgs]
    assert with_system_prompt(already, "sys") == already
    assert with_system_prompt(msgs, "") == msgs
