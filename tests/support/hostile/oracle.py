"""The reference oracle for plain bodies: :func:`reference_verdict` says what a plain trigger with a
given body must end in, written from the rule (SPEC §5, "Input rules"), not from
``actors.transport.decode``.
"""

from __future__ import annotations

import json
import math
from typing import Any

from pydantic import ValidationError

from tests.support.apps.fuzz_workflow import Order
from tests.support.hostile.verdicts import (
    ANY_POISON,
    BOM,
    CID,
    COMPLETED,
    DEAD,
    ENVELOPE,
    NESTED,
    NON_FINITE,
    NOT_OBJECT,
    NUL,
    SCHEMA,
    SURROGATE,
    USER_ID,
    UTF8,
    WORKFLOW,
)


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def _storable(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            if "\x00" in item or any(0xD800 <= ord(c) <= 0xDFFF for c in item):
                return False
        elif isinstance(item, float) and not math.isfinite(item):
            return False
    return True


def reference_verdict(body: bytes) -> tuple[str, tuple[str, ...]]:
    """What a plain trigger with this body must end in, from the rule: ``(expect, reasons)``.

    Good only when the body is strict UTF-8 JSON (no byte order mark, no NaN/Infinity, finite
    numbers, nothing jsonb cannot store, not absurdly nested) holding an object that ``Order``
    accepts as it is; an empty body is the empty payload.
    """
    if not body.strip():
        return DEAD, (SCHEMA,)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return DEAD, (UTF8, BOM)
    try:
        data = json.loads(text, parse_constant=_refuse)
    except (ValueError, RecursionError):
        return DEAD, ANY_POISON
    if not isinstance(data, dict):
        return DEAD, (NOT_OBJECT,)
    if not _storable(data):
        return DEAD, (NUL, SURROGATE, *NON_FINITE)
    if "trackId" in data and "eventType" in data and "metadata" in data:
        return DEAD, (*ANY_POISON, ENVELOPE, CID, WORKFLOW, USER_ID)
    try:
        Order.model_validate(data)
    except ValidationError:
        return DEAD, (SCHEMA, NESTED) if _depth(data) > 64 else (SCHEMA,)
    return COMPLETED, ()


def _refuse(name: str) -> Any:
    raise ValueError(name)
