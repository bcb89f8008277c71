"""MLflow's trace search grammar (``search_traces(filter_string=..., order_by=...)``), parsed into
clauses a store can answer.

The grammar and its rules are MLflow's (``SearchTraceUtils`` in ``mlflow/utils/search_utils.py``):

* conditions joined by ``AND`` (MLflow has no ``OR`` and no parentheses for traces);
* ``<prefix>.<key> <comparator> <value>``: prefixes ``tags`` / ``tag``, ``metadata`` /
  ``request_metadata``, ``attributes`` / ``attribute`` / ``trace`` (also no prefix), ``span``,
  ``feedback``, ``expectation``; a key with dots or spaces in backticks or double quotes
  (``metadata.`mlflow.trace.user```);
* attribute keys: ``timestamp_ms`` / ``timestamp``, ``execution_time_ms`` / ``execution_time``,
  ``end_time_ms`` / ``end_time`` (numbers: ``= != < <= > >=``), ``status``, ``client_request_id``,
  ``request_id`` (strings: ``= != LIKE ILIKE RLIKE``, and ``IN`` / ``NOT IN``), ``name`` (the tag
  ``mlflow.traceName``), ``run_id`` (the metadata ``mlflow.sourceRun``), ``prompt`` (the tag
  ``mlflow.linkedPrompts``), ``text`` (span content);
* tags and metadata: ``= != LIKE ILIKE RLIKE IS NULL IS NOT NULL``;
* spans: ``span.name``, ``span.type``, ``span.status``, ``span.attributes.<key>`` with the string
  comparators, ``span.content`` with ``LIKE`` / ``ILIKE``.

Every mistake raises one ``MlflowException`` (``INVALID_PARAMETER_VALUE``) naming the part of the
filter at fault. A store that cannot answer a valid clause says so with :func:`unsupported`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

from mlflow_otel.exceptions import MlflowException

TAG, METADATA, ATTRIBUTE, SPAN, FEEDBACK, EXPECTATION, ISSUE = (
    "tag",
    "metadata",
    "attribute",
    "span",
    "feedback",
    "expectation",
    "issue",
)
_PREFIXES = {
    "tag": TAG,
    "tags": TAG,
    "metadata": METADATA,
    "request_metadata": METADATA,
    "attribute": ATTRIBUTE,
    "attributes": ATTRIBUTE,
    "trace": ATTRIBUTE,
    "span": SPAN,
    "feedback": FEEDBACK,
    "expectation": EXPECTATION,
    "issue": ISSUE,
}

NUMERIC_ATTRIBUTES = frozenset({"timestamp_ms", "execution_time_ms", "end_time_ms"})
VALID_ATTRIBUTE_KEYS = frozenset(
    {
        "request_id",
        "timestamp",
        "timestamp_ms",
        "execution_time",
        "execution_time_ms",
        "end_time",
        "end_time_ms",
        "status",
        "client_request_id",
        "name",
        "run_id",
        "prompt",
        "text",
    }
)
VALID_ORDER_BY_KEYS = frozenset(
    {
        "experiment_id",
        "timestamp",
        "timestamp_ms",
        "execution_time",
        "execution_time_ms",
        "end_time",
        "end_time_ms",
        "status",
        "request_id",
        "name",
        "run_id",
    }
)
_ALIASES = {"timestamp": "timestamp_ms", "execution_time": "execution_time_ms", "end_time": "end_time_ms"}
#: Attribute keys that live elsewhere (MLflow's ``SEARCH_KEY_TO_TAG`` / ``_TO_METADATA`` / ``_TO_SPAN``).
_KEY_TO = {
    "name": (TAG, "mlflow.traceName"),
    "prompt": (TAG, "mlflow.linkedPrompts"),
    "run_id": (METADATA, "mlflow.sourceRun"),
    "text": (SPAN, "content"),
}
#: ``IN`` / ``NOT IN`` are allowed on these keys only (``SUPPORT_IN_COMPARISON_ATTRIBUTE_KEYS``).
_IN_KEYS = frozenset({"name", "status", "request_id", "run_id", "client_request_id"})
_SPAN_KEYS = frozenset({"name", "type", "status"})

NUMERIC_OPS = frozenset({"=", "!=", "<", "<=", ">", ">="})
STRING_OPS = frozenset({"=", "!=", "LIKE", "ILIKE", "RLIKE"})
TAG_OPS = frozenset({"=", "!=", "LIKE", "ILIKE", "RLIKE", "IS NULL", "IS NOT NULL"})
SPAN_OPS = frozenset({"=", "!=", "IN", "NOT IN", "LIKE", "ILIKE", "RLIKE"})
CONTENT_OPS = frozenset({"LIKE", "ILIKE"})
ASSESSMENT_OPS = frozenset(
    {"=", "!=", ">", ">=", "<", "<=", "LIKE", "ILIKE", "RLIKE", "IS NULL", "IS NOT NULL"}
)


@dataclass(frozen=True)
class Clause:
    """One condition: ``kind`` (tag, metadata, attribute, span, feedback, expectation), the key
    (attribute keys normalised: ``timestamp_ms``, ``execution_time_ms``, ...), the comparator in upper
    case, and the value (a string, a number, a tuple for ``IN``, None for ``IS [NOT] NULL``)."""

    kind: str
    key: str
    op: str
    value: Any
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class OrderKey:
    kind: str
    key: str
    ascending: bool


def _invalid(message: str) -> MlflowException:
    return MlflowException.invalid_parameter_value(message)


def unsupported(clause: Clause, where: str, supported: str) -> MlflowException:
    """The error a store raises for a valid clause it cannot answer."""
    return _invalid(f"The filter {clause.text!r} is not supported by {where}. {supported}")


# --- tokens --------------------------------------------------------------------------------------
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.)*")
      | (?P<backtick>`[^`]*`)
      | (?P<number>[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?(?![\w.]))
      | (?P<op>!=|<>|>=|<=|==|=|<|>)
      | (?P<punct>[(),.])
      | (?P<word>[A-Za-z_][A-Za-z0-9_\-]*)
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str
    start: int


def _tokens(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    end = len(text.rstrip())
    while pos < end:
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise _invalid(f"Invalid filter {text!r}: cannot parse from {text[pos:].strip()[:40]!r}.")
        kind = match.lastgroup or ""
        out.append(_Tok(kind, match.group(kind), match.start(kind)))
        pos = match.end()
    return out


def _unquote(tok: _Tok) -> str:
    body = tok.text[1:-1]
    if tok.kind == "backtick":
        return body
    quote = tok.text[0]
    body = body.replace(quote * 2, quote) if quote == "'" else body
    return re.sub(r"\\(.)", r"\1", body)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokens(text)
        self.i = 0

    def peek(self, offset: int = 0) -> Optional[_Tok]:
        j = self.i + offset
        return self.toks[j] if j < len(self.toks) else None

    def take(self) -> _Tok:
        tok = self.peek()
        if tok is None:
            raise _invalid(f"Invalid filter {self.text!r}: it ends too early.")
        self.i += 1
        return tok

    def word_is(self, tok: Optional[_Tok], *words: str) -> bool:
        return tok is not None and tok.kind == "word" and tok.text.upper() in words

    # identifier := part ('.' part)*, split at the first dot into prefix and key (MLflow's rule)
    def identifier(self) -> tuple[Optional[str], str, int]:
        first = self.take()
        if first.kind not in ("word", "backtick", "string"):
            raise _invalid(f"Invalid filter {self.text!r}: expected a key at {first.text!r}.")
        parts = [first]
        while self.peek() is not None and self.peek().text == "." and self.peek().kind == "punct":  # type: ignore[union-attr]
            self.take()
            part = self.take()
            if part.kind not in ("word", "backtick", "string", "number"):
                raise _invalid(f"Invalid filter {self.text!r}: a key cannot continue with {part.text!r}.")
            parts.append(part)
        texts = [_unquote(p) if p.kind in ("backtick", "string") else p.text for p in parts]
        if len(parts) == 1:
            return None, texts[0], first.start
        return texts[0], ".".join(texts[1:]), first.start

    def comparator(self) -> str:
        tok = self.take()
        if tok.kind == "op":
            if tok.text in ("<>", "=="):
                raise _invalid(f"Invalid comparator {tok.text!r} in {self.text!r}; use '!=' or '='.")
            return tok.text
        word = tok.text.upper() if tok.kind == "word" else ""
        if word in ("LIKE", "ILIKE", "RLIKE", "IN"):
            return word
        if word == "NOT" and self.word_is(self.peek(), "IN"):
            self.take()
            return "NOT IN"
        if word == "IS":
            if self.word_is(self.peek(), "NOT") and self.word_is(self.peek(1), "NULL"):
                self.take()
                self.take()
                return "IS NOT NULL"
            if self.word_is(self.peek(), "NULL"):
                self.take()
                return "IS NULL"
        raise _invalid(f"Invalid comparator {tok.text!r} in {self.text!r}.")

    def value(self, op: str) -> Any:
        if op in ("IS NULL", "IS NOT NULL"):
            return None
        if op in ("IN", "NOT IN"):
            opening = self.take()
            if opening.text != "(":
                raise _invalid(
                    f"{op} needs a parenthesised list of strings, got {opening.text!r} in {self.text!r}."
                )
            items: list[str] = []
            while True:
                tok = self.take()
                if tok.kind != "string":
                    raise _invalid(f"{op} takes quoted strings, got {tok.text!r} in {self.text!r}.")
                items.append(_unquote(tok))
                sep = self.take()
                if sep.text == ")":
                    return tuple(items)
                if sep.text != ",":
                    raise _invalid(f"Invalid list in {self.text!r}: expected ',' or ')', got {sep.text!r}.")
        tok = self.take()
        if tok.kind == "string":
            return _unquote(tok)
        if tok.kind == "number":
            return float(tok.text) if any(c in tok.text for c in ".eE") else int(tok.text)
        if tok.kind == "word" and tok.text.upper() in ("TRUE", "FALSE"):
            return tok.text.lower()
        raise _invalid(f"Invalid value {tok.text!r} in {self.text!r}: quote strings ('...').")


def _normalise(prefix: Optional[str], key: str, op: str, value: Any, text: str) -> Clause:
    if prefix is None:
        kind = ATTRIBUTE
    else:
        kind = _PREFIXES.get(prefix.lower())  # type: ignore[assignment]
        if kind is None:
            raise _invalid(
                f"Invalid entity type {prefix!r} in {text!r}. Valid types are "
                "tags, metadata, attributes (trace), span, feedback, expectation."
            )
    if not key:
        raise _invalid(f"Invalid filter {text!r}: the key is empty.")
    if kind == ATTRIBUTE:
        lowered = key.lower()
        if lowered not in VALID_ATTRIBUTE_KEYS:
            raise _invalid(
                f"Invalid attribute key {key!r} specified. Valid keys are {sorted(VALID_ATTRIBUTE_KEYS)}"
            )
        if op in ("IN", "NOT IN") and lowered not in _IN_KEYS:
            raise _invalid(f"{op} is not supported for the attribute {key!r} (only {sorted(_IN_KEYS)}).")
        if lowered in _KEY_TO:
            kind, key = _KEY_TO[lowered]
            if kind == SPAN:
                if op not in CONTENT_OPS:
                    raise _invalid(
                        f"span.content comparator {op!r} not one of {sorted(CONTENT_OPS)} in {text!r}."
                    )
                return Clause(kind, key, op, _string(value, text), text)
            if op not in TAG_OPS and op not in ("IN", "NOT IN"):
                raise _invalid(f"Invalid comparator {op!r} for {lowered!r} in {text!r}.")
            return Clause(
                kind, key, op, value if op.endswith("IN") else _string_or_none(value, op, text), text
            )
        key = _ALIASES.get(lowered, lowered)
        if key in NUMERIC_ATTRIBUTES:
            if op not in NUMERIC_OPS:
                raise _invalid(f"Invalid comparator {op!r} for the numeric attribute {key!r} in {text!r}.")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise _invalid(
                    f"Expected a numeric value for the attribute {key!r} in {text!r}, got {value!r}."
                )
            return Clause(kind, key, op, value, text)
        if op not in STRING_OPS and op not in ("IN", "NOT IN"):
            raise _invalid(f"Invalid comparator {op!r} for the attribute {key!r} in {text!r}.")
        return Clause(kind, key, op, value if op.endswith("IN") else _string(value, text), text)
    if kind in (TAG, METADATA):
        if op not in TAG_OPS:
            raise _invalid(f"Invalid comparator {op!r} not one of {sorted(TAG_OPS)} in {text!r}.")
        return Clause(kind, key, op, _string_or_none(value, op, text), text)
    if kind == SPAN:
        if key.startswith("attributes."):
            if not key[len("attributes.") :]:
                raise _invalid("Span attribute name cannot be empty after 'attributes.'")
            ops = SPAN_OPS
        elif key == "content":
            ops = CONTENT_OPS
        elif key in _SPAN_KEYS:
            ops = SPAN_OPS
        else:
            raise _invalid(
                f"Invalid span attribute {key!r}. Supported attributes: name, status, type, "
                "attributes.<attribute_name>."
            )
        if op not in ops:
            raise _invalid(f"span.{key} comparator {op!r} not one of {sorted(ops)} in {text!r}.")
        return Clause(kind, key, op, value if op.endswith("IN") else _string(value, text), text)
    if kind in (FEEDBACK, EXPECTATION):
        if op not in ASSESSMENT_OPS:
            raise _invalid(
                f"assessment.{key} comparator {op!r} not one of {sorted(ASSESSMENT_OPS)} in {text!r}."
            )
        return Clause(kind, key, op, value, text)
    if key != "id" or op != "=":
        raise _invalid(f"Invalid issue filter {text!r}: only issue.id = '<id>' is supported.")
    return Clause(kind, key, op, _string(value, text), text)


def _string(value: Any, text: str) -> str:
    if not isinstance(value, str):
        raise _invalid(f"Expected a quoted string value in {text!r}, got {value!r}.")
    return value


def _string_or_none(value: Any, op: str, text: str) -> Optional[str]:
    return None if op in ("IS NULL", "IS NOT NULL") else _string(value, text)


def parse_filter(filter_string: Optional[str]) -> list[Clause]:
    """The AND-ed clauses of ``filter_string`` (none for an empty filter)."""
    if not filter_string or not filter_string.strip():
        return []
    parser = _Parser(filter_string)
    clauses: list[Clause] = []
    while True:
        start_tok = parser.peek()
        if start_tok is not None and start_tok.text == "(":
            raise _invalid(
                f"Invalid filter {filter_string!r}: parentheses are not supported; join conditions with AND."
            )
        prefix, key, start = parser.identifier()
        op = parser.comparator()
        value = parser.value(op)
        last = parser.toks[parser.i - 1]
        text = filter_string[start : last.start + len(last.text)]
        clauses.append(_normalise(prefix, key, op, value, text))
        nxt = parser.peek()
        if nxt is None:
            return clauses
        if parser.word_is(nxt, "AND"):
            parser.take()
            continue
        if parser.word_is(nxt, "OR"):
            raise _invalid(
                f"Invalid filter {filter_string!r}: OR is not supported. MLflow's trace filter joins "
                "conditions with AND."
            )
        raise _invalid(f"Invalid filter {filter_string!r}: expected AND before {nxt.text!r}.")


def parse_order_by(order_by: Optional[Sequence[str]]) -> list[OrderKey]:
    """``order_by`` items (``"timestamp_ms DESC"``, ``"attributes.execution_time_ms"``,
    ``"tags.env ASC"``) as keys; ascending unless ``DESC``."""
    keys: list[OrderKey] = []
    for item in order_by or ():
        if not isinstance(item, str) or not item.strip():
            raise _invalid(f"Invalid order_by clause {item!r}.")
        words = item.strip().rsplit(None, 1)
        ascending = True
        if len(words) == 2 and words[1].upper() in ("ASC", "DESC"):
            ascending = words[1].upper() == "ASC"
            field_text = words[0]
        else:
            field_text = item.strip()
        parser = _Parser(field_text)
        prefix, key, _ = parser.identifier()
        if parser.peek() is not None:
            raise _invalid(f"Invalid order_by clause {item!r}: expected '<key> [ASC|DESC]'.")
        kind = ATTRIBUTE if prefix is None else _PREFIXES.get(prefix.lower())
        if kind == ATTRIBUTE:
            lowered = key.lower()
            if lowered not in VALID_ORDER_BY_KEYS:
                raise _invalid(
                    f"Invalid order_by key {key!r} in {item!r}. Valid keys are {sorted(VALID_ORDER_BY_KEYS)}"
                )
            if lowered in _KEY_TO:
                kind, key = _KEY_TO[lowered]
            else:
                key = _ALIASES.get(lowered, lowered)
        elif kind not in (TAG, METADATA):
            raise _invalid(f"Invalid order_by clause {item!r}: order by attributes, tags or metadata.")
        keys.append(OrderKey(kind, key, ascending))  # type: ignore[arg-type]
    return keys
