"""Redaction with the OTel Collector redaction processor's configuration schema.

One policy file serves the SDK and the Collector (``collector-config/``): the keys are the
Collector's, verbatim (``processor/redactionprocessor`` in opentelemetry-collector-contrib):
``allow_all_keys``, ``allowed_keys``, ``ignored_keys``, ``ignored_key_patterns``,
``blocked_key_patterns``, ``blocked_values``, ``allowed_values``, ``redact_all_types``,
``hash_function`` (md5, sha1, sha3 = SHA3-256, hmac-sha256, hmac-sha512 with ``hmac_key``) and
``summary`` (debug, info, silent). The semantics are the Collector's, in its order, per attribute:

1. ignored keys pass untouched;
2. without ``allow_all_keys``, keys not in ``allowed_keys`` are removed (the list fails closed);
3. a value matching ``allowed_values`` is kept as is;
4. a key matching ``blocked_key_patterns`` has its whole value masked;
5. every match of ``blocked_values`` inside the value is masked.

Masks are ``****`` or the hex hash of the matched text, never the secret itself. Summary attributes
(``redaction.redacted.keys``/``.count``, ``redaction.masked.keys``/``.count``,
``redaction.allowed.keys``/``.count``, ``redaction.ignored.count``) merge across chained policies
as the Collector's do.

Beyond the Collector: values that hold JSON (``mlflow.spanInputs``, ``mlflow.spanOutputs``, GenAI
and OpenInference message attributes, stream chunk events) are redacted *inside*: a nested key
matching ``blocked_key_patterns`` is masked, blocked values inside nested strings are masked, and
the result is still valid JSON. Keys inside JSON are not subject to ``allowed_keys``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from mlflow_otel import _conventions as conv
from mlflow_otel._log import logger
from mlflow_otel.processors import SpanView

MASK = "****"

#: Attributes whose (string) values hold JSON documents we redact inside.
JSON_ATTRIBUTES = frozenset(
    {
        conv.SPAN_INPUTS,
        conv.SPAN_OUTPUTS,
        conv.CHAT_TOOLS,
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "gen_ai.system_instructions",
        "gen_ai.tool.definitions",
        "input.value",
        "output.value",
        conv.CHUNK_EVENT_VALUE_KEY,
    }
)

SUMMARY_KEYS = frozenset(
    {
        "redaction.redacted.keys",
        "redaction.redacted.count",
        "redaction.masked.keys",
        "redaction.masked.count",
        "redaction.allowed.keys",
        "redaction.allowed.count",
        "redaction.ignored.count",
    }
)

_CONFIG_KEYS = frozenset(
    {
        "allow_all_keys",
        "allowed_keys",
        "ignored_keys",
        "ignored_key_patterns",
        "blocked_key_patterns",
        "blocked_values",
        "allowed_values",
        "redact_all_types",
        "hash_function",
        "hmac_key",
        "summary",
    }
)
#: Collector options that apply to the Collector only (URL and DB sanitizers work on span names and
#: db attributes of server/client spans); accepted in the file, ignored here with a note.
_COLLECTOR_ONLY_KEYS = frozenset({"url_sanitizer", "db_sanitizer"})

#: Keys of a JSON object, found without parsing it (a pre-check; escaped keys force a full parse).
_JSON_KEY = re.compile(r'"((?:[^"\\]|\\.)*)"\s*:')


class RedactionConfigError(ValueError):
    """The policy could not be read."""


def _compile(patterns: Iterable[Any], what: str) -> list[re.Pattern[str]]:
    compiled = []
    for pattern in patterns or ():
        try:
            # Go's RE2 syntax, as the Collector uses, is a subset of Python's for these purposes;
            # \z (end of text) is the one spelling that differs.
            compiled.append(re.compile(str(pattern).replace(r"\z", r"\Z")))
        except re.error as exc:
            logger.warning("Ignoring invalid regular expression %r in %s: %s", pattern, what, exc)
    return compiled


_GLOBAL_FLAGS = re.compile(r"^\(\?([aiLmsux]+)\)")


def _scoped(pattern: str) -> str:
    """``(?i)abc`` -> ``(?i:abc)``: global flags are only allowed at the start of a whole pattern."""
    match = _GLOBAL_FLAGS.match(pattern)
    return f"(?{match.group(1)}:{pattern[match.end() :]})" if match else f"(?:{pattern})"


def _any_of(patterns: list[re.Pattern[str]]) -> Optional[re.Pattern[str]]:
    """One pattern matching wherever any of ``patterns`` does (a fast pre-check)."""
    if not patterns:
        return None
    try:
        return re.compile("|".join(_scoped(p.pattern) for p in patterns))
    except re.error:
        return None


def _hasher(name: str, key: str) -> Optional[Callable[[str], str]]:
    name = (name or "").strip().lower()
    if not name:
        return None
    if name == "md5":
        return lambda text: hashlib.md5(text.encode()).hexdigest()
    if name == "sha1":
        return lambda text: hashlib.sha1(text.encode()).hexdigest()
    if name == "sha3":
        return lambda text: hashlib.sha3_256(text.encode()).hexdigest()
    if name in ("hmac-sha256", "hmac-sha512"):
        digest = hashlib.sha256 if name == "hmac-sha256" else hashlib.sha512
        secret = key.encode()
        return lambda text: hmac.new(secret, text.encode(), digest).hexdigest()
    logger.warning("Unknown redaction hash_function %r; masking with %s instead.", name, MASK)
    return None


@dataclass
class RedactionPolicy:
    """A parsed policy in the Collector's schema (defaults as the Collector's: fail closed)."""

    allow_all_keys: bool = False
    allowed_keys: list[str] = field(default_factory=list)
    ignored_keys: list[str] = field(default_factory=list)
    ignored_key_patterns: list[str] = field(default_factory=list)
    blocked_key_patterns: list[str] = field(default_factory=list)
    blocked_values: list[str] = field(default_factory=list)
    allowed_values: list[str] = field(default_factory=list)
    redact_all_types: bool = False
    hash_function: str = ""
    hmac_key: str = ""
    summary: str = ""

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> RedactionPolicy:
        """From the processor's mapping, a Collector config holding one, or ``{"redaction": {...}}``."""
        data = _find_policy(data)
        unknown = set(data) - _CONFIG_KEYS - _COLLECTOR_ONLY_KEYS
        if unknown:
            logger.warning("Ignoring unknown redaction settings: %s", ", ".join(sorted(unknown)))
        if set(data) & _COLLECTOR_ONLY_KEYS:
            logger.info("url_sanitizer/db_sanitizer apply in the OTel Collector only; the SDK ignores them.")

        def strings(key: str) -> list[str]:
            value = data.get(key) or []
            if isinstance(value, str):
                value = [value]
            return [str(v) for v in value]

        return cls(
            allow_all_keys=bool(data.get("allow_all_keys", False)),
            allowed_keys=strings("allowed_keys"),
            ignored_keys=strings("ignored_keys"),
            ignored_key_patterns=strings("ignored_key_patterns"),
            blocked_key_patterns=strings("blocked_key_patterns"),
            blocked_values=strings("blocked_values"),
            allowed_values=strings("allowed_values"),
            redact_all_types=bool(data.get("redact_all_types", False)),
            hash_function=str(data.get("hash_function") or ""),
            hmac_key=str(data.get("hmac_key") or ""),
            summary=str(data.get("summary") or ""),
        )

    @classmethod
    def from_file(cls, path: str) -> RedactionPolicy:
        """Read a YAML (needs PyYAML: ``pip install mlflow-otel[yaml]``) or JSON policy file."""
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        if path.endswith(".json"):
            return cls.from_mapping(json.loads(text))
        try:
            import yaml
        except ImportError as exc:
            raise RedactionConfigError(
                f"reading the YAML redaction policy {path} needs PyYAML (pip install 'mlflow-otel[yaml]')"
            ) from exc
        return cls.from_mapping(yaml.safe_load(text) or {})


