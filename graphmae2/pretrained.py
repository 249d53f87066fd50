"""Using a pre-trained encoder in your own code: load it, embed nodes (of any graph form)."""
from __future__ import annotations

import logging
import os
from typing import Any, Optional, Tuple, Union

import torch
from torch import Tensor, nn

from .checkpoint import CheckpointError, load_checkpoint
from .config import Config, ConfigError
from .datasets import NodeDataset
from .datasets.convert import DGL_FEATURE_KEYS
from .datasets.features import normalize_features
from .graph import Graph
from .interop import is_dgl_graph, is_pyg_data
from .layers import eval_mode
from .model import GraphMAE2

_logger = logging.getLogger(__name__)


def as_graph(graph: Any) -> Graph:
    """A :class:`Graph` as is; a ``dgl.DGLGraph`` or ``torch_geometric.data.Data``
    converted with every edge kept (no self-loops added: see :class:`PretrainedEncoder`);
    a :class:`~graphmae2.datasets.NodeDataset` gives its graph."""
    if isinstance(graph, Graph):
        return graph
    if isinstance(graph, NodeDataset):
        return graph.graph
    if is_dgl_graph(graph) or is_pyg_data(graph):
        converted = Graph.from_dgl(graph) if is_dgl_graph(graph) else Graph.from_pyg(graph)
        src, dst = converted.edges()
        looped = torch.zeros(converted.num_nodes, dtype=torch.bool).index_fill_(0, src[src == dst].cpu(), True)
        if not bool(looped.all()):
            _logger.warning("%s: %d of %d nodes have no self-loop, but GraphMAE2 trains with one per "
                            "node; embed graphmae2.datasets.as_node_dataset(graph) to get the training "
                            "graph's form", type(graph).__name__, int((~looped).sum()), converted.num_nodes)
        return converted
    raise TypeError(f"expected a graphmae2.Graph, NodeDataset, dgl.DGLGraph or torch_geometric Data, "
                    f"got {type(graph).__name__}")


def graph_and_features(graph: Any, x: Optional[Tensor]) -> Tuple[Graph, Tensor]:
    """``(Graph, x)``; without ``x``, the features the graph object carries
    (``NodeDataset.x``, PyG ``data.x``, DGL ``ndata["feat"]``)."""
    if x is None:
        if isinstance(graph, NodeDataset) or is_pyg_data(graph):
            x = graph.x
        elif is_dgl_graph(graph):
            x = next((graph.ndata[k] for k in DGL_FEATURE_KEYS if k in graph.ndata), None)
        if x is None:
            raise ValueError(f"no features given and the {type(graph).__name__} carries none; "
                             f"pass x [num_nodes, num_features]")
    return as_graph(graph), x


class PretrainedEncoder(nn.Module):
    """The encoder of a GraphMAE2 checkpoint, with the config it was trained with.

    ``encoder(graph, x) -> [num_nodes, out_dim]``; ``graph`` may be a
    :class:`~graphmae2.Graph`, a ``NodeDataset``, a ``dgl.DGLGraph`` or a PyG ``Data``
    (``x`` defaults to its features); ``x`` holds raw features (they are scaled with the
    checkpoint's ``data.feature_norm`` here). Features of the wrong width or row count
    are refused in one line. GraphMAE2 trains with one self-loop per node, so give the
    graph self-loops (``Graph.add_self_loops``) as the datasets do.
    """

    def __init__(self, encoder: nn.Module, config: Config) -> None:
        super().__init__()
        self.encoder = encoder
        self.config = config
        self.in_dim = encoder.layers[0].in_dim
        self.out_dim = encoder.out_dim

    def forward(self, graph: Any, x: Optional[Tensor] = None) -> Tensor:
        graph, x = graph_and_features(graph, x)
        self.check_input(graph, x)
        x = normalize_features(x, self.config.data.feature_norm)  # as in training
        return self.encoder(graph.to(x.device), x)

    def check_input(self, graph: Graph, x: Tensor) -> None:
        """One-line ``ValueError`` when ``x`` cannot be this encoder's input on ``graph``
        (instead of a matmul shape error from inside the first layer)."""
        trained_on = f"data.dataset={self.config.data.dataset}"
        if x.dim() != 2 or not x.is_floating_point():
            raise ValueError(f"features must be a 2-D float tensor [num_nodes, {self.in_dim}], "
                             f"got {x.dtype} of shape {tuple(x.shape)}")
        if x.shape[1] != self.in_dim:
            raise ValueError(f"features have {x.shape[1]} columns but the encoder was trained on "
                             f"{self.in_dim} ({trained_on}); pass the same feature columns, in the same order")
        if x.shape[0] != graph.num_nodes:
            raise ValueError(f"the graph has {graph.num_nodes} nodes but x has {x.shape[0]} feature rows; "
                             f"give one row per node, in node-id order")


def load_encoder(path: Union[str, os.PathLike], device: Union[str, torch.device] = "cpu") -> PretrainedEncoder:
    """Load the encoder of a checkpoint (a ``checkpoint.pt`` or a run directory), in eval mode.

    Checkpoints trained on a GPU load on the CPU. Reads with ``weights_only=True``;
    a corrupted or foreign file raises a one-line :class:`CheckpointError`.
    """
    state = load_checkpoint(path, map_location=device)
    try:
        cfg = Config.from_dict(state["config"], source=f"{path} (stored config)")
    except ConfigError as exc:
        raise CheckpointError(f"{path}: stored config does not match this graphmae2 version: {exc}") from None
    with torch.random.fork_rng(devices=[]):  # the weights come from the checkpoint, not the caller's RNG
        model = GraphMAE2(int(state["in_dim"]), cfg.model)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(f"{path}: weights do not match the stored config: {first}") from None
    return PretrainedEncoder(model.encoder, cfg).to(device).eval()


@torch.no_grad()
def embed(encoder: nn.Module, graph: Any, x: Optional[Tensor] = None) -> Tensor:
    """Embeddings of every node from ``encoder`` in eval mode: ``[N, F] -> [N, out_dim]``.

    ``graph`` is a :class:`Graph`, a ``NodeDataset``, a ``dgl.DGLGraph`` or a PyG ``Data``;
    without ``x``, its own features are used.
    """
    graph, x = graph_and_features(graph, x)
    with eval_mode(encoder):
        return encoder(graph.to(x.device), x)
