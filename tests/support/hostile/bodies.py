"""Plain-body strategies: triggers on ``tracks.<up>.run.<cid>`` whose bytes are the hostile part —
random bytes, broken JSON, JSON that is no object, deep nesting, huge integers, NaN and Infinity,
NUL and lone surrogates, byte order marks and other encodings, and bodies near ``max_payload``.
"""

from __future__ import annotations

import json

from hypothesis import strategies as st

from tests.support.hostile.builders import (
    Build,
    _dead,
    _good,
    _Names,
    _order,
    _plain,
    ints,
    json_values,
    notes,
    pick,
)
from tests.support.hostile.verdicts import (
    BOM,
    COMPLETED,
    DEAD,
    NESTED,
    NON_FINITE,
    NOT_JSON,
    NOT_OBJECT,
    NUL,
    SCHEMA,
    SURROGATE,
    UNDECODABLE,
    UTF8,
)


def random_bytes() -> st.SearchStrategy[Build]:
    return st.binary(max_size=200).map(lambda b: _plain("random_bytes", "binary", b))


_MUTATIONS = ("truncate", "insert", "delete", "replace", "trailing", "double")


@st.composite
def broken_json(draw: st.DrawFn) -> Build:
    text = _order(draw(ints), draw(notes)).decode()
    how = draw(pick(_MUTATIONS))
    at = draw(st.integers(min_value=0, max_value=len(text)))
    char = draw(pick([*"{}[]\",:'\\ \n\t0aeE-+.", "\u00e9", "\x00", "\x7f"]))
    if how == "truncate":
        text = text[:at]
    elif how == "insert":
        text = text[:at] + char + text[at:]
    elif how == "delete":
        text = text[:at] + text[at + 1 :]
    elif how == "replace":
        text = text[:at] + char + text[at + 1 :]
    elif how == "trailing":
        text = text + char + "garbage"
    else:
        text = text + text
    return _plain("broken_json", how, text.encode("utf-8", "surrogatepass"))


def non_object() -> st.SearchStrategy[Build]:
    not_dicts = json_values.filter(lambda v: not isinstance(v, dict))
    return not_dicts.map(
        lambda v: _dead("non_object", type(v).__name__, json.dumps(v).encode(), (NOT_OBJECT,))
    )


@st.composite
def deep_nesting(draw: st.DrawFn) -> Build:
    depth = draw(pick([100, 101, 254, 300, 900, 990, 1100, 5000, 100_000]))
    shape = draw(pick(["open_arrays", "arrays", "objects", "in_order"]))
    if shape == "open_arrays":  # never closed: "[" * depth
        return _dead("deep_nesting", f"{shape}-{depth}", b"[" * depth, (NOT_JSON, UNDECODABLE, NOT_OBJECT))
    if shape == "arrays":  # {"a": [[[...]]]}
        inner = b"[" * depth + b"]" * depth
        body = b'{"a":' + inner + b"}"
    elif shape == "objects":  # {"a":{"a":...1...}}
        body = b'{"a":' * depth + b"1" + b"}" * depth
    else:  # a valid order with a deep extra key
        body = b'{"n": 1, "x": ' + b"[" * depth + b"]" * depth + b"}"
    return _dead("deep_nesting", f"{shape}-{depth}", body, (NESTED, UNDECODABLE, SCHEMA))


@st.composite
def huge_int(draw: st.DrawFn) -> Build:
    digits = draw(pick([20, 310, 1000, 4299, 4300, 4301, 5000, 10_000, 100_000]))
    # 4300 digits in ``n`` is a good order whose downstream output (n + 1) has 4301: not hostile input
    where = "extra" if digits == 4300 else draw(pick(["n", "extra"]))
    number = b"9" * digits
    body = (b'{"n": ' if where == "n" else b'{"n": 1, "x": ') + number + b"}"
    if digits > 4300:
        return _dead("huge_int", f"{where}-{digits}", body, (UNDECODABLE, "digits"))
    if where == "extra":
        return _dead("huge_int", f"{where}-{digits}", body, (SCHEMA,))
    return _good("huge_int", f"{where}-{digits}", body)