def _find_policy(data: Mapping[str, Any]) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise RedactionConfigError("a redaction policy must be a mapping")
    if set(data) & _CONFIG_KEYS:
        return data
    if "redaction" in data and isinstance(data["redaction"], Mapping):
        return data["redaction"]
    processors = data.get("processors")
    if isinstance(processors, Mapping):
        for name, value in processors.items():
            if (name == "redaction" or str(name).startswith("redaction/")) and isinstance(value, Mapping):
                return value
    return data


class Redactor:
    """Applies one policy to a span's attributes and its events' attributes."""

    def __init__(self, policy: RedactionPolicy, name: str = "redaction") -> None:
        self.policy = policy
        self.name = name
        self._allowed = set(policy.allowed_keys) | SUMMARY_KEYS
        self._ignored = set(policy.ignored_keys)
        self._ignored_patterns = _compile(policy.ignored_key_patterns, "ignored_key_patterns")
        self._blocked_keys = _compile(policy.blocked_key_patterns, "blocked_key_patterns")
        self._blocked_values = _compile(policy.blocked_values, "blocked_values")
        self._allowed_values = _compile(policy.allowed_values, "allowed_values")
        self._hash = _hasher(policy.hash_function, policy.hmac_key)
        self._any_value = _any_of(self._blocked_values)
        self.summary = policy.summary.strip().lower()
        #: Ignored keys not worth a summary (the default policy's own generated keys).
        self._ignored_silently: frozenset[str] = frozenset()
        self._ignore_cache: dict[str, bool] = {}
        self._block_cache: dict[str, bool] = {}

    # --- predicates, as the Collector's ------------------------------------------------------------
    # Keys repeat from span to span, so decisions on keys are remembered (bounded: a flood of
    # distinct keys just stops being cached).
    _CACHE_LIMIT = 10_000

    def _ignore_key(self, key: str) -> bool:
        cached = self._ignore_cache.get(key)
        if cached is None:
            cached = key in self._ignored or any(p.search(key) for p in self._ignored_patterns)
            if len(self._ignore_cache) < self._CACHE_LIMIT:
                self._ignore_cache[key] = cached
        return cached

    def _block_key(self, key: str) -> bool:
        cached = self._block_cache.get(key)
        if cached is None:
            cached = any(p.search(key) for p in self._blocked_keys)
            if len(self._block_cache) < self._CACHE_LIMIT:
                self._block_cache[key] = cached
        return cached

    def _allow_value(self, text: str) -> bool:
        return any(p.search(text) for p in self._allowed_values)

    def _mask(self, text: str) -> str:
        return self._hash(text) if self._hash is not None else MASK

    def mask_values(self, text: str) -> str:
        """Mask every match of the blocked values inside ``text``."""
        if not self._blocked_values:
            return self.extra_mask(text)
        if self._any_value is not None and not self._any_value.search(text):
            return self.extra_mask(text)
        for pattern in self._blocked_values:
            text = pattern.sub(lambda m: self._mask(m.group(0)), text)
        return self.extra_mask(text)

    def extra_mask(self, text: str) -> str:
        """Hook for checks a regular expression cannot express (the default policy's Luhn check)."""
        return text

    def _may_match(self, text: str) -> bool:
        """Cheap pre-check before parsing a JSON value: could anything in it be redacted?"""
        if "\\" in text:
            return True  # escapes: the raw text does not show the values as they are; parse
        if self._blocked_values and (self._any_value is None or self._any_value.search(text)):
            return True
        if self.extra_mask(text) != text:
            return True
        if self._blocked_keys or self._ignored_patterns:
            return any(self._block_key(k) for k in set(_JSON_KEY.findall(text)))
        return False

    # --- JSON ------------------------------------------------------------------------------------
    def redact_json(self, text: str, path: str, masked: list[str]) -> str:
        """Redact inside a JSON document; returns valid JSON (or the plain-string result)."""
        if not self._may_match(text):
            return text
        try:
            doc = json.loads(text)
        except ValueError:
            return self._redact_string(text, path, masked)
        changed: list[str] = []
        result = self._walk(doc, path, changed)
        if not changed:
            return text
        masked.extend(changed)
        return json.dumps(result, ensure_ascii=False, separators=(",", ":"))

    def _walk(self, node: Any, path: str, changed: list[str]) -> Any:
        if isinstance(node, dict):
            out = {}
            for key, value in node.items():
                sub = f"{path}.{key}"
                if self._ignore_key(key):
                    out[key] = value
                elif self._block_key(key) and value is not None:
                    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
                    out[key] = self._mask(text)
                    changed.append(sub)
                else:
                    out[key] = self._walk(value, sub, changed)
            return out
        if isinstance(node, list):
            return [self._walk(item, f"{path}.[{i}]", changed) for i, item in enumerate(node)]
        if isinstance(node, str):
            if self._allow_value(node):
                return node
            new = self.mask_values(node)
            if new != node:
                changed.append(path)
            return new
        if self.policy.redact_all_types and isinstance(node, (int, float)) and not isinstance(node, bool):
            text = json.dumps(node)
            new = self.mask_values(text)
            if new != text:
                changed.append(path)
                return new
        return node

    def _redact_string(self, text: str, path: str, masked: list[str]) -> str:
        if self._allow_value(text):
            return text
        new = self.mask_values(text)
        if new != text:
            masked.append(path)
        return new

    # --- attributes ------------------------------------------------------------------------------
    def redact_attributes(
        self, attrs: Mapping[str, Any]
    ) -> tuple[dict[str, Any], list[str], dict[str, list[str]]]:
        """Returns (updates, keys to remove, summary lists); empty when nothing applies."""
        updates: dict[str, Any] = {}
        removed: list[str] = []
        lists: dict[str, list[str]] = {"masked": [], "allowed": [], "ignored": []}
        all_keys = self.policy.allow_all_keys
        for key, value in attrs.items():
            if key in SUMMARY_KEYS:
                continue
            if self._ignore_key(key):
                lists["ignored"].append(key)
                continue
            if not all_keys and key not in self._allowed:
                removed.append(key)
                continue
            new = self._redact_value(key, value, lists)
            if new is not value:
                updates[key] = new
        return updates, removed, lists

    def _redact_value(self, key: str, value: Any, lists: dict[str, list[str]]) -> Any:
        if isinstance(value, (list, tuple)):
            items = [self._redact_value(key, v, lists) if isinstance(v, str) else v for v in value]
            return items if any(a is not b for a, b in zip(items, value)) else value
        if isinstance(value, str):
            text = value
        elif self.policy.redact_all_types and not isinstance(value, bool):
            text = str(value)
        else:
            return value
        if self._allow_value(text):
            lists["allowed"].append(key)
            return value
        if self._block_key(key):
            lists["masked"].append(key)
            return self._mask(text)
        if key in JSON_ATTRIBUTES:
            new = self.redact_json(text, key, lists["masked"])
        else:
            new = self._redact_string(text, key, lists["masked"])
        return value if new == text else new

    def __call__(self, span: SpanView) -> None:
        updates, removed, lists = self.redact_attributes(span.raw_attributes)
        events = span.events
        new_events = None
        if events:
            new_events = list(events)
            for i, event in enumerate(events):
                ev_updates, ev_removed, ev_lists = self.redact_attributes(event.attributes or {})
                if ev_updates or ev_removed:
                    from opentelemetry.sdk.trace import Event

                    attrs = {k: v for k, v in (event.attributes or {}).items() if k not in ev_removed}
                    attrs.update(ev_updates)
                    new_events[i] = Event(event.name, attrs, event.timestamp)
                    for name, items in ev_lists.items():
                        lists[name].extend(f"{event.name}.{k}" if "." not in k else k for k in items)
            if all(a is b for a, b in zip(new_events, events)):
                new_events = None
        lists["ignored"] = [k for k in lists["ignored"] if k not in self._ignored_silently]
        if not (updates or removed or new_events or lists["allowed"] or lists["ignored"]):
            return
        if new_events is not None:
            span.set_events(new_events)
        if not (updates or removed) and self.summary not in ("debug", "info"):
            return
        attrs = span.writable_attributes()
        for key in removed:
            attrs.pop(key, None)
        attrs.update(updates)
        self._summarise(attrs, removed, lists)

    def _summarise(self, attrs: dict[str, Any], removed: list[str], lists: dict[str, list[str]]) -> None:
        if self.summary not in ("debug", "info"):
            return
        for kind, keys in (("redacted", removed), ("masked", lists["masked"]), ("allowed", lists["allowed"])):
            if not keys:
                continue
            if self.summary == "debug":
                existing = attrs.get(f"redaction.{kind}.keys")
                merged = sorted(set(keys) | (set(str(existing).split(",")) if existing else set()))
                attrs[f"redaction.{kind}.keys"] = ",".join(merged)
            attrs[f"redaction.{kind}.count"] = int(attrs.get(f"redaction.{kind}.count", 0)) + len(keys)
        if lists["ignored"]:
            attrs["redaction.ignored.count"] = int(attrs.get("redaction.ignored.count", 0)) + len(
                lists["ignored"]
            )


