"""Chunk quality scoring for ingestion pipelines.

``score_chunk(text)`` is the intrinsic heuristic ragprov falls back to when chunks carry no
pre-ingestion quality metadata (complete sentences at the edges, distinctive-token density,
length), in [0, 1]. Use it to gate or flag chunks before embedding them, e.g. drop chunks below
0.6, the default ``rag.quality_density`` threshold of the data_problem diagnosis.
"""

from ragprov.signals.quality import score_chunk

__all__ = ["score_chunk"]
