"""Print the call signatures of public names as one JSON line: run by any interpreter (ours, MLflow's
venv, mlflow-tracing's venv), so tests/test_signatures.py compares what each package really has.

Usage: signatures.py PACKAGE NAME...   (NAME is a dotted path under PACKAGE: ``search_traces``,
``tracing.context``, ``MlflowClient.search_traces``, ``entities.Feedback``; a class gives its
constructor). Each name maps to a list of [parameter, kind, default] or null when missing.
"""

import enum
import importlib
import inspect
import json
import sys
import warnings

warnings.filterwarnings("ignore")


def _default(value):
    if value is inspect.Parameter.empty:
        return "<required>"
    if isinstance(value, enum.Enum):
        value = value.value
    if value is None or isinstance(value, (bool, int, float, str)):
        return repr(value)
    return f"<{type(value).__name__}>"


def _resolve(package, dotted):
    obj = importlib.import_module(package)
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            try:
                obj = importlib.import_module(".".join([package, *parts[: i + 1]]))
            except ImportError:
                return None
    return obj


def signature(package, dotted):
    obj = _resolve(package, dotted)
    if obj is None:
        return None
    target = obj.__init__ if inspect.isclass(obj) else obj
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return None
    params = [p for p in sig.parameters.values() if p.name not in ("self", "cls")]
    return [[p.name, p.kind.name, _default(p.default)] for p in params]


def main():
    package, names = sys.argv[1], sys.argv[2:]
    print(json.dumps({name: signature(package, name) for name in names}))


if __name__ == "__main__":
    main()
