"""Token classes: what kind of text a token is, from its decoded string alone.

The classes (:data:`CLASSES`): ``word`` (letters, starting a word: a leading space, or a
capital), ``subword`` (letters continuing a word), ``whitespace`` (spaces, tabs, newlines:
indentation), ``punctuation``, ``digits``, ``code`` (a Python keyword or builtin, or an
identifier with an underscore or an inner capital), and ``other`` (anything mixed).
"""

from __future__ import annotations

import builtins
import keyword
import string
import unicodedata

import numpy as np

CLASSES = ("word", "subword", "whitespace", "punctuation", "digits", "code", "other")
#: Python keywords and builtins that are not also everyday English words ("and", "for", "in",
#: "list", "open" ... would make English prose look like code).
_ENGLISH = frozenset(
    [
        "and",
        "as",
        "assert",
        "break",
        "case",
        "class",
        "continue",
        "del",
        "else",
        "except",
        "finally",
        "for",
        "from",
        "global",
        "if",
        "import",
        "in",
        "is",
        "match",
        "not",
        "or",
        "pass",
        "raise",
        "return",
        "try",
        "type",
        "while",
        "with",
        "yield",
        "all",
        "any",
        "filter",
        "format",
        "input",
        "list",
        "map",
        "max",
        "min",
        "next",
        "object",
        "open",
        "pow",
        "print",
        "property",
        "range",
        "reversed",
        "round",
        "set",
        "slice",
        "sorted",
        "sum",
        "super",
        "vars",
        "copyright",
        "credits",
        "exit",
        "help",
        "license",
        "quit",
        "id",
        "hash",
        "iter",
        "abs",
        "bin",
        "chr",
        "compile",
        "complex",
        "dict",
        "divmod",
        "eval",
        "exec",
        "float",
        "frozenset",
        "int",
        "len",
        "locals",
        "memoryview",
        "oct",
        "ord",
        "repr",
        "str",
        "tuple",
        "zip",
    ]
)
_CODE_WORDS = (frozenset(keyword.kwlist) | frozenset(n for n in dir(builtins) if not n.startswith("_"))) - _ENGLISH | {
    "self",
    "cls",
    "def",
    "elif",
    "lambda",
    "nonlocal",
    "kwargs",
    "args",
    "isinstance",
    "len",
    "str",
    "int",
    "dict",
    "tuple",
    "enumerate",
    "zip",
    "repr",
    "bool",
    "getattr",
    "setattr",
    "hasattr",
    "staticmethod",
    "classmethod",
    "np",
    "os",
    "sys",
}


def _is_punctuation(ch: str) -> bool:
    return ch in string.punctuation or unicodedata.category(ch)[0] in "PS"


def token_class(text: str) -> str:
    """The class of one decoded token string."""
    core = text.strip()
    if not core:
        return "whitespace"
    if core.isdigit() or (all(ch.isdigit() or ch in ".,_" for ch in core) and any(ch.isdigit() for ch in core)):
        return "digits"
    if all(_is_punctuation(ch) for ch in core):
        return "punctuation"
    if core in _CODE_WORDS or (
        core.isidentifier() and ("_" in core or (any(ch.isupper() for ch in core[1:]) and any(ch.islower() for ch in core)))
    ):
        return "code"
    if core.isalpha():
        return "word" if text[0].isspace() or core[0].isupper() else "subword"
    return "other"


def classify(texts: list[str]) -> np.ndarray:
    """Class index (into :data:`CLASSES`) of each string."""
    index = {c: i for i, c in enumerate(CLASSES)}
    return np.array([index[token_class(t)] for t in texts], dtype=np.int64)
