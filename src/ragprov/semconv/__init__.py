"""ragprov's ``rag.*`` semantic conventions: attribute names and enum values.

The constants live in :mod:`ragprov.semconv.attributes`, generated from the registry in
``semconv/`` by ``python semconv/generate.py``; this module re-exports them.
"""

from ragprov.semconv import attributes as attributes
from ragprov.semconv.attributes import *  # noqa: F403