# --- the default policy --------------------------------------------------------------------------------

#: Key names whose values are secrets wherever they appear (attributes or nested JSON keys).
#: Anchored at word boundaries so token *counts* (``input_tokens``, ``tokenUsage``) stay visible.
DEFAULT_BLOCKED_KEY_PATTERNS = [
    r"(?i)(^|[._\-\s])(api[_-]?key|apikey|x-api-key|secret|client[_-]?secret|secret[_-]?key|password|passwd|pwd"
    r"|authorization|proxy-authorization|auth[_-]?token|access[_-]?token|refresh[_-]?token|id[_-]?token"
    r"|bearer[_-]?token|session[_-]?token|token|private[_-]?key|access[_-]?key[_-]?id"
    r"|aws[_-]?secret[_-]?access[_-]?key|cookie|set-cookie)$",
]

#: Secret shapes masked wherever they occur inside values.
DEFAULT_BLOCKED_VALUES = [
    r"sk-ant-[A-Za-z0-9_\-]{20,}",  # Anthropic API keys
    r"sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}",  # OpenAI API keys
    r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b",  # AWS access key ids
    r"\bgh[pousr]_[A-Za-z0-9]{36,255}\b",  # GitHub tokens
    r"\bgithub_pat_[A-Za-z0-9_]{22,255}\b",  # GitHub fine-grained tokens
    r"\bxox[abposr]-[A-Za-z0-9\-]{10,}",  # Slack tokens
    r"https://hooks\.slack\.com/services/[A-Za-z0-9/_\-]+",  # Slack webhooks
    r"\bAIza[0-9A-Za-z_\-]{35}\b",  # Google API keys
    r"\b(?:sk|rk)_live_[0-9A-Za-z]{20,}\b",  # Stripe secret keys
    r"(?i)\bbearer\s+[A-Za-z0-9\-._~+/]{8,}=*",  # bearer tokens
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----",  # PEM keys
]

