"""A graph as a destination-sorted CSR, the one structure every layer reads.

Edges are stored grouped by destination node: the sources of node ``v``'s incoming
edges are ``indices[indptr[v]:indptr[v + 1]]``, sorted ascending. Every reduction over
incoming edges therefore runs in a fixed order, which is what makes message passing
bitwise repeatable (see :mod:`graphmae2.ops`).
"""
from __future__ import annotations

import hashlib
from typing import Any, Callable, Dict, Hashable, Optional, Tuple

import torch
from torch import Tensor

from .interop import import_pyg_data


def _check_index(name: str, t: Tensor, num_nodes: int) -> None:
    if t.dtype in (torch.bool,) or t.is_floating_point() or t.is_complex():
        raise ValueError(f"{name} must be an integer tensor, got dtype {t.dtype}")
    if t.dim() != 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(t.shape)}")
    if t.numel() == 0:
        return
    bad = (t < 0) | (t >= num_nodes)
    if bool(bad.any()):
        first = int(bad.nonzero()[0, 0])
        raise ValueError(
            f"{name} has {int(bad.sum())} node index(es) outside [0, {num_nodes}); "
            f"first at position {first}: {int(t[first])}")


def take_csr_rows(indptr: Tensor, rows: Tensor) -> Tuple[Tensor, Tensor]:
    """Select rows of a CSR layout: returns ``(new_indptr, positions)`` where row ``i``
    of the result holds the entries ``positions[new_indptr[i]:new_indptr[i + 1]]`` of row
    ``rows[i]``, in order; a negative ``rows[i]`` gives an empty row."""
    valid = rows >= 0
    src = rows.clamp(min=0)
    start = indptr[src]
    deg = (indptr[src + 1] - start) * valid
    new_indptr = torch.zeros(rows.numel() + 1, dtype=indptr.dtype, device=indptr.device)
    new_indptr[1:] = torch.cumsum(deg, 0)
    positions = torch.repeat_interleave(start - new_indptr[:-1], deg) \
        + torch.arange(int(new_indptr[-1]), device=indptr.device)
    return new_indptr, positions


