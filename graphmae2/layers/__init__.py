"""Graph layers: one class per file, plus the small factories they share."""
from .common import eval_mode, make_activation, make_norm
from .gat import GAT, GATConv
from .gcn import GCN, GCNConv
from .mlp import MLP

__all__ = ["GAT", "GATConv", "GCN", "GCNConv", "MLP", "build_network", "eval_mode", "make_activation", "make_norm"]


def build_network(kind: str, **kwargs):
    """Build ``GAT``, ``GCN`` or ``MLP`` by name (``gat | gcn | mlp | linear``)."""
    kinds = {"gat": GAT, "gcn": GCN, "mlp": MLP, "linear": MLP}
    if kind not in kinds:
        raise ValueError(f"unknown network {kind!r}; allowed: {', '.join(kinds)}")
    if kind == "linear":
        kwargs["num_layers"] = 1
    unused = {"gat": (), "gcn": ("num_heads", "num_out_heads", "attn_drop", "negative_slope", "concat_out", "init")}
    for key in unused.get(kind, unused["gcn"] + ("residual",)):
        kwargs.pop(key, None)
    return kinds[kind](**kwargs)
