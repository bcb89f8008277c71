"""``python -m mlflow_otel show``: the same as the ``mlflow-otel`` command."""

import sys

from mlflow_otel.cli import main

sys.exit(main())
