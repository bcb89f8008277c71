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

import json
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event

from mlflow_otel import semconv as conv
from mlflow_otel.processors.base import SpanView
from mlflow_otel.processors.redaction.config import MASK, RedactionPolicy, any_of, compile_patterns, hasher

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

#: Keys of a JSON object, found without parsing it (a pre-check; escaped keys force a full parse).
_JSON_KEY = re.compile(r'"((?:[^"\\]|\\.)*)"\s*:')

#: Characters that render as nothing: removed from keys before matching (``pass\u200bword``).
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"))
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
#: JSON documents nested in strings are redacted inside down to this depth.
NESTED_JSON_DEPTH = 2


def key_variants(key: str) -> tuple[str, ...]:
    """The spellings a key is matched in: as written, after Unicode normalisation (NFKC: full-width
    letters become ASCII; zero-width characters removed), and split into word parts
    (``userPassword`` -> ``user_Password``), so a policy written for ``password`` finds them all."""
    normal = unicodedata.normalize("NFKC", key).translate(_INVISIBLE)
    split = _CAMEL.sub("_", normal)
    return tuple(dict.fromkeys((key, normal, split)))


def looks_like_json(text: str) -> bool:
    """A string that may hold a JSON object or array (checked by parsing when it matters)."""
    head = text[:1]
    if head == " " or head == "\n":
        head = text.lstrip()[:1]
    return head == "{" or head == "["


