"""Using a pre-trained encoder in your own code: load it, embed nodes."""
from __future__ import annotations

import os
from typing import Any, Dict, Union

import torch
from torch import Tensor, nn

from .checkpoint import CheckpointError, load_checkpoint
from .config import Config, ConfigError
from .datasets.features import normalize_features
from .graph import Graph
from .model import GraphMAE2


def as_graph(graph: Any) -> Graph:
    """A :class:`Graph` as is; a ``dgl.DGLGraph`` converted (every edge kept)."""
    if isinstance(graph, Graph):
        return graph
    if type(graph).__module__.startswith("dgl"):
        return Graph.from_dgl(graph)
    raise TypeError(f"expected a graphmae2.Graph or a dgl.DGLGraph, got {type(graph).__name__}")


class PretrainedEncoder(nn.Module):
    """The encoder of a GraphMAE2 checkpoint, with the config it was trained with.

    ``encoder(graph, x) -> [num_nodes, out_dim]``; ``graph`` may be a
    :class:`~graphmae2.Graph` or a ``dgl.DGLGraph``; ``x`` holds raw features (they are
    scaled with the checkpoint's ``data.feature_norm`` here). GraphMAE2 trains with one
    self-loop per node, so give the graph self-loops (``Graph.add_self_loops``) as the
    datasets do.
    """

    def __init__(self, encoder: nn.Module, config: Config) -> None:
        super().__init__()
        self.encoder = encoder
        self.config = config
        self.out_dim = encoder.out_dim

    def forward(self, graph: Any, x: Tensor) -> Tensor:
        x = normalize_features(x, self.config.data.feature_norm)  # as in training
        return self.encoder(as_graph(graph).to(x.device), x)


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
    model = GraphMAE2(int(state["in_dim"]), cfg.model)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(f"{path}: weights do not match the stored config: {first}") from None
    return PretrainedEncoder(model.encoder, cfg).to(device).eval()


@torch.no_grad()
def embed(encoder: nn.Module, graph: Any, x: Tensor) -> Tensor:
    """Embeddings of every node from ``encoder`` in eval mode: ``[N, F] -> [N, out_dim]``."""
    was_training = encoder.training
    encoder.eval()
    try:
        return encoder(as_graph(graph).to(x.device), x)
    finally:
        encoder.train(was_training)


def checkpoint_info(path: Union[str, os.PathLike]) -> Dict[str, Any]:
    """Seed, epoch and config of a checkpoint without building the model."""
    state = load_checkpoint(path)
    return {"seed": state["seed"], "epoch": state["epoch"], "config": state["config"]}
