"""`cinetune ui`: a local web app over every method (the optional extra `cinetune[ui]`, on Gradio).

`Studio` (no web framework) does the work and writes the equivalent `cinetune generate` command; `app` lays out the
page. Gradio's telemetry and update checks are switched off before it is imported: nothing leaves the machine."""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from .studio import ConditionWindow, Request, Result, Studio, shipped_adapters  # noqa: E402

__all__ = ["ConditionWindow", "Request", "Result", "Studio", "shipped_adapters"]
