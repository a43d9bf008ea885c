"""What a raw record's values are: JSON type names for messages, JSON arrays inside CSV cells.

Shared by the SFT formats (formats.py) and the preference formats (preference.py), which
formats.py dispatches to, so neither module imports the other's helpers.
"""

from __future__ import annotations

import json
from typing import Any


def json_type(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}.get(
        type(value), "null" if value is None else type(value).__name__
    )


def maybe_json_list(value: Any) -> Any:
    """CSV cells hold strings; a cell that is a JSON array is read as the list it encodes."""
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    if hasattr(value, "tolist"):  # numpy arrays from some Parquet writers
        return value.tolist()
    return value
