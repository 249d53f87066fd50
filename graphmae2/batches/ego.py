"""Mini-batches of ego-graphs: the batch source for large graphs, and inference for every
node in bounded memory.

Each training example is the ego-graph of a seed node (its top-k nodes by approximate
personalised PageRank, :mod:`graphmae2.sampling`). A batch is the disjoint union of its
ego-graphs' induced subgraphs; masking and re-masking act inside the batch, the latent
targets sit at the ego centres. Features may be a memory-mapped ``.npy``: only a
batch's rows are read. The training loop is :func:`graphmae2.trainer.train_seed`, the
same as for full batch; :class:`EgoBatches` is what it iterates.

Under ``torchrun`` every rank takes a disjoint shard of each global batch and DDP
averages the gradients, so all ranks hold identical parameters, hence identical
teachers. Each rank then embeds its share of the nodes into one file; rank 0 writes
everything else.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..atomic import atomic_write
from ..config import Config
from ..datasets import NodeDataset, feature_matrix
from ..feature_rows import SparseRows, mostly_zero
from ..graph import Graph
from ..manifest import state_digests
from ..masking import draw_ego_masks
from ..sampling import EgoGraphs
from ..seeding import loader_generator, seed_worker
from .base import Batch, BatchSource, dist_rank_world

EMBED_BATCH = 512  # ego-graphs per batch of the embedding pass
FLUSH_SECONDS = 60.0  # how often a pass into a file records how far it got


@dataclass
class EgoBatch:
    """A disjoint union of ego-graphs: ``graph`` (with self-loops), ``x`` rows (dense, or
    :class:`~graphmae2.feature_rows.SparseRows` gathered from sparse features),
    ``centres`` (position of each ego's seed in the batch), ``sizes`` (nodes per ego)
    and ``ego_ids`` (index of each ego-graph in the :class:`EgoGraphs`)."""

    graph: Graph
    x: Union[Tensor, SparseRows]
    centres: Tensor
    sizes: List[int]
    ego_ids: List[int]


def induced_union(indptr: np.ndarray, indices: np.ndarray, egos: Sequence[np.ndarray],
                  scratch: Optional[np.ndarray] = None) -> Graph:
    """Disjoint union of the subgraphs induced by each node set in ``egos``.

    Ego by ego, its (distinct) nodes get their batch ids in a lookup table over the whole
    graph; an edge ``u -> v`` into the ego is kept where ``u`` has an id there. The table
    is cleared after each ego, so egos may share nodes. ``scratch`` is that table, an
    int32 array of -1 per graph node, left as it was found: pass one to reuse it across
    batches (a graph of 100M nodes makes it 400 MB); without it, one is allocated per call.
    The cost is the scan over the egos' neighbour lists: about 3.6M entries per batch of
    512 PPR ego-graphs of 64 nodes on a 169k-node graph (docs/scaling.md).
    """
    batch_id = np.full(indptr.size - 1, -1, dtype=np.int32) if scratch is None else scratch
    src, dst, offset = [], [], 0
    for ego in egos:
        ego = np.asarray(ego, dtype=np.int64)
        ids = np.arange(offset, offset + ego.size, dtype=np.int64)
        batch_id[ego] = ids
        first, deg = indptr[ego], indptr[ego + 1] - indptr[ego]
        ends = np.cumsum(deg)
        nbr = batch_id[indices[np.arange(deg.sum()) + np.repeat(first - (ends - deg), deg)]]
        hit = nbr >= 0
        src.append(nbr[hit].astype(np.int64))
        dst.append(np.repeat(ids, deg)[hit])
        batch_id[ego] = -1
        offset += ego.size
    return Graph.from_edges(torch.from_numpy(np.concatenate(src)), torch.from_numpy(np.concatenate(dst)),
                            offset).add_self_loops()


class EgoCollate:
    """Builds an :class:`EgoBatch` from a global batch of ego-graph ids (a loader's items are
    the ids themselves: its dataset is a ``range``), keeping this
    rank's shard (ids ``rank, rank + world, ...`` of the batch). Picklable for workers.

    With ``sparse`` a batch's rows are :class:`~graphmae2.feature_rows.SparseRows`: a batch
    of 256 Cora ego-graphs of 128 nodes is 47M dense entries, 1 % of them non-zero. Tensor
    features are then held sparse and gathered by index, never densified; memory-mapped
    ones are read densely, a batch at a time, and converted (the same result).
    """

    def __init__(self, egos: EgoGraphs, graph: Graph, features: Any, rank: int = 0,
                 world: int = 1, sparse: bool = False) -> None:
        self.egos = egos
        self.indptr = graph.indptr.cpu().numpy()
        self.indices = graph.indices.cpu().numpy()
        self.sparse = sparse
        # a tensor, numpy array or np.memmap; a sparse tensor is held as SparseRows
        self.features = SparseRows.from_dense(features.cpu()) if sparse and isinstance(features, Tensor) else features
        self.rank, self.world = rank, world
        self.scratch: Optional[np.ndarray] = None  # induced_union's table, made in the process that uses it

    def __call__(self, ids: List[int]) -> EgoBatch:
        ids = list(ids)[self.rank::self.world]
        egos = [self.egos[i] for i in ids]
        nodes = np.concatenate(egos).astype(np.int64)
        sizes = [len(e) for e in egos]
        centres = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        if isinstance(self.features, SparseRows):
            x = self.features.take_rows(torch.from_numpy(nodes))
        elif isinstance(self.features, Tensor):
            x = self.features[torch.from_numpy(nodes)]
        else:
            x = torch.from_numpy(np.ascontiguousarray(self.features[nodes], dtype=np.float32))
            if self.sparse:  # the same SparseRows as a gather from an in-memory tensor
                x = SparseRows.from_dense(x)
        if self.scratch is None:
            self.scratch = np.full(self.indptr.size - 1, -1, dtype=np.int32)
        return EgoBatch(induced_union(self.indptr, self.indices, egos, self.scratch), x,
                        torch.from_numpy(centres), sizes, ids)


def make_loader(egos: EgoGraphs, graph: Graph, features: Any, batch_size: int, seed: int,
                epoch: int, shuffle: bool, num_workers: int = 0, rank: int = 0, world: int = 1,
                sparse: bool = False) -> DataLoader:
    """DataLoader over global batches of ego-graphs, seeded through
    :mod:`graphmae2.seeding`: its own generator per epoch (the same on every rank, so all
    ranks agree on the batches) and ``seed_worker`` in every worker process."""
    return DataLoader(range(len(egos)), batch_size=batch_size, shuffle=shuffle,
                      collate_fn=EgoCollate(egos, graph, features, rank, world, sparse), num_workers=num_workers,
                      worker_init_fn=seed_worker, generator=loader_generator(seed, epoch))


@torch.no_grad()
def ego_embeddings(model: torch.nn.Module, graph: Graph, features: Any, egos: EgoGraphs,
                   device: torch.device, batch_size: int = EMBED_BATCH, out: Optional[np.ndarray] = None,
                   progress: bool = False, num_workers: int = 0, rows: Optional[Tuple[int, int]] = None,
                   on_rows: Optional[Callable[[int], None]] = None) -> Union[Tensor, np.ndarray]:
    """Encoder output at every ego centre, one batch of ego-graphs at a time, so memory
    is bounded by the batch, not the graph. Row ``i`` belongs to ``egos.seeds[i]``; the
    last layer computes the centres only.

    Returns a tensor, or, given ``out`` (``[len(egos), hidden]``, e.g. a memory-mapped
    ``.npy``), fills and returns it batch by batch: all embeddings of a graph of 10M nodes
    need not fit in memory. ``rows = (start, stop)`` computes those rows only (into the
    same rows of ``out``): a rank's share, see :func:`shard_rows`. ``on_rows(next_row)``
    is called after each batch written to ``out``. ``num_workers`` loader processes
    assemble the batches while the encoder runs (the same result; worth it where cores
    are spare).
    """
    model.eval()
    start, stop = rows if rows is not None else (0, len(egos))
    parts: List[Tensor] = []
    done = start
    loader = DataLoader(range(start, stop), batch_size=batch_size, shuffle=False,
                        collate_fn=EgoCollate(egos, graph, features), num_workers=num_workers)
    for batch in tqdm(loader, desc="embeddings", unit="batch", disable=not progress, dynamic_ncols=True):
        z = model.encoder(batch.graph.to(device), batch.x.to(device), rows=batch.centres.to(device)).cpu()
        if out is None:
            parts.append(z)
        else:
            out[done:done + len(z)] = z.numpy()
        done += len(z)
        if on_rows is not None:
            on_rows(done)
    return torch.cat(parts) if out is None else out


def shard_rows(num_rows: int, batch_size: int, rank: int, world: int) -> Tuple[int, int]:
    """Rank ``rank``'s contiguous share ``(start, stop)`` of ``num_rows`` embedding rows:
    whole batches of ``batch_size``, split as evenly as batches allow. Each batch is then
    the same batch as in one process, so the rows are bitwise the same for any ``world``."""
    batches = -(-num_rows // batch_size)
    lo, hi = rank * batches // world, (rank + 1) * batches // world
    return min(lo * batch_size, num_rows), min(hi * batch_size, num_rows)


def _read_json(path: Path) -> Optional[Dict[str, Any]]:
    """The JSON object in ``path``, or None where it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


class EgoBatches(BatchSource):
    """Batch source over global batches of ``data.batch_size`` ego-graphs, all of them per
    epoch or the first ``data.steps_per_epoch`` of its shuffled order.

    Every rank iterates the same global batch order (one loader generator per
    ``(seed, epoch)``) and keeps its shard, so the run is the same computation for any
    number of processes up to the order of gradient summation. Global step ``s`` of
    epoch ``e`` is ``e * steps_per_epoch + i``; masks come from ``(seed, ego id, s)``,
    dropout from ``(seed, "dropout", s, rank)``. The latent loss is taken at the ego
    centres. On the CPU, mostly-zero features take the sparse first projection, as in
    :class:`~graphmae2.batches.base.FullBatch`.
    """

    def __init__(self, cfg: Config, graph: Graph, features: Any, egos: EgoGraphs,
                 device: torch.device) -> None:
        self.cfg, self.graph, self.features, self.egos, self.device = cfg, graph, features, egos, device
        self.rank, self.world = dist_rank_world()
        self.in_dim = int(features.shape[1])
        full = -(-len(egos) // cfg.data.batch_size)
        self.steps_per_epoch = min(full, cfg.data.steps_per_epoch) if cfg.data.steps_per_epoch else full
        self.sparse_input = device.type == "cpu" and mostly_zero(features)
        self._monitor: Optional[EgoBatch] = None

    @classmethod
    def from_config(cls, cfg: Config, data: NodeDataset, device: torch.device) -> "EgoBatches":
        """Ego-graphs of ``data.graph`` by ``data.ego_k`` / ``ppr_*`` (ranked by ``data.ppr_rank``; cached under
        ``data.root``, default ``~/.cache/graphmae2``, in ``ego/``) and the features
        :func:`~graphmae2.datasets.feature_matrix` gives."""
        from ..sampling import ego_graphs

        d = cfg.data
        cache = Path(d.root or Path.home() / ".cache" / "graphmae2") / "ego"
        egos = ego_graphs(data.graph, k=d.ego_k, alpha=d.ppr_alpha, eps=d.ppr_eps, workers=d.ppr_workers,
                          cache_dir=cache, rank=d.ppr_rank)
        return cls(cfg, data.graph, feature_matrix(d, data), egos, device)

    def _loader(self, seed: int, epoch: int, num_workers: int) -> DataLoader:
        return make_loader(self.egos, self.graph, self.features, self.cfg.data.batch_size, seed, epoch,
                           shuffle=True, num_workers=num_workers, rank=self.rank, world=self.world,
                           sparse=self.sparse_input)

    def batches(self, seed: int, epoch: int) -> Iterator[Batch]:
        dev = self.device
        for i, batch in zip(range(self.steps_per_epoch), self._loader(seed, epoch, self.cfg.data.num_workers)):
            step = epoch * self.steps_per_epoch + i
            mask, remasks = draw_ego_masks(self.cfg.model, seed, step, batch.sizes, batch.ego_ids)
            x = batch.x if isinstance(batch.x, SparseRows) else batch.x.to(dev)  # SparseRows: CPU only
            yield Batch(batch.graph.to(dev), x, mask, remasks, batch.centres.to(dev),
                        self.sparse_input, step, (step, self.rank))

    def first_mask(self, seed: int) -> Tensor:
        first = next(iter(self._loader(seed, 0, 0)))  # the loader, not its sampler: it draws its base seed first
        return draw_ego_masks(self.cfg.model, seed, 0, first.sizes, first.ego_ids)[0].mask_nodes

    def monitor_batch(self) -> Tuple[Graph, Tensor, Optional[Tensor]]:
        """The first ``data.batch_size`` ego-graphs (a fixed set), read at their centres."""
        if self._monitor is None:
            collate = EgoCollate(self.egos, self.graph, self.features)
            self._monitor = collate(list(range(min(self.cfg.data.batch_size, len(self.egos)))))
        b = self._monitor
        return b.graph.to(self.device), b.x.to(self.device), b.centres.to(self.device)

    def embeddings(self, model: torch.nn.Module, spill: Optional[Path] = None, progress: bool = False,
                   resume: bool = False) -> Tensor:
        """With ``spill``, collective: each rank writes its :func:`shard_rows` of the file
        (across machines, the run directory must be on a filesystem they share), recording
        every ``FLUSH_SECONDS`` how far it got; ``resume`` continues a pass cut short from
        there when the partial file holds this encoder's rows (bitwise the rows of an
        uninterrupted pass: it restarts at a batch boundary). Without ``spill``, this
        process embeds every node in memory."""
        workers = self.cfg.data.num_workers
        if spill is None:
            return ego_embeddings(model, self.graph, self.features, self.egos, self.device, progress=progress,
                                  num_workers=workers)
        partial = spill.with_name(spill.stem + ".partial.npy")  # renamed when complete
        key_file = spill.with_name(spill.stem + ".partial.json")  # whose rows the partial file holds
        marks = f"{spill.stem}.partial.rank*.json"  # each rank's next row
        mark = spill.with_name(f"{spill.stem}.partial.rank{self.rank}-of-{self.world}.json")
        key = {"encoder": state_digests(model.encoder)["overall"], "shape": [len(self.egos), model.out_dim]}
        if self.rank == 0 and not (resume and partial.exists() and _read_json(key_file) == key):
            for stale in spill.parent.glob(marks):
                stale.unlink()
            np.lib.format.open_memmap(partial, mode="w+", dtype=np.float32, shape=tuple(key["shape"])).flush()
            with atomic_write(key_file, "w") as fh:
                json.dump(key, fh)
        self.barrier()
        if not partial.exists():
            raise FileNotFoundError(f"rank {self.rank}: {partial} (created by rank 0) is not here: under torchrun "
                                    "across machines, --out must be a directory every machine shares")
        start, stop = shard_rows(len(self.egos), EMBED_BATCH, self.rank, self.world)
        begin = (_read_json(mark) or {}).get("next", start) if resume else start
        begin = begin if start <= begin <= stop else start
        out = np.load(partial, mmap_mode="r+")
        last = time.monotonic()

        def record(next_row: int) -> None:
            nonlocal last
            if time.monotonic() - last >= FLUSH_SECONDS:
                out.flush()  # the rows first, then the mark that says they are there
                with atomic_write(mark, "w") as fh:
                    json.dump({"next": next_row}, fh)
                last = time.monotonic()

        ego_embeddings(model, self.graph, self.features, self.egos, self.device, EMBED_BATCH, out=out,
                       progress=progress, num_workers=workers, rows=(begin, stop), on_rows=record)
        out.flush()
        self.barrier()
        if self.rank == 0:
            partial.replace(spill)
            key_file.unlink()
            for done in spill.parent.glob(marks):
                done.unlink()
        self.barrier()
        return torch.from_numpy(np.load(spill, mmap_mode="c"))  # copy-on-write: the file stays as written

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        if self.world == 1:
            return model
        m = self.cfg.model
        return torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
            find_unused_parameters=m.remask_method == "fixed" or m.lam == 0)

    def all_finite(self, loss: Tensor) -> bool:
        finite = torch.isfinite(loss.detach()).to(torch.int32).reshape(1)
        if self.world > 1:  # every rank must take the same branch, or DDP hangs
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        return bool(finite)

    def reduce(self, values: Dict[str, Tensor]) -> Dict[str, float]:
        if self.world == 1:
            return {k: v.item() for k, v in values.items()}
        stacked = torch.stack([v.detach().float() for v in values.values()])
        dist.all_reduce(stacked)
        stacked /= self.world
        return dict(zip(values, stacked.tolist()))

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def manifest_fields(self, teacher_digest: Dict[str, Any]) -> Dict[str, Any]:
        by_rank = [teacher_digest["overall"]]
        if self.world > 1:
            by_rank = [None] * self.world
            dist.all_gather_object(by_rank, teacher_digest["overall"])
        return {"world_size": self.world, "teacher_digest_by_rank": by_rank}
