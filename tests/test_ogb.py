"""Tests for graphmae2.datasets.ogb: a tiny file set in OGB's raw layout."""
from __future__ import annotations

import gzip
from pathlib import Path

import pytest
import torch

from graphmae2.datasets.ogb import load_ogb_raw

EDGES = [(0, 1), (1, 2), (2, 0), (3, 4), (4, 5), (5, 3), (2, 3)]  # directed, as arxiv's
LABELS = [0, 0, 1, 2, 2, 1]
SPLIT = {"train": [0, 3], "valid": [1, 4], "test": [2, 5]}


def _write(path: Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as f:
        f.writelines(",".join(str(v) for v in row) + "\n" for row in rows)


def _ogb_dir(root: Path, folder: str = "ogbn_arxiv", scheme: str = "time") -> Path:
    d = root / folder
    _write(d / "raw/edge.csv.gz", EDGES)
    _write(d / "raw/node-feat.csv.gz", [[i, -0.5 * i, 1.25] for i in range(6)])
    _write(d / "raw/node-label.csv.gz", [[c] for c in LABELS])
    _write(d / "raw/num-node-list.csv.gz", [[6]])
    _write(d / "raw/num-edge-list.csv.gz", [[len(EDGES)]])
    for part, ids in SPLIT.items():
        _write(d / f"split/{scheme}/{part}.csv.gz", [[i] for i in ids])
    return d


def test_load_ogb_raw_reads_the_raw_layout_and_symmetrises(tmp_path: Path) -> None:
    _ogb_dir(tmp_path)
    ds = load_ogb_raw("ogbn-arxiv", tmp_path, self_loops=False)
    assert (ds.name, ds.num_nodes, ds.num_features, ds.num_classes) == ("ogbn-arxiv", 6, 3, 3)
    assert torch.equal(ds.x[:, 0], torch.arange(6, dtype=torch.float32))
    assert torch.equal(ds.x[4], torch.tensor([4.0, -2.0, 1.25]))
    assert ds.y.tolist() == LABELS
    src, dst = ds.graph.edges()
    pairs = set(zip(src.tolist(), dst.tolist()))
    assert pairs == set(EDGES) | {(b, a) for a, b in EDGES}
    for part, mask in zip(SPLIT, (ds.train_mask, ds.val_mask, ds.test_mask)):
        assert mask.nonzero().flatten().tolist() == SPLIT[part]


def test_load_ogb_raw_adds_self_loops_by_default(tmp_path: Path) -> None:
    _ogb_dir(tmp_path)
    ds = load_ogb_raw("ogbn-arxiv", tmp_path)
    assert ds.graph.num_edges == 2 * len(EDGES) + 6


def test_load_ogb_raw_accepts_the_folder_as_unzipped(tmp_path: Path) -> None:
    _ogb_dir(tmp_path, folder="products", scheme="sales_ranking")
    assert load_ogb_raw("ogbn-products", tmp_path).num_nodes == 6


def test_missing_file_error_names_the_file_and_the_download(tmp_path: Path) -> None:
    d = _ogb_dir(tmp_path)
    (d / "raw/node-label.csv.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing OGB file .*node-label\.csv\.gz\. "
                                                r"Download http://snap\.stanford\.edu/ogb/data/"
                                                r"nodeproppred/arxiv\.zip"):
        load_ogb_raw("ogbn-arxiv", tmp_path)
    with pytest.raises(FileNotFoundError, match=r"ogbn_products.*edge\.csv\.gz.*products\.zip"):
        load_ogb_raw("ogbn-products", tmp_path)


def test_bad_content_is_reported_with_the_file(tmp_path: Path) -> None:
    d = _ogb_dir(tmp_path)
    _write(d / "split/time/test.csv.gz", [[2], [6]])
    with pytest.raises(ValueError, match=r"test\.csv\.gz: 1 node id\(s\) outside \[0, 6\); "
                                         r"first on line 2: 6"):
        load_ogb_raw("ogbn-arxiv", tmp_path)
    _write(d / "raw/node-label.csv.gz", [[0]] * 5 + [["nan"]])
    with pytest.raises(ValueError, match="label\\(s\\) are not integers"):
        load_ogb_raw("ogbn-arxiv", tmp_path)


def test_unknown_name_lists_supported_datasets(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown OGB dataset 'ogbn-mag'; "
                                         "supported: ogbn-arxiv, ogbn-products"):
        load_ogb_raw("ogbn-mag", tmp_path)
