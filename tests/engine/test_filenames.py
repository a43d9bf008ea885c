"""File names made from user text stay one plain name inside their folder (issue 14, item 5)."""

from __future__ import annotations

import pytest

from engine.filenames import slugify


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("lora r16", "lora-r16"),
        ("../../etc/passwd", "etc-passwd"),
        ("..", "untitled"),
        (".hidden", "hidden"),
        ("a/b\\c", "a-b-c"),
        ("tab\tnew\nline\x00nul", "tab-new-line-nul"),
        ("run...v2", "run.v2"),
        ("Qwen2.5-7B_lora", "Qwen2.5-7B_lora"),
        ("", "untitled"),
        ("日本語", "untitled"),
    ],
)
def test_slugify(text: str, expected: str) -> None:
    assert slugify(text) == expected


def test_slug_is_bounded_and_never_a_path(tmp_path) -> None:
    slug = slugify("x/" * 500, limit=60)
    assert len(slug) <= 60 and "/" not in slug
    assert (tmp_path / slug).parent == tmp_path