@st.composite
def nan_inf(draw: st.DrawFn) -> Build:
    literal = draw(
        pick(
            [
                "NaN",
                "Infinity",
                "-Infinity",
                "1e400",
                "-1e400",
                "1E+999",
                "1" + "0" * 400 + ".0",
                "9" * 300 + "e10",
            ]
        )
    )
    where = draw(pick(["n", "extra", "nested"]))
    if where == "n":
        body = '{"n": ' + literal + "}"
    elif where == "extra":
        body = '{"n": 1, "x": ' + literal + "}"
    else:
        body = '{"n": 1, "x": {"y": [1, ' + literal + "]}}"
    return _dead("nan_inf", f"{where}-{literal[:12]}", body.encode(), (*NON_FINITE, NOT_JSON))


_TEXTS = {
    "nul": ('"a\\u0000b"', DEAD, (NUL,)),
    "nul_only": ('"\\u0000"', DEAD, (NUL,)),
    "lone_high": ('"\\ud800"', DEAD, (SURROGATE,)),
    "lone_low": ('"x\\udfffy"', DEAD, (SURROGATE,)),
    "reversed_pair": ('"\\ude00\\ud83d"', DEAD, (SURROGATE,)),
    "pair": ('"\\ud83d\\ude00"', COMPLETED, ()),
    "escaped_ascii": ('"\\u0041\\u00e9"', COMPLETED, ()),
}


@st.composite
def nul_surrogate(draw: st.DrawFn) -> Build:
    name = draw(pick(sorted(_TEXTS)))
    literal, expect, reasons = _TEXTS[name]
    where = draw(pick(["note", "key"]))
    if where == "note":
        body = ('{"n": 1, "note": ' + literal + "}").encode()
        if expect == COMPLETED:
            return _good("nul_surrogate", f"note-{name}", body)
        return _dead("nul_surrogate", f"note-{name}", body, reasons)
    body = ('{"n": 1, ' + literal + ": 1}").encode()
    return _dead("nul_surrogate", f"key-{name}", body, (*reasons, SCHEMA) if expect == DEAD else (SCHEMA,))


@st.composite
def bom_encoding(draw: st.DrawFn) -> Build:
    order = _order(draw(ints)).decode()
    codec = draw(pick(["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-8-sig", "latin-1-note", "cesu"]))
    if codec == "utf-8-sig":
        return _dead("bom_encoding", codec, b"\xef\xbb\xbf" + order.encode(), (BOM,))
    if codec == "latin-1-note":  # a note in ISO-8859-1: not UTF-8
        return _dead("bom_encoding", codec, '{"n": 1, "note": "caf\u00e9"}'.encode("latin-1"), (UTF8,))
    if codec == "cesu":  # a surrogate encoded as three UTF-8 bytes (CESU-8 / WTF-8): not UTF-8
        return _dead("bom_encoding", codec, b'{"n": 1, "note": "\xed\xa0\x80"}', (UTF8,))
    return _plain("bom_encoding", codec, order.encode(codec))


@st.composite
def huge_body(draw: st.DrawFn) -> Build:
    variant = draw(pick(["x", "x_headers", "good_note", "bad_n", "deep_enough"]))

    def size(names: _Names, reserve: int) -> int:
        return names.max_payload - reserve

    if variant == "x":  # max_payload - 300 bytes of "x": the dead letter adds headers
        return _dead("huge_body", variant, lambda names, cid: b"x" * size(names, 300), (NOT_JSON,), huge=True)
    if variant == "x_headers":  # the same with headers of its own that nearly fill the rest
        return _dead(
            "huge_body",
            variant,
            lambda names, cid: b"x" * size(names, 4096),
            (NOT_JSON,),
            headers={"X-Filler": "f" * 3000, "X-Note": "\u65e5\u672c"},
            huge=True,
        )
    if variant == "good_note":  # a good order of nearly max_payload: runs, its output by reference
        return _good(
            "huge_body",
            variant,
            lambda names, cid: b'{"n": 7, "note": "' + b"y" * size(names, 400) + b'"}',
            huge=True,
        )
    if variant == "bad_n":  # schema mismatch of nearly max_payload
        return _dead(
            "huge_body",
            variant,
            lambda names, cid: b'{"n": "' + b"z" * size(names, 400) + b'"}',
            (SCHEMA,),
            huge=True,
        )
    return _dead(  # a wide (not deep) body: many small arrays
        "huge_body",
        variant,
        lambda names, cid: b'{"n": 1, "x": [' + b",".join([b"[1]"] * (size(names, 400) // 4)) + b"]}",
        (SCHEMA,),
        huge=True,
    )
