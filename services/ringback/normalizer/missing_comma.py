"""The missing-comma repair, in one left-to-right pass over the body's tokens: time linear in its length.

A complete ``"key":"value"`` pair directly followed — spaces or tabs only — by the next ``"key":``
lacks the comma between them (seed 002: ``"customParm":"123456"" stateDesc ":"…"``); in JSON a
string after a value string can only mean that. The body is read as tokens, so a quote inside a
string never starts another one, and every character is read a bounded number of times: a string
not closed on its own line is one token up to the line's end (JSON strings hold no raw newline).
"""

from __future__ import annotations

import re

_TOKEN = re.compile(
    r"""
      (?P<string>  "(?:[^"\\\n]++|\\.)*+" )  # a complete string; possessive: never backtracks
    | (?P<broken>  "[^\n]* )                  # a string never closed on its line
    | (?P<colon>  : )
    | (?P<blank>  [ \t]+ )
    | (?P<newline> [\r\n][ \t\r\n]* )
    | (?P<other>  [^"\ \t\r\n:]+ )
    """,
    re.VERBOSE,
)

# Where the scan stands in the pattern  "key" : "value" [ \t]* "next key" :
_NOTHING, _KEY, _KEY_COLON, _PAIR, _NEXT_KEY = range(5)


def insert_missing_commas(text: str) -> tuple[str, int]:
    """``text`` with a comma after every complete pair that runs into the next key, and how many."""
    cuts = _comma_positions(text)
    if not cuts:
        return text, 0
    pieces = [text[start:end] for start, end in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    return ",".join(pieces), len(cuts)


def _comma_positions(text: str) -> list[int]:
    cuts: list[int] = []
    state, value_end = _NOTHING, 0
    for token in _TOKEN.finditer(text):
        kind = token.lastgroup
        if kind == "string":
            if state == _KEY_COLON:
                state, value_end = _PAIR, token.end()
            elif state == _PAIR:
                state = _NEXT_KEY
            else:
                state = _KEY
        elif kind == "colon":
            if state == _NEXT_KEY:
                cuts.append(value_end)
                state = _KEY_COLON
            else:
                state = _KEY_COLON if state == _KEY else _NOTHING
        elif kind == "newline":
            if state == _PAIR:
                state = _NOTHING  # the next key is on another line: not "directly followed"
        elif kind != "blank":
            state = _NOTHING
    return cuts
