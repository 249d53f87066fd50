"""Sampling for graphs too large for full-batch training: ego-graphs by local clustering.

>>> from graphmae2.sampling import ego_graphs
>>> ego = ego_graphs(data.graph, k=256, workers=4, cache_dir="~/.cache/graphmae2")  # doctest: +SKIP
>>> ego[0]  # seed 0 first, then its highest-PPR nodes  # doctest: +SKIP
"""
from .ppr import CACHE_VERSION, DEFAULT_BATCH_SIZE, RANKS, EgoGraphs, approximate_ppr, cache_key, ego_graphs

__all__ = ["CACHE_VERSION", "DEFAULT_BATCH_SIZE", "RANKS", "EgoGraphs", "approximate_ppr", "cache_key", "ego_graphs"]
