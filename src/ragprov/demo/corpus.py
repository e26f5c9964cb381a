"""The demo's bundled corpus: a small company handbook written for the demo.

Some chunks carry a stamped ``chunk_id`` and pre-ingestion quality metadata (as a pipeline that
scores chunks before embedding would leave them); the others carry nothing, so the demo shows
both chunk-id methods and both quality methods.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class DemoChunk:
    store_id: str
    text: str
    metadata: Mapping[str, Any] = field(default_factory=dict)


CORPUS: tuple[DemoChunk, ...] = (
    DemoChunk(
        "returns-1",
        "Customers may return any unused product within 30 days of delivery for a full refund. "
        "Refunds are issued to the original payment method within 5 business days of the "
        "warehouse receiving the parcel.",
        {
            "chunk_id": "handbook/returns#0",
            "source_document_id": "handbook/returns",
            "semantic_density": 0.86,
            "completeness": 0.92,
            "faithfulness": 0.95,
            "freshness_status": "fresh",
        },
    ),
    DemoChunk(
        "returns-2",
        "Opened software, gift cards and personalised items cannot be returned. Damaged "
        "deliveries must be reported within 48 hours with a photograph of the packaging.",
        {
            "chunk_id": "handbook/returns#1",
            "source_document_id": "handbook/returns",
            "semantic_density": 0.81,
            "completeness": 0.88,
            "faithfulness": 0.9,
            "freshness_status": "fresh",
        },
    ),
    DemoChunk(
        "returns-legacy",
        "Until 2024 the return window was 14 days and refunds took up to 30 days.",
        {
            "chunk_id": "handbook/returns-2023#0",
            "source_document_id": "handbook/returns-2023",
            "semantic_density": 0.7,
            "completeness": 0.6,
            "faithfulness": 0.8,
            "freshness_status": "stale",
            "conflict_flag": True,
        },
    ),
    DemoChunk(
        "shipping-1",
        "Standard shipping takes 3 to 5 business days within the European Union and costs "
        "€4.90; orders above €50 ship free of charge.",
        {
            "chunk_id": "handbook/shipping#0",
            "source_document_id": "handbook/shipping",
            "semantic_density": 0.83,
            "completeness": 0.9,
            "faithfulness": 0.93,
            "freshness_status": "aging",
        },
    ),
    DemoChunk(
        "shipping-2",
        "Express delivery arrives the next business day when ordered before 14:00 CET and "
        "costs €12.50. Express is not available for furniture or bulky items.",
        {
            "chunk_id": "handbook/shipping#1",
            "source_document_id": "handbook/shipping",
            "semantic_density": 0.8,
            "completeness": 0.85,
            "faithfulness": 0.9,
        },
    ),
    DemoChunk(
        "finance-1",
        "Third-quarter revenue grew to $12.4M, up 26.6% year over year, driven by the "
        "subscription plans launched in April.",
    ),
    DemoChunk(
        "finance-2",
        "Operating costs in the third quarter were $9.1M; the largest increase came from "
        "warehouse staffing for the new returns centre in Leipzig.",
    ),
    DemoChunk(
        "support-1",
        "The support desk answers chat and email from 8:00 to 20:00 CET on weekdays. "
        "Premium subscribers also get phone support on Saturdays.",
    ),
    DemoChunk(
        "support-2",
        "Warranty claims need the order number and a description of the fault; replacement "
        "devices ship within 10 business days of approval.",
    ),
    DemoChunk("draft-1", "TODO: write the section about", {"semantic_density": 0.2}),
)

QUESTIONS: tuple[str, ...] = (
    "How long do customers have to return a product and get a refund?",
    "How much does express delivery cost?",
    "What was revenue in the third quarter?",
)