#: Card-number candidates, masked only if Luhn-valid: 13-19 contiguous digits, or 4-digit groups
#: (Amex: 4-6-5) with one consistent space or dash; starting with a digit card schemes use (2-6);
#: not touching another digit or dash, so runs of digits inside UUIDs and ids do not qualify.
_CARD_CANDIDATE = re.compile(
    r"(?<![\d\-])(?:[2-6]\d{12,18}"
    r"|[2-6]\d{3}([ \-])\d{4}\1\d{4}\1\d{4}(?:\1\d{1,3})?"
    r"|3\d{3}([ \-])\d{6}\2\d{5})(?![\d\-])"
)


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


#: The default key pattern, as it appears in raw JSON text: a quoted key whose last word is a secret
#: name, followed by a colon. Equivalent to DEFAULT_BLOCKED_KEY_PATTERNS for keys without escapes
#: (escaped text always takes the full parse).
_RAW_BLOCKED_KEY = re.compile(
    r'(?i)"(?:[^"\\]*[._\-\s])?(?:api[_-]?key|apikey|x-api-key|secret|client[_-]?secret|secret[_-]?key|password'
    r"|passwd|pwd|authorization|proxy-authorization|auth[_-]?token|access[_-]?token|refresh[_-]?token|id[_-]?token"
    r"|bearer[_-]?token|session[_-]?token|token|private[_-]?key|access[_-]?key[_-]?id"
    r'|aws[_-]?secret[_-]?access[_-]?key|cookie|set-cookie)"\s*:'
)

