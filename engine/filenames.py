"""File names made from what a user typed (a run name, a chat title).

Such text may hold `/`, `..`, a leading dot, control characters or thousands of characters;
joined to a folder as is, it writes outside the folder, hides the file or fails. Every file name
built from user text goes through `slugify` instead.
"""

from __future__ import annotations

import re

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def slugify(text: str, *, fallback: str = "untitled", limit: int = 60) -> str:
    """A safe file-name part: letters, digits, `.`, `_` and `-` only, runs of anything else
    made one `-`, no leading or trailing dot or dash (so never `.` or `..`), at most `limit`
    characters, and `fallback` when nothing is left. Case is kept."""
    slug = _UNSAFE.sub("-", text)
    slug = re.sub(r"\.{2,}", ".", slug)[:limit].strip(".-")
    return slug or fallback
