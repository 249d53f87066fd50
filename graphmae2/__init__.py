"""GraphMAE2 self-supervised graph pre-training in plain PyTorch.

Public API::

    from graphmae2 import load_dataset, load_encoder, embed, pretrain
    data = load_dataset("cora")
    encoder = load_encoder("runs/cora-.../checkpoint.pt")
    z = embed(encoder, data.graph, data.x)          # [num_nodes, hidden]
    result = pretrain(pyg_data, config="cora.yaml")  # your own graph: result.encoder, .embed()
"""
from .datasets import load_dataset
from .graph import Graph
from .model import GraphMAE2
from .pretrained import embed, load_encoder
from .pretraining import Pretrained, pretrain
from .seeding import seed_everything

__all__ = ["GraphMAE2", "Graph", "Pretrained", "load_dataset", "seed_everything", "load_encoder", "embed",
           "pretrain"]
__version__ = "0.1.0"
