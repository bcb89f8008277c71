"""The redaction policy: the OTel Collector redaction processor's configuration schema, verbatim.

Keys (``processor/redactionprocessor/config.go`` in opentelemetry-collector-contrib):
``allow_all_keys``, ``allowed_keys``, ``ignored_keys``, ``ignored_key_patterns``,
``blocked_key_patterns``, ``blocked_values``, ``allowed_values``, ``redact_all_types``,
``hash_function`` (md5, sha1, sha3 = SHA3-256, hmac-sha256, hmac-sha512 with ``hmac_key``) and
``summary`` (debug, info, silent). A file may hold the bare policy, a ``redaction:`` key, or a whole
Collector configuration (the first ``redaction`` processor is used), so one file serves both.

A policy that cannot be read whole raises :class:`RedactionConfigError`: a missing file, invalid YAML
or JSON, an unknown key (the Collector refuses those too: a misspelt ``blocked_key_patterns`` would
otherwise protect nothing), an invalid regular expression. The pipeline then fails closed
(``pipeline/build.py``: content capture off for every span), never open.
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

from mlflow_otel._log import logger

#: What a masked value becomes (the Collector's mask), unless a hash function is set.
MASK = "****"

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


class RedactionConfigError(ValueError):
    """The policy could not be read."""


def _compile(pattern: Any) -> re.Pattern[str]:
    # Go's RE2 syntax, as the Collector uses, is a subset of Python's for these purposes; \z (end of
    # text) is the one spelling that differs.
    return re.compile(str(pattern).replace(r"\z", r"\Z"))


def compile_patterns(patterns: Iterable[Any], what: str) -> list[re.Pattern[str]]:
    """Compile a policy's patterns (already checked by ``RedactionPolicy.from_mapping``)."""
    compiled = []
    for pattern in patterns or ():
        try:
            compiled.append(_compile(pattern))
        except re.error as exc:  # a policy built by hand, not through from_mapping
            logger.warning("Ignoring invalid regular expression %r in %s: %s", pattern, what, exc)
    return compiled


_PATTERN_KEYS = ("ignored_key_patterns", "blocked_key_patterns", "blocked_values", "allowed_values")


_GLOBAL_FLAGS = re.compile(r"^\(\?([aiLmsux]+)\)")


def _scoped(pattern: str) -> str:
    """``(?i)abc`` -> ``(?i:abc)``: global flags are only allowed at the start of a whole pattern."""
    match = _GLOBAL_FLAGS.match(pattern)
    return f"(?{match.group(1)}:{pattern[match.end() :]})" if match else f"(?:{pattern})"


def any_of(patterns: list[re.Pattern[str]]) -> Optional[re.Pattern[str]]:
    """One pattern matching wherever any of ``patterns`` does (a fast pre-check)."""
    if not patterns:
        return None
    try:
        return re.compile("|".join(_scoped(p.pattern) for p in patterns))
    except re.error:
        return None


def hasher(name: str, key: str) -> Optional[Callable[[str], str]]:
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
            raise RedactionConfigError(f"unknown redaction settings: {', '.join(sorted(map(str, unknown)))}")
        for key in _PATTERN_KEYS:
            value = data.get(key) or []
            for pattern in [value] if isinstance(value, str) else value:
                try:
                    _compile(pattern)
                except re.error as exc:
                    raise RedactionConfigError(
                        f"invalid regular expression {pattern!r} in {key}: {exc}"
                    ) from exc
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
        """Read a YAML or JSON policy file (PyYAML is a dependency: the shared policy is YAML)."""
        return cls.from_mapping(read_config_file(path, "redaction policy"))


def read_config_file(path: str, what: str, error: type[ValueError] = RedactionConfigError) -> Any:
    """A YAML or JSON file's content; every way it can fail raises ``error`` naming the file (also
    used for tail-sampling policies, which share the Collector's format)."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise error(f"cannot read the {what} {path}: {exc.strerror or exc}") from exc
    if path.endswith(".json"):
        try:
            return json.loads(text)
        except ValueError as exc:
            raise error(f"invalid JSON in the {what} {path}: {exc}") from exc
    try:
        import yaml
    except ImportError as exc:
        raise error(f"reading the YAML {what} {path} needs PyYAML ({exc})") from exc
    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise error(f"invalid YAML in the {what} {path}: {exc}") from exc


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