class Redactor:
    """Applies one policy to a span's attributes and its events' attributes."""

    def __init__(self, policy: RedactionPolicy, name: str = "redaction") -> None:
        self.policy = policy
        self.name = name
        self._allowed = set(policy.allowed_keys) | SUMMARY_KEYS
        self._ignored = set(policy.ignored_keys)
        self._ignored_patterns = compile_patterns(policy.ignored_key_patterns, "ignored_key_patterns")
        self._blocked_keys = compile_patterns(policy.blocked_key_patterns, "blocked_key_patterns")
        self._blocked_values = compile_patterns(policy.blocked_values, "blocked_values")
        self._allowed_values = compile_patterns(policy.allowed_values, "allowed_values")
        self._hash = hasher(policy.hash_function, policy.hmac_key)
        self._any_value = any_of(self._blocked_values)
        self.summary = policy.summary.strip().lower()
        #: Ignored keys not worth a summary (the default policy's own generated keys).
        self._ignored_silently: frozenset[str] = frozenset()
        self._ignore_cache: dict[str, bool] = {}
        self._block_cache: dict[str, bool] = {}
        #: The process's resource (set from code or ``OTEL_RESOURCE_ATTRIBUTES``) is one object
        #: shared by every span: redacted once, the result reused (resource id -> both resources).
        self._resources: dict[int, tuple[Any, Any]] = {}

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
            cached = bool(self._blocked_keys) and any(
                p.search(variant) for variant in key_variants(key) for p in self._blocked_keys
            )
            if len(self._block_cache) < self._CACHE_LIMIT:
                self._block_cache[key] = cached
        return cached

    def block_key(self, key: str) -> bool:
        """Whether the policy masks the value of a key named ``key`` (any spelling of it)."""
        return self._block_key(key)

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

    def mask_number(self, value: Any) -> Any:
        """Hook for numbers that are secrets in themselves (the default policy: card numbers)."""
        return value

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
    def redact_json(self, text: str, path: str, masked: list[str], depth: int = 0) -> str:
        """Redact inside a JSON document; returns valid JSON (or the plain-string result)."""
        if not self._may_match(text):
            return text
        try:
            doc = json.loads(text)
        except ValueError:
            return self._redact_string(text, path, masked)
        changed: list[str] = []
        result = self._walk(doc, path, changed, depth)
        if not changed:
            return text
        masked.extend(changed)
        return json.dumps(result, ensure_ascii=False)  # MLflow's text, as capture writes it

    def _walk(self, node: Any, path: str, changed: list[str], depth: int = 0) -> Any:
        if isinstance(node, dict):
            out = {}
            for key, value in node.items():
                if self._ignore_key(key):
                    out[key] = value
                    continue
                new_key = self.mask_values(key)  # a key may itself be a secret
                sub = f"{path}.{new_key}"  # summaries name keys as exported, never a secret one
                if new_key != key:
                    changed.append(sub)
                if self._block_key(key) and value is not None:
                    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
                    out[new_key] = self._mask(text)
                    changed.append(sub)
                else:
                    out[new_key] = self._walk(value, sub, changed, depth)
            return out
        if isinstance(node, list):
            out_list = []
            for i, item in enumerate(node):
                if (
                    isinstance(item, list)
                    and len(item) == 2
                    and isinstance(item[0], str)
                    and item[1] is not None
                    and self._block_key(item[0])
                ):  # a header-like [name, value] pair (ASGI scopes, httpx): redacted by its name
                    value = item[1] if isinstance(item[1], str) else json.dumps(item[1], ensure_ascii=False)
                    out_list.append([item[0], self._mask(value)])
                    changed.append(f"{path}.[{i}]")
                else:
                    out_list.append(self._walk(item, f"{path}.[{i}]", changed, depth))
            return out_list
        if isinstance(node, str):
            if self._allow_value(node):
                return node
            if depth < NESTED_JSON_DEPTH and looks_like_json(node):
                nested: list[str] = []
                new = self.redact_json(node, path, nested, depth + 1)
                if nested:
                    changed.extend(nested)
                    return new
            new = self.mask_values(node)
            if new != node:
                changed.append(path)
            return new
        if isinstance(node, (int, float)) and not isinstance(node, bool):
            masked = self.mask_number(node)
            if masked is not node:
                changed.append(path)
                return masked
            if self.policy.redact_all_types:
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
            new_key = self.mask_values(key)  # an attribute key may itself be a secret
            new = self._redact_value(key, value, lists, new_key)
            if new_key != key:
                removed.append(key)
                lists["masked"].append(new_key)
                updates[new_key] = new
            elif new is not value:
                updates[key] = new
        return updates, removed, lists

    def _redact_value(self, key: str, value: Any, lists: dict[str, list[str]], label: str = "") -> Any:
        """``value`` redacted; summaries name it ``label`` (the key as exported: masked if the key
        itself was a secret)."""
        label = label or key
        if isinstance(value, (list, tuple)):
            items = [
                self._redact_value(key, v, lists, label) if isinstance(v, (str, int)) else v for v in value
            ]
            return items if any(a is not b for a, b in zip(items, value)) else value
        if isinstance(value, str):
            text = value
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            masked = self.mask_number(value)
            if masked is not value:
                lists["masked"].append(label)
                return masked
            if not self.policy.redact_all_types:
                return value
            text = str(value)
        else:
            return value
        if self._allow_value(text):
            lists["allowed"].append(label)
            return value
        if self._block_key(key):
            lists["masked"].append(label)
            return self._mask(text)
        if key in JSON_ATTRIBUTES or looks_like_json(text):  # custom JSON attributes too
            new = self.redact_json(text, label, lists["masked"])
        else:
            new = self._redact_string(text, label, lists["masked"])
        return value if new == text else new

    def redact_names(self, span: SpanView) -> list[str]:
        """The strings around the attributes: the span's name and its status message (every
        exception through ``@trace`` writes ``Type: message`` there). Returns what was masked."""
        masked = []
        name = self.mask_values(span.name)
        if name != span.name:
            span.set_name(name)
            masked.append("span.name")
        status = span.status
        if status.description:
            description = self.mask_values(status.description)
            if description != status.description:
                span.set_status(type(status)(status.status_code, description))
                masked.append("status.message")
        return masked

    def redact_resource(self, span: SpanView) -> None:
        resource = span.resource
        if resource is None:
            return
        cached = self._resources.get(id(resource))
        if cached is None or cached[0] is not resource:
            updates, removed, _ = self.redact_attributes(resource.attributes)
            redacted = resource
            if updates or removed:
                attrs = {k: v for k, v in resource.attributes.items() if k not in removed}
                attrs.update(updates)
                redacted = Resource(attrs, resource.schema_url)
            cached = (resource, redacted)
            if len(self._resources) < 16:
                self._resources[id(resource)] = cached
        if cached[1] is not resource:
            span.set_resource(cached[1])

    def __call__(self, span: SpanView) -> None:
        self.redact_resource(span)
        name_masks = self.redact_names(span)
        updates, removed, lists = self.redact_attributes(span.raw_attributes)
        lists["masked"].extend(name_masks)
        events = span.events
        new_events = None
        if events:
            new_events = list(events)
            for i, event in enumerate(events):
                ev_updates, ev_removed, ev_lists = self.redact_attributes(event.attributes or {})
                event_name = self.mask_values(event.name)
                if ev_updates or ev_removed or event_name != event.name:
                    attrs = {k: v for k, v in (event.attributes or {}).items() if k not in ev_removed}
                    attrs.update(ev_updates)
                    new_events[i] = Event(event_name, attrs, event.timestamp)
                    if event_name != event.name:
                        lists["masked"].append("event.name")
                    for name, items in ev_lists.items():
                        lists[name].extend(f"{event_name}.{k}" if "." not in k else k for k in items)
            if all(a is b for a, b in zip(new_events, events)):
                new_events = None
        lists["ignored"] = [k for k in lists["ignored"] if k not in self._ignored_silently]
        if not (updates or removed or new_events or lists["allowed"] or lists["ignored"] or name_masks):
            return
        if new_events is not None:
            span.set_events(new_events)
        if not (updates or removed or name_masks) and self.summary not in ("debug", "info"):
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