#: Every default secret shape contains one of these literals, or, for card numbers, two runs of four
#: digits with at most one separator between them (every form ``_CARD_CANDIDATE`` accepts: 13-19
#: digits in a row, 4-4-4-4 groups, Amex 4-6-5): a value with none of them cannot match, which
#: substring checks establish far faster than the combined regular expression. (A lone run of four
#: digits, such as a year, is not enough to be a card.)
_SECRET_LITERALS = (
    "sk-", "AKIA", "ASIA", "ABIA", "ACCA", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_",
    "xox", "hooks.slack.com", "AIza", "_live_", "earer", "EARER", "PRIVATE KEY",
)  # fmt: skip
_CARD_HINT = re.compile(r"\d{4}[ \-]?\d{4}")
_ASCII_DIGITS = "0123456789"


def _may_hold_secret(text: str) -> bool:
    for literal in _SECRET_LITERALS:  # each a C-speed substring search
        if literal in text:
            return True
    # The card screen is a pattern, and patterns cost per character; an ASCII text without a digit
    # cannot hold a card number, which ten substring searches establish far faster.
    if len(text) > 64 and text.isascii() and not any(d in text for d in _ASCII_DIGITS):
        return False
    return _CARD_HINT.search(text) is not None


#: Every key ``_RAW_BLOCKED_KEY`` matches contains one of these (case-insensitively): JSON without
#: any of them needs no scan for blocked keys. ``lower()`` plus substring checks cost a fraction of
#: the scan (and of a case-insensitive pattern of the stems, which is slower than the scan itself).
_KEY_STEMS = ("key", "secret", "passw", "pwd", "authorization", "token", "cookie")