class Graph:
    """Directed graph in destination-sorted CSR form.

    Args:
        indptr: ``[num_nodes + 1]`` int64 offsets into ``indices`` per destination node.
        indices: ``[num_edges]`` int64 source node of each edge, grouped by destination.
        num_nodes: number of nodes (isolated nodes included); with ``num_src``, the
            number of destination nodes.
        num_src: number of source nodes when sources and destinations are different
            node sets (see :meth:`in_edges`); default ``num_nodes``.

    Build one with :meth:`from_edges`, :meth:`from_edge_index`, :meth:`from_pyg` or
    :meth:`from_dgl` rather than by hand; those validate the input once, so layers never need to.
    """

    def __init__(self, indptr: Tensor, indices: Tensor, num_nodes: int,
                 num_src: Optional[int] = None) -> None:
        self.indptr = indptr
        self.indices = indices
        self.num_nodes = int(num_nodes)
        self.num_src = self.num_nodes if num_src is None else int(num_src)
        self._dst: Optional[Tensor] = None
        self._rev: Optional[Tuple[Tensor, Tensor, Tensor]] = None
        self._derived: Dict[Hashable, Any] = {}

    def cached(self, key: Hashable, build: Callable[[], Any]) -> Any:
        """``build()``, computed once per graph and ``key``: index layouts derived from the
        structure (a graph's structure never changes after construction)."""
        if key not in self._derived:
            self._derived[key] = build()
        return self._derived[key]

    # ------------------------------------------------------------------ builders
    @classmethod
    def from_edges(cls, src: Tensor, dst: Tensor, num_nodes: int,
                   coalesce: bool = True) -> "Graph":
        """Build from parallel ``src``/``dst`` index tensors (edge ``src[i] -> dst[i]``).

        Duplicate edges are merged when ``coalesce`` is true (the default), because a
        repeated edge would count twice in every attention softmax and degree.
        """
        src = torch.as_tensor(src)
        dst = torch.as_tensor(dst)
        if isinstance(num_nodes, bool) or int(num_nodes) != num_nodes or num_nodes < 0:
            raise ValueError(f"num_nodes must be a non-negative integer, got {num_nodes!r}")
        num_nodes = int(num_nodes)
        _check_index("src", src, num_nodes)
        _check_index("dst", dst, num_nodes)
        if src.numel() != dst.numel():
            raise ValueError(f"src and dst must have the same length, got {src.numel()} and {dst.numel()}")
        src = src.long().cpu()
        dst = dst.long().cpu()
        key = dst * max(num_nodes, 1) + src
        if coalesce:
            key = torch.unique(key)  # sorted
        else:
            key = torch.sort(key, stable=True).values
        dst = torch.div(key, max(num_nodes, 1), rounding_mode="floor")
        src = key - dst * max(num_nodes, 1)
        indptr = torch.zeros(num_nodes + 1, dtype=torch.long)
        indptr[1:] = torch.bincount(dst, minlength=num_nodes).cumsum(0)
        return cls(indptr, src, num_nodes)

    @classmethod
    def from_edge_index(cls, edge_index: Tensor, num_nodes: int) -> "Graph":
        """Build from a PyG-style ``[2, num_edges]`` tensor (row 0 sources, row 1 targets)."""
        edge_index = torch.as_tensor(edge_index)
        if edge_index.dim() != 2 or edge_index.shape[0] != 2:
            raise ValueError(f"edge_index must have shape [2, num_edges], got {tuple(edge_index.shape)}")
        return cls.from_edges(edge_index[0], edge_index[1], num_nodes)

    @classmethod
    def from_dgl(cls, g) -> "Graph":
        """Convert a homogeneous ``dgl.DGLGraph`` (every edge kept, duplicates included)."""
        src, dst = g.edges()
        return cls.from_edges(src.cpu(), dst.cpu(), g.num_nodes(), coalesce=False)

    def to_dgl(self):
        """Return the same edges as a ``dgl.DGLGraph`` (imports DGL lazily)."""
        import dgl

        src, dst = self.edges()
        return dgl.graph((src, dst), num_nodes=self.num_nodes)

    @classmethod
    def from_pyg(cls, data: Any) -> "Graph":
        """Convert a homogeneous ``torch_geometric.data.Data`` from its ``edge_index`` and
        ``num_nodes`` (every edge kept, duplicates included, as :meth:`from_dgl`).

        Features, labels and masks are the dataset's business:
        :func:`graphmae2.datasets.as_node_dataset` carries them.
        """
        kind = type(data).__name__
        if kind != "Data":
            hint = "; convert it with data.to_homogeneous()" if kind == "HeteroData" else ""
            raise TypeError(f"Graph.from_pyg: expected a torch_geometric.data.Data, got {kind}{hint}")
        if data.edge_index is None:
            raise ValueError("Graph.from_pyg: the Data object has no edge_index (a SparseTensor "
                             "adj_t is not read); store the edges as edge_index [2, num_edges]")
        edge_index = data.edge_index.as_subclass(torch.Tensor)  # a plain tensor, not PyG's EdgeIndex
        if edge_index.dim() != 2 or edge_index.shape[0] != 2:
            raise ValueError(f"edge_index must have shape [2, num_edges], got {tuple(edge_index.shape)}")
        return cls.from_edges(edge_index[0].cpu(), edge_index[1].cpu(), data.num_nodes, coalesce=False)

    def to_pyg(self):
        """Return the same edges as a ``torch_geometric.data.Data`` holding ``edge_index``
        (row 0 sources, row 1 targets, grouped by target) and ``num_nodes``."""
        src, dst = self.edges()
        return import_pyg_data()(edge_index=torch.stack([src, dst]), num_nodes=self.num_nodes)

    # --------------------------------------------------------------- properties
    @property
    def num_edges(self) -> int:
        return int(self.indices.numel())

    @property
    def device(self) -> torch.device:
        return self.indptr.device

    @property
    def dst(self) -> Tensor:
        """Destination node of every edge (non-decreasing)."""
        if self._dst is None:
            self._dst = torch.repeat_interleave(
                torch.arange(self.num_nodes, device=self.device), self.in_degrees())
        return self._dst

    @property
    def src(self) -> Tensor:
        return self.indices

    def edges(self) -> Tuple[Tensor, Tensor]:
        return self.indices, self.dst

    def in_degrees(self) -> Tensor:
        return self.indptr[1:] - self.indptr[:-1]

    def out_degrees(self) -> Tensor:
        return torch.bincount(self.indices, minlength=self.num_src)

    @property
    def reverse(self) -> Tuple[Tensor, Tensor, Tensor]:
        """Source-sorted view ``(indptr_by_src, dst_by_src, perm)`` with ``perm`` mapping
        source-sorted edge slots to their position in the destination-sorted order.

        Backward passes use it to sum per source node in a fixed order instead of with
        atomics, so gradients repeat bitwise on every device.
        """
        if self._rev is None:
            perm = torch.sort(self.indices, stable=True).indices
            indptr = torch.zeros(self.num_src + 1, dtype=torch.long, device=self.device)
            indptr[1:] = torch.cumsum(self.out_degrees(), 0)
            self._rev = (indptr, self.dst[perm], perm)
        return self._rev

    # ---------------------------------------------------------- transformations
    def remove_self_loops(self) -> "Graph":
        src, dst = self.edges()
        keep = src != dst
        return Graph.from_edges(src[keep].cpu(), dst[keep].cpu(), self.num_nodes,
                                coalesce=False).to(self.device)

    def add_self_loops(self) -> "Graph":
        """Return a copy with exactly one self-loop per node (existing ones replaced)."""
        src, dst = self.edges()
        keep = src != dst
        loop = torch.arange(self.num_nodes, device=self.device)
        return Graph.from_edges(torch.cat([src[keep], loop]).cpu(), torch.cat([dst[keep], loop]).cpu(),
                                self.num_nodes, coalesce=False).to(self.device)

    def symmetrize(self) -> "Graph":
        """Return the undirected version: every edge in both directions, duplicates merged."""
        src, dst = self.edges()
        return Graph.from_edges(torch.cat([src, dst]).cpu(), torch.cat([dst, src]).cpu(),
                                self.num_nodes).to(self.device)

    def in_edges(self, rows: Tensor) -> "Graph":
        """The in-edges of ``rows`` as a bipartite graph: destination ``i`` is node
        ``rows[i]``, sources keep their ids (``num_src = num_nodes``).

        Layers use it to compute only the output rows a loss reads.
        """
        rows = torch.as_tensor(rows, device=self.device).long()
        indptr, edge = take_csr_rows(self.indptr, rows)
        return Graph(indptr, self.indices[edge], rows.numel(), num_src=self.num_src)

    def from_sources(self, sources: Tensor) -> Tuple["Graph", Tensor]:
        """The edges whose source is in ``sources``, with source ``sources[i]`` renamed
        ``i`` (``num_src = len(sources)``); destinations and edge order are unchanged.
        Returns the graph and the positions of its edges in this graph's edge list.

        Layers use it to aggregate only over sources whose features are non-zero.
        """
        sources = torch.as_tensor(sources, device=self.device).long()
        new_id = torch.full((self.num_src,), -1, dtype=torch.long, device=self.device)
        new_id[sources] = torch.arange(sources.numel(), device=self.device)
        renamed = new_id[self.indices]
        kept = renamed >= 0
        before = torch.zeros(self.indices.numel() + 1, dtype=torch.long, device=self.device)
        before[1:] = torch.cumsum(kept.long(), 0)  # kept edges before each position
        indptr = before[self.indptr]
        edge = kept.nonzero().squeeze(1)
        return Graph(indptr, renamed[edge], self.num_nodes, num_src=sources.numel()), edge

    def subgraph(self, nodes: Tensor) -> "Graph":
        """Induced subgraph on ``nodes``; node ``nodes[i]`` becomes node ``i``."""
        nodes = torch.as_tensor(nodes, device=self.device).long()
        _check_index("nodes", nodes, self.num_nodes)
        new_id = torch.full((self.num_nodes,), -1, dtype=torch.long, device=self.device)
        new_id[nodes] = torch.arange(nodes.numel(), device=self.device)
        src, dst = self.edges()
        s, d = new_id[src], new_id[dst]
        keep = (s >= 0) & (d >= 0)
        return Graph.from_edges(s[keep].cpu(), d[keep].cpu(), nodes.numel(),
                                coalesce=False).to(self.device)

    def to(self, device) -> "Graph":
        device = torch.device(device)
        if device == self.device:
            return self
        return Graph(self.indptr.to(device), self.indices.to(device), self.num_nodes, self.num_src)

    def digest(self) -> str:
        """SHA-256 of the structure, stable across runs and devices (used as a cache key)."""
        h = hashlib.sha256()
        h.update(str(self.num_nodes).encode())
        h.update(self.indptr.cpu().numpy().tobytes())
        h.update(self.indices.cpu().numpy().tobytes())
        return h.hexdigest()

    def __repr__(self) -> str:
        src = f", num_src={self.num_src}" if self.num_src != self.num_nodes else ""
        return f"Graph(num_nodes={self.num_nodes}{src}, num_edges={self.num_edges})"
