"""A plain app: one retrieval span through the OTel API, no ragprov setup call.

Run it as a user would: ``opentelemetry-instrument python tests/apps/retrieval_app.py``.
"""

from __future__ import annotations

from app_support import run_retrieval, write_report
from opentelemetry import trace

if __name__ == "__main__":
    run_retrieval(trace.get_tracer("retrieval_app"))
    write_report()
