"""Node-classification datasets: Planetoid Cora, CiteSeer (shipped) and PubMed (downloaded).

>>> from graphmae2.datasets import load_dataset
>>> ds = load_dataset("cora")  # doctest: +SKIP
>>> ds.num_nodes, ds.num_features, ds.num_classes  # doctest: +SKIP
(2708, 1433, 7)
"""
from .download import PLANETOID_URL, DownloadError, fetch_planetoid
from .loader import KNOWN_DATASETS, feature_matrix, load_data, load_dataset
from .node_dataset import NodeDataset
from .planetoid import read_planetoid_raw

__all__ = ["KNOWN_DATASETS", "PLANETOID_URL", "DownloadError", "NodeDataset", "feature_matrix",
           "fetch_planetoid", "load_data", "load_dataset", "read_planetoid_raw"]
