"""Node datasets: Planetoid Cora, CiteSeer (shipped) and PubMed (downloaded), synthetic and
OGB graphs, and your own graph (arrays, a ``.npz``/``.pt`` file, a PyG or DGL object).

>>> from graphmae2.datasets import load_dataset
>>> ds = load_dataset("cora")  # doctest: +SKIP
>>> ds.num_nodes, ds.num_features, ds.num_classes  # doctest: +SKIP
(2708, 1433, 7)
"""
from .convert import as_node_dataset
from .graph_file import read_graph_file
from .loader import KNOWN_DATASETS, feature_matrix, load_data, load_dataset
from .node_dataset import NodeDataset
from .planetoid import PLANETOID_URL, DownloadError, fetch_planetoid, read_planetoid_raw

__all__ = ["KNOWN_DATASETS", "PLANETOID_URL", "DownloadError", "NodeDataset", "as_node_dataset",
           "feature_matrix", "fetch_planetoid", "load_data", "load_dataset", "read_graph_file", "read_planetoid_raw"]
