"""The built-in default policy: common secret shapes and Luhn-checked card numbers.

On unless ``MLFLOW_OTEL_REDACTION_DEFAULTS=false`` (or ``configure(redaction_defaults=False)``).
A cheap screen (substring checks, no per-character patterns) decides whether a value can hold a
secret at all; only then do the patterns run. The rules are listed in this directory's README.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from mlflow_otel import semconv as conv
from mlflow_otel.otlp.protobuf import plain_span_class
from mlflow_otel.processors.base import SpanView
from mlflow_otel.processors.redaction.config import RedactionPolicy, any_of
from mlflow_otel.processors.redaction.processor import JSON_ATTRIBUTES, Redactor

DEFAULT_BLOCKED_KEY_PATTERNS = [
    r"(?i)(^|[._\-\s])(api[_\-\s]?key|apikey|x-api-key|secret|client[_-]?secret|secret[_-]?key|password"
    r"|passwd|pwd|passphrase|credentials?|authorization|proxy-authorization|auth[_-]?token|access[_-]?token"
    r"|refresh[_-]?token|id[_-]?token|bearer[_-]?token|session[_-]?token|token|private[_-]?key"
    r"|access[_-]?key[_-]?id|aws[_-]?secret[_-]?access[_-]?key|cookie|set-cookie)$",
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
    r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",  # JWTs (header.payload.signature)
]

#: Credentials in a URL (``scheme://user:password@host``): OTel's semantic conventions require
#: ``url.full`` to carry ``REDACTED:REDACTED`` instead (url.md, "url.full").
_URL_USERINFO = re.compile(r"\b([A-Za-z][A-Za-z0-9+.\-]*://)[^/\s:@]+:[^/\s@]+@")

#: Card-number candidates, masked only if Luhn-valid: 13-19 contiguous digits, or 4-digit groups
#: (Amex: 4-6-5) with one consistent space or dash; starting with a digit card schemes use (2-6);
#: not touching another digit or dash, so runs of digits inside UUIDs and ids do not qualify.
_CARD_CANDIDATE = re.compile(
    r"(?<![\d\-.])(?:[2-6]\d{12,18}"
    r"|[2-6]\d{3}([ \-.])\d{4}\1\d{4}\1\d{4}(?:\1\d{1,3})?"
    r"|3\d{3}([ \-.])\d{6}\2\d{5})(?![\d\-.]?\d)"
)


#: Ints in this range have 13 to 19 digits: the lengths of card numbers.
_CARD_DIGITS = (10**12, 10**19)


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


#: A screen for the default key pattern in raw JSON text: a quoted key *ending* with a secret word
#: (any spelling: ``userPassword``, ``db_password``, ``openaiApiKey``), followed by a colon, or
#: opening a ``["name", value]`` pair (header lists). Wider
#: than the policy (``monkey`` passes it), so a match means "parse and decide with the policy";
#: no match means no key the policy blocks. Escaped or non-ASCII text always takes the full parse.
_STEM_KEY = r'"[^"\\]*(?:key|secret|passw(?:or)?d|pwd|passphrase|credentials?|authorization|token|cookie)"'
_RAW_BLOCKED_KEY = re.compile(rf"(?i){_STEM_KEY}\s*:|\[\s*{_STEM_KEY}\s*,")

#: Every default secret shape contains one of these literals, or, for card numbers, two runs of four
#: digits with at most one separator between them (every form ``_CARD_CANDIDATE`` accepts: 13-19
#: digits in a row, 4-4-4-4 groups, Amex 4-6-5): a value with none of them cannot match, which
#: substring checks establish far faster than the combined regular expression. (A lone run of four
#: digits, such as a year, is not enough to be a card.)
_SECRET_LITERALS = (
    "sk-", "AKIA", "ASIA", "ABIA", "ACCA", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_",
    "xox", "hooks.slack.com", "AIza", "_live_", "earer", "EARER", "PRIVATE KEY", "eyJ",
)  # fmt: skip
_CARD_HINT = re.compile(r"\d{4}[ \-.]?\d{4}")
_ASCII_DIGITS = "0123456789"


#: Secret-named query parameters (``?api_key=...&token=...``): the value is masked, the name kept.
_QUERY_SECRET = re.compile(
    r"(?i)([?&](?:[a-z0-9_.\-]*[_.\-])?(?:api[_-]?key|apikey|access[_-]?token|refresh[_-]?token|"
    r"id[_-]?token|token|secret|client[_-]?secret|password|passwd|pwd|sig|signature)=)[^&#\s\"']+"
)


def _mask_url(text: str) -> str:
    if "@" in text and "://" in text:
        text = _URL_USERINFO.sub(r"\1REDACTED:REDACTED@", text)
    if "=" in text and ("?" in text or "&" in text):
        text = _QUERY_SECRET.sub(r"\1****", text)
    return text


def _may_hold_secret(text: str) -> bool:
    for literal in _SECRET_LITERALS:  # each a C-speed substring search
        if literal in text:
            return True
    if "@" in text and "://" in text:  # credentials in a URL
        return True
    if "=" in text and ("?" in text or "&" in text) and _QUERY_SECRET.search(text):
        return True
    # The card screen is a pattern, and patterns cost per character; an ASCII text without a digit
    # cannot hold a card number, which ten substring searches establish far faster.
    if len(text) > 64 and text.isascii() and not any(d in text for d in _ASCII_DIGITS):
        return False
    return _CARD_HINT.search(text) is not None


#: Every key ``_RAW_BLOCKED_KEY`` matches contains one of these (case-insensitively): JSON without
#: any of them needs no scan for blocked keys. ``lower()`` plus substring checks cost a fraction of
#: the scan (and of a case-insensitive pattern of the stems, which is slower than the scan itself).
_KEY_STEMS = ("key", "secret", "pass", "pwd", "credential", "authorization", "token", "cookie")


def _may_hold_blocked_key(text: str) -> bool:
    """Whether a JSON text has a key the default policy blocks: the raw scan, skipped when no stem
    is there. Non-ASCII text always gets the scan: Unicode case folding (``\u017f`` matches ``s``
    under ``(?i)``) is not what ``lower()`` does."""
    if not text.isascii():
        return True  # zero-width and full-width spellings: only the parsed, normalised key tells
    low = text.lower()
    if not any(stem in low for stem in _KEY_STEMS):
        return False
    return _RAW_BLOCKED_KEY.search(text) is not None


#: The screen's verdicts on a key (``DefaultRedactor._screen_key``), compared by identity.
_SKIP, _LOOK, _FAIL = "skip", "look", "fail"
_NONE: Mapping[str, Any] = {}

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
        self._any_value = any_of([*self._blocked_values, _CARD_CANDIDATE])
        self._ignored_silently = frozenset(_GENERATED_KEYS)
        self._clean_resources: dict[int, tuple[Any, bool]] = {}
        self._dirty_names: dict[str, bool] = {}
        self._key_verdicts: dict[str, bool] = {}
        self._screen_keys: dict[str, Any] = {}

    def mask_values(self, text: str) -> str:
        if self._any_value is not None and not self._any_value.search(text):
            return _mask_url(text)
        for pattern in self._blocked_values:
            text = pattern.sub(lambda m: self._mask(m.group(0)), text)
        return self.extra_mask(text)

    def _may_match(self, text: str) -> bool:
        if "\\" in text or (self._any_value is not None and self._any_value.search(text)):
            return True
        if "@" in text and "://" in text and _URL_USERINFO.search(text):
            return True
        if "=" in text and _QUERY_SECRET.search(text):
            return True
        return _may_hold_blocked_key(text)

    def _clean(self, attrs: Mapping[str, Any]) -> bool:
        """True when no value of ``attrs`` can hold anything this policy masks (the common case)."""
        ignored = self._ignored
        for key, value in attrs.items():
            if key in ignored:
                continue
            if self._suspicious_key(key):
                return False
            kind = value.__class__
            if kind is list or kind is tuple:
                if any(self._dirty_value(key, v) for v in value):
                    return False
            elif self._dirty_value(key, value):
                return False
        return True

    def _suspicious_key(self, key: str) -> bool:
        """A key this policy masks or whose text looks secret; keys repeat from span to span, so
        each is decided once (a bounded cache)."""
        verdicts = self._key_verdicts
        suspicious = verdicts.get(key)
        if suspicious is None:
            suspicious = self._block_key(key) or self._dirty_text(key)
            if len(verdicts) < self._CACHE_LIMIT:
                verdicts[key] = suspicious
        return suspicious

    def screen(self, spans: Sequence[Any]) -> bool:
        """True when no span of one trace can hold anything this policy masks (the process stage
        then skips this processor for them: ``processors/base.py``). The per-span check's string
        tests run once, on every attribute string of the trace joined: each is a substring test or
        an unanchored pattern, so whatever one value would show, the joined text shows too (the
        join can only add false alarms, which run the per-span check as before). Events, status
        messages and a dirty resource, name or key fall back to the per-span check."""
        keys = self._screen_keys
        texts: list[str] = []
        append = texts.append
        low, high = _CARD_DIGITS
        last_resource: Any = _NONE
        for span in spans:
            if plain_span_class(span.__class__):  # its fields, without a property call each
                events, status, resource, name, attrs = (
                    span._events,
                    span._status,
                    span._resource,
                    span._name,
                    span._attributes or _NONE,
                )
            else:
                events, status, resource, name = span.events, span.status, span.resource, span.name
                attrs = span.attributes
            if events or status.description:
                return False
            if resource is not last_resource:  # one resource for a whole trace, as a rule
                if not self._clean_resource(resource):
                    return False
                last_resource = resource
            if self._dirty_name(name):
                return False
            for key, value in attrs.items():
                verdict = keys.get(key)
                if verdict is None:
                    verdict = self._screen_key(key)
                if verdict is not _LOOK:
                    if verdict is _SKIP:
                        continue
                    return False  # a key this policy masks, or one whose text looks secret
                kind = value.__class__
                if kind is str:
                    append(value)
                elif kind is int:
                    if low <= abs(value) < high:
                        return False
                elif kind is list or kind is tuple:
                    for member in value:
                        if member.__class__ is str:
                            append(member)
                        elif member.__class__ is int and low <= abs(member) < high:
                            return False
        if not texts:
            return True
        joined = "\x00".join(dict.fromkeys(texts))  # each distinct text once (children repeat inputs)
        return not ("\\" in joined or _may_hold_secret(joined) or _may_hold_blocked_key(joined))

    def _screen_key(self, key: str) -> Any:
        """The screen's verdict on a key: skipped (ignored), its value looked at, or suspicious;
        keys repeat from span to span, so each is decided once (a bounded cache)."""
        verdict = _SKIP if key in self._ignored else _FAIL if self._suspicious_key(key) else _LOOK
        if len(self._screen_keys) < self._CACHE_LIMIT:
            self._screen_keys[key] = verdict
        return verdict

    def _dirty_value(self, key: str, value: Any) -> bool:
        """One attribute value (or one member of a list value) may hold what this policy masks."""
        kind = value.__class__
        if kind is str:
            if self._dirty_text(value):
                return True
            head = value[:1]
            return (head == "{" or head == "[" or key in JSON_ATTRIBUTES) and (
                "\\" in value or _may_hold_blocked_key(value)
            )
        if kind is int:
            return _CARD_DIGITS[0] <= abs(value) < _CARD_DIGITS[1]
        return False

    def _dirty_name(self, name: str) -> bool:
        """``_dirty_text`` for names and keys, which repeat from span to span: remembered."""
        known = self._dirty_names.get(name)
        if known is None:
            known = self._dirty_text(name)
            if len(self._dirty_names) < self._CACHE_LIMIT:
                self._dirty_names[name] = known
        return known

    def _dirty_text(self, text: str) -> bool:
        if not _may_hold_secret(text):
            return False
        any_value = self._any_value
        return (
            (any_value is not None and any_value.search(text) is not None)
            or _URL_USERINFO.search(text) is not None
            or _QUERY_SECRET.search(text) is not None
        )

    def _clean_resource(self, resource: Any) -> bool:
        if resource is None:
            return True
        known = self._clean_resources.get(id(resource))
        if known is None or known[0] is not resource:
            known = (resource, self._clean(resource.attributes))
            if len(self._clean_resources) < 16:
                self._clean_resources[id(resource)] = known
        return known[1]

    def __call__(self, span: SpanView) -> None:
        status = span.raw_status_description
        if (
            self._clean_resource(span.resource)
            and not self._dirty_name(span.name)
            and not (status and self._dirty_text(status))
            and self._clean(span.raw_attributes)
            and all(not self._dirty_name(e.name) and self._clean(e.attributes or {}) for e in span.events)
        ):
            return
        super().__call__(span)

    def mask_number(self, value: Any) -> Any:
        """A card number given as an int (13-19 digits, Luhn-valid) is masked like its text."""
        if value.__class__ is int and _CARD_DIGITS[0] <= abs(value) < _CARD_DIGITS[1]:
            digits = str(abs(value))
            if digits[0] in "23456" and len(set(digits)) > 1 and luhn_valid(digits):
                return self._mask(digits)
        return value

    def extra_mask(self, text: str) -> str:

        def replace(match: re.Match[str]) -> str:
            digits = re.sub(r"[ \-.]", "", match.group(0))
            card = 13 <= len(digits) <= 19 and len(set(digits)) > 1 and luhn_valid(digits)
            return self._mask(match.group(0)) if card else match.group(0)

        return _mask_url(_CARD_CANDIDATE.sub(replace, text))