def _may_hold_blocked_key(text: str) -> bool:
    """Whether a JSON text has a key the default policy blocks: the raw scan, skipped when no stem
    is there. Non-ASCII text always gets the scan: Unicode case folding (``\u017f`` matches ``s``
    under ``(?i)``) is not what ``lower()`` does."""
    if text.isascii():
        low = text.lower()
        if not any(stem in low for stem in _KEY_STEMS):
            return False
    return _RAW_BLOCKED_KEY.search(text) is not None


#: Attributes the SDK writes itself from names and ids, never from user data.
_GENERATED_KEYS = [conv.SPAN_TYPE, conv.FUNCTION_NAME, conv.TRACE_REQUEST_ID, "mlflow_otel.trimmed"]


class DefaultRedactor(Redactor):
    """The built-in policy (on unless switched off): common secret shapes and card numbers."""

    def __init__(self) -> None:
        super().__init__(
            RedactionPolicy(
                allow_all_keys=True,
                ignored_keys=list(_GENERATED_KEYS),
                blocked_key_patterns=list(DEFAULT_BLOCKED_KEY_PATTERNS),
                blocked_values=list(DEFAULT_BLOCKED_VALUES),
                summary="info",
            ),
            name="default-redaction",
        )
        # One pass over a value decides whether anything (a secret shape or a card candidate) is
        # there at all; only then do the per-pattern substitutions and the Luhn check run.
        self._any_value = _any_of([*self._blocked_values, _CARD_CANDIDATE])
        self._ignored_silently = frozenset(_GENERATED_KEYS)

    def mask_values(self, text: str) -> str:
        if self._any_value is not None and not self._any_value.search(text):
            return text
        for pattern in self._blocked_values:
            text = pattern.sub(lambda m: self._mask(m.group(0)), text)
        return self.extra_mask(text)

    def _may_match(self, text: str) -> bool:
        if "\\" in text or (self._any_value is not None and self._any_value.search(text)):
            return True
        return _may_hold_blocked_key(text)

    def _clean(self, attrs: Mapping[str, Any]) -> bool:
        """True when no value of ``attrs`` can hold anything this policy masks (the common case)."""
        any_value = self._any_value
        ignored = self._ignored
        for key, value in attrs.items():
            if key in ignored:
                continue
            if self._block_key(key):
                return False
            if value.__class__ is str:
                if _may_hold_secret(value) and any_value is not None and any_value.search(value):
                    return False
                if key in JSON_ATTRIBUTES and ("\\" in value or _may_hold_blocked_key(value)):
                    return False
            elif isinstance(value, (list, tuple)) and any(
                isinstance(v, str) and any_value is not None and any_value.search(v) for v in value
            ):
                return False
        return True

    def __call__(self, span: SpanView) -> None:
        if self._clean(span.raw_attributes) and all(self._clean(e.attributes or {}) for e in span.events):
            return
        super().__call__(span)

    def extra_mask(self, text: str) -> str:

        def replace(match: re.Match[str]) -> str:
            digits = re.sub(r"[ \-]", "", match.group(0))
            card = 13 <= len(digits) <= 19 and len(set(digits)) > 1 and luhn_valid(digits)
            return self._mask(match.group(0)) if card else match.group(0)

        return _CARD_CANDIDATE.sub(replace, text)


def load_policy(source: Any) -> Optional[RedactionPolicy]:
    """A policy from a dict, a file path, or a RedactionPolicy; None when ``source`` is empty."""
    if source is None or source is False:
        return None
    if isinstance(source, RedactionPolicy):
        return source
    if isinstance(source, Mapping):
        return RedactionPolicy.from_mapping(source)
    if isinstance(source, (str, os.PathLike)):
        return RedactionPolicy.from_file(os.fspath(source))
    raise RedactionConfigError(f"cannot read a redaction policy from {source!r}")
