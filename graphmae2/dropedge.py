"""DropEdge views for the encoder and the EMA teacher (``model.drop_edge_rate``).

The GraphMAE2 reference's mini-batch script feeds the online encoder and the EMA
teacher two independent DropEdge graphs of the same batch (``drop_edge(g, rate)`` twice,
each directed edge kept with probability ``1 - rate``, self-loops re-added); the decoder
keeps the full graph. The teacher then sees another view of the graph than the student,
so its targets are not the student's own input echoed back. Here the same holds in full
batch and mini-batch mode, and each view is drawn from its own named stream
(:mod:`graphmae2.seeding`): ``(seed, "drop_edge", *key, "encoder" | "teacher")`` with the
step's dropout key (``(step,)`` full batch, ``(step, rank)`` mini-batch: each rank's
batch is another graph), on the CPU, so the graphs are the same on every device and a
resumed run draws them again bitwise.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import torch

from .graph import Graph
from .seeding import generator

#: The two views, in the order :func:`edge_views` returns them.
VIEWS = ("encoder", "teacher")


def drop_edges(graph: Graph, rate: float, gen: torch.Generator) -> Graph:
    """``graph`` with each edge that is not a self-loop dropped with probability ``rate``.

    One uniform draw per edge of ``graph`` (self-loops included, so the draws do not
    depend on where the loops sit); self-loops are always kept, so every node still
    attends to itself (the reference drops them and adds them back: the same graph).

    Args:
        graph: the graph, with one self-loop per node.
        rate: drop probability, in ``[0, 1)``; 0 returns ``graph`` itself.
        gen: a CPU generator (e.g. ``generator(seed, "drop_edge", step, "teacher")``).

    Raises:
        ValueError: ``rate`` outside ``[0, 1)``.
    """
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"drop_edges: rate={rate} must be in [0, 1) (model.drop_edge_rate)")
    if rate == 0.0:
        return graph
    src, dst = graph.edges()
    keep = torch.rand(src.numel(), generator=gen) >= rate                  # (E,) on the CPU
    keep = keep.to(src.device) | (src == dst)
    return Graph.from_edges(src[keep].cpu(), dst[keep].cpu(), graph.num_nodes,
                            coalesce=False).to(graph.device)


def edge_views(graph: Graph, rate: float, seed: int, key: Sequence[int]) -> Tuple[Graph, Graph]:
    """``(encoder graph, teacher graph)`` for the step keyed ``key`` (the batch's
    ``dropout_key``): two independent :func:`drop_edges` draws from the streams
    ``(seed, "drop_edge", *key, view)``; both are ``graph`` itself when ``rate`` is 0
    (nothing is drawn)."""
    if rate == 0.0:
        return graph, graph
    enc, teach = (drop_edges(graph, rate, generator(seed, "drop_edge", *key, view)) for view in VIEWS)
    return enc, teach
