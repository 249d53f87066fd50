"""Pre-train GraphMAE2 on your own graph, then classify its nodes with scikit-learn.

    python examples/own_graph.py                 # arrays -> NodeDataset.from_arrays
    python examples/own_graph.py --pyg           # the same graph as a torch_geometric Data
    python examples/own_graph.py --nodes 2000 --epochs 300 --hidden 256

The graph is generated here (communities with class-correlated features); put yours in
its place: arrays (x, edge_index), a PyG Data, a DGL graph, or the path of a .npz file.
Pre-training needs no labels; they are used only by the classifier at the end.
"""
import argparse

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

import graphmae2
from graphmae2.datasets import NodeDataset

parser = argparse.ArgumentParser()
parser.add_argument("--nodes", type=int, default=600)
parser.add_argument("--classes", type=int, default=4)
parser.add_argument("--epochs", type=int, default=100)
parser.add_argument("--hidden", type=int, default=64)
parser.add_argument("--pyg", action="store_true", help="hand the graph over as a torch_geometric Data")
args = parser.parse_args()

# A graph: 8 edges per node, 70% of them inside the node's class; class-centred features
# under so much noise that a node's own features classify it poorly: its neighbours must help.
rng = np.random.default_rng(0)
n = args.nodes
y = rng.integers(0, args.classes, n)
members = [np.flatnonzero(y == c) for c in range(args.classes)]
src = np.repeat(np.arange(n), 8)
same_class = np.array([rng.choice(members[c]) for c in y[src]])
dst = np.where(rng.random(src.size) < 0.7, same_class, rng.integers(0, n, src.size))
edge_index = np.stack([src, dst])                                      # [2, E], as PyG stores edges
x = rng.normal(size=(args.classes, 32))[y] + 4.0 * rng.normal(size=(n, 32))   # [N, 32]

if args.pyg:
    from torch_geometric.data import Data

    data = Data(x=torch.tensor(x, dtype=torch.float32), edge_index=torch.tensor(edge_index))
else:
    data = NodeDataset.from_arrays(x, edge_index, name="generated")    # no labels: self-supervised

result = graphmae2.pretrain(data, config="cora.yaml", seeds=[0], device="cpu", overrides=[
    f"train.max_epoch={args.epochs}", f"model.num_hidden={args.hidden}", "model.num_heads=4",
    "model.projector_hidden=64", "train.precision=fp32"])
print(result.note)                                                     # no labels: no probe ran
z = result.embed().numpy()                                             # [N, hidden]


def accuracy(features: np.ndarray) -> float:
    """Logistic regression trained on half the nodes, scored on the other half."""
    f_train, f_test, y_train, y_test = train_test_split(features, y, test_size=0.5, random_state=0, stratify=y)
    return LogisticRegression(max_iter=2000).fit(f_train, y_train).score(f_test, y_test)


print(f"raw features: test_acc {accuracy(x):.4f}")
print(f"test_acc: {accuracy(z):.4f} (logistic regression on {z.shape[1]}-d embeddings)")
