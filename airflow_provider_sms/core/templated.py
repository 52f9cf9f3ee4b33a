"""Values as Airflow templating leaves them: a list may arrive rendered as the text of a list literal.

A templated ``to="{{ ti.xcom_pull('numbers') }}"`` renders to the string ``"['+614...', '+614...']"``
unless the DAG renders native objects. ``list_from_template`` turns such a string back into the list;
any other value (a list, a comma-separated string, a number) is returned unchanged.
"""

from __future__ import annotations

import ast
import json
from typing import Any

from airflow_provider_sms.core.errors import SmsValidationError


def list_from_template(value: Any) -> Any:
    """``value`` with a rendered list literal (JSON or Python) read back into a list."""
    if not isinstance(value, str) or not value.strip().startswith("["):
        return value
    text = value.strip()
    try:
        return json.loads(text)
    except ValueError:
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise SmsValidationError(f"{text[:80]!r} looks like a list but cannot be read as one") from None
