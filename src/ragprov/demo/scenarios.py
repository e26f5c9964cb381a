"""Scenario texts: one retrieved set per diagnosis category, with the answers that produce it.

Written for ragprov (a fictional company's annual report). The tests of the signals engine and of
the span processor use them, and the demo can replay them; each constant's comment says which
diagnosis it leads to.
"""

from __future__ import annotations

from typing import Any

#: Chunk ids of DIVERSE (stamped ids, as an ingestion pipeline would set them).
IDS = [
    "acme-ar23#revenue",
    "acme-ar23#people",
    "acme-ar23#product",
    "acme-ar23#risk",
    "acme-ar23#outlook",
]
#: Five chunks on different topics: high diversity.
DIVERSE = [
    "Acme Robotics reported revenue of $12.4M for fiscal 2023, up 26.6% from the previous year. "
    "Growth was driven by warehouse automation contracts in Germany and Poland.",
    "At the end of 2023 the company employed 214 people across offices in Berlin, Austin and "
    "Kraków. Engineering accounted for 61% of the workforce.",
    "The flagship product, the Palletbot X2, lifts loads of up to 450 kg and navigates aisles with "
    "lidar. A battery swap takes under four minutes.",
    "Management identified the supply of lithium battery cells as the main operational risk. A "
    "second supplier in South Korea was qualified in November 2023.",
    "For 2024 the board expects revenue between $15M and $16M. Capital expenditure will focus on a "
    "new assembly line in Wrocław, scheduled to open in the third quarter.",
]
#: Uses 4 of the 5 DIVERSE chunks: healthy.
ANSWER_USES_FOUR = (
    "Acme Robotics grew revenue 26.6% to 12.4 million dollars in fiscal 2023, driven by warehouse "
    "automation contracts in Germany and Poland. It employed 214 people in Berlin, Austin and "
    "Kraków, 61% of them in engineering. Its Palletbot X2 lifts 450 kg, navigates aisles with "
    "lidar and swaps its battery in under four minutes. The main operational risk is the supply of "
    "lithium battery cells; a second supplier in South Korea was qualified in November 2023."
)
#: Uses 2 of the 5 DIVERSE chunks: navigation.
ANSWER_USES_TWO = (
    "Acme Robotics reported revenue of $12.4M in fiscal 2023, up 26.6%, from warehouse automation "
    "contracts in Germany and Poland. For 2024 the board expects revenue between $15M and $16M, "
    "with capital expenditure on a new assembly line in Wrocław."
)
#: Five rewordings of one fact: redundant, diversity below the gate: retrieval_composition.
NEAR_DUPLICATES = [
    "Acme Robotics reported revenue of $12.4M for fiscal 2023, up 26.6% from the previous year, "
    "driven by warehouse automation contracts in Germany and Poland.",
    "Acme Robotics reported fiscal 2023 revenue of $12.4 million, up 26.6% on the previous year, "
    "driven by warehouse automation contracts in Germany and Poland.",
    "In fiscal 2023 Acme Robotics reported revenue of 12.4M dollars, 26.6% above the previous "
    "year, driven by warehouse automation contracts in Germany and Poland.",
    "Revenue at Acme Robotics reached $12.4M in fiscal 2023, up 26.6% from the previous year, "
    "driven by warehouse automation contracts in Germany and Poland.",
    "Acme Robotics reported revenue of $12.4M in fiscal 2023 (up 26.6% on the previous year), "
    "driven by warehouse automation contracts in Germany and Poland.",
]
#: An answer from NEAR_DUPLICATES.
ANSWER_REVENUE = "Acme Robotics reported revenue of $12.4M for fiscal 2023, up 26.6% year on year."
#: Metadata for DIVERSE with low pre-ingestion quality: data_problem.
LOW_QUALITY_METADATA: list[dict[str, Any]] = [
    {"semantic_density": 0.4, "completeness": 0.5, "freshness_status": "stale"},
    {"semantic_density": 0.5, "completeness": 0.4, "faithfulness_prediction": 0.6},
    {"semantic_density": 0.3, "completeness": 0.6, "conflict_flag": True},
    {"semantic_density": 0.5, "completeness": 0.5},
    {"semantic_density": 0.6, "completeness": 0.4},
]
#: After an empty retrieval: acceptable_fallback.
ACKNOWLEDGING = "I couldn't find Acme Robotics' 2025 revenue in the available documents."
#: After an empty retrieval: ungrounded_answer.
CONFIDENT = "Acme Robotics' revenue in 2025 was $21.7M, driven by expansion into Spain."


#: Good pre-ingestion quality for DIVERSE, as a scoring pipeline would stamp it.
GOOD_METADATA: list[dict[str, Any]] = [
    {"semantic_density": 0.91, "completeness": 0.95, "faithfulness": 0.93},
    {"semantic_density": 0.88, "completeness": 0.9, "faithfulness": 0.92},
    {"semantic_density": 0.9, "completeness": 0.86, "faithfulness": 0.94},
    {"semantic_density": 0.86, "completeness": 0.92, "faithfulness": 0.9},
    {"semantic_density": 0.89, "completeness": 0.9, "faithfulness": 0.95},
]
