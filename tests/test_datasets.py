"""Tests for graphmae2.datasets: shipped Planetoid data, safe raw parsing, download, validation."""
from __future__ import annotations

import functools
import hashlib
import http.server
import logging
import os
import pickle
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import load_benchmark

from graphmae2.datasets import DownloadError, NodeDataset, fetch_planetoid, load_dataset
from graphmae2.datasets.planetoid import download as download_mod
from graphmae2.datasets.planetoid.checksums import read_sha256sums, write_sha256sums
from graphmae2.datasets.planetoid.packaged import load_packaged
from graphmae2.datasets.planetoid.raw import planetoid_files, read_planetoid_raw
from graphmae2.datasets.planetoid.safe_pickle import safe_loads

build = load_benchmark("build_packaged", "scripts").build

RAW_DIR = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets" / "planetoid"
DATA_DIR = Path(__file__).resolve().parents[1] / "graphmae2" / "datasets" / "planetoid" / "data"
needs_raw = pytest.mark.skipif(not (RAW_DIR / "SHA256SUMS").is_file(),
                               reason=f"raw Planetoid files not found in {RAW_DIR}")


@pytest.fixture(scope="module")
def cora() -> NodeDataset:
    return load_dataset("cora")


def _copy_raw(name: str, dst: Path, rename_to: str | None = None) -> Path:
    """Copy ``ind.<name>.*`` to ``dst`` (optionally as ``ind.<rename_to>.*``) with SHA256SUMS."""
    dst.mkdir(parents=True, exist_ok=True)
    sums = {}
    for fname, new in zip(planetoid_files(name), planetoid_files(rename_to or name)):
        shutil.copyfile(RAW_DIR / fname, dst / new)
        sums[new] = hashlib.sha256((dst / new).read_bytes()).hexdigest()
    write_sha256sums(dst / "SHA256SUMS", sums)
    return dst


# ----------------------------------------------------------------- shipped datasets
def test_cora_has_standard_sizes_and_split(cora: NodeDataset) -> None:
    assert (cora.num_nodes, cora.num_features, cora.num_classes) == (2708, 1433, 7)
    assert cora.x.dtype == torch.float32 and cora.y.dtype == torch.int64
    assert cora.graph.num_edges == 10556 + 2708
    assert [int(m.sum()) for m in (cora.train_mask, cora.val_mask, cora.test_mask)] == [140, 500, 1000]
    assert torch.bincount(cora.y[cora.train_mask]).tolist() == [20] * 7


def test_citeseer_has_standard_sizes_and_leaves_missing_test_ids_out_of_every_split() -> None:
    ds = load_dataset("citeseer", self_loops=False)
    assert (ds.num_nodes, ds.num_features, ds.num_classes) == (3327, 3703, 6)
    assert ds.graph.num_edges == 9104
    masks = (ds.train_mask, ds.val_mask, ds.test_mask)
    assert [int(m.sum()) for m in masks] == [120, 500, 1000]
    in_none = ~(ds.train_mask | ds.val_mask | ds.test_mask)
    missing = in_none[2312:]  # the test-id range starts after allx's 2312 rows
    assert int(missing.sum()) == 15
    assert bool((ds.x[2312:][missing] == 0).all()) and bool((ds.y[2312:][missing] == 0).all())


def test_splits_are_disjoint(cora: NodeDataset) -> None:
    total = cora.train_mask.long() + cora.val_mask.long() + cora.test_mask.long()
    assert int(total.max()) == 1


def test_graph_is_undirected_deduplicated_with_one_self_loop_per_node(cora: NodeDataset) -> None:
    src, dst = cora.graph.edges()
    keys = src * cora.num_nodes + dst
    assert torch.unique(keys).numel() == keys.numel()
    assert torch.equal(torch.sort(keys).values, torch.sort(dst * cora.num_nodes + src).values)
    loops = src[src == dst]
    assert torch.equal(torch.sort(loops).values, torch.arange(cora.num_nodes))
    no_loops = load_dataset("cora", self_loops=False).graph
    assert no_loops.num_edges == 10556 and not bool((no_loops.src == no_loops.dst).any())


def test_dataset_name_is_case_insensitive() -> None:
    assert load_dataset("CiteSeer").name == "citeseer"


def test_unknown_dataset_name_lists_known_names() -> None:
    with pytest.raises(ValueError, match=r"unknown dataset 'reddit'.*cora, citeseer, pubmed"):
        load_dataset("reddit")


@pytest.mark.parametrize("name", ["cora", "citeseer"])
def test_packaged_npz_loads_without_pickle_and_is_small(name: str) -> None:
    path = DATA_DIR / f"{name}.npz"
    assert path.stat().st_size < 1_000_000
    with np.load(path, allow_pickle=False) as npz:
        assert all(npz[key].dtype != object for key in npz.files)


@needs_raw
@pytest.mark.parametrize("name", ["cora", "citeseer"])
def test_packaged_data_equals_raw_files(name: str) -> None:
    raw, packed = read_planetoid_raw(name, RAW_DIR), load_packaged(name)
    assert raw.keys() == packed.keys()
    for key in raw:
        np.testing.assert_array_equal(raw[key], packed[key], err_msg=key)


@needs_raw
def test_build_packaged_reproduces_shipped_files(tmp_path: Path) -> None:
    assert build(RAW_DIR, tmp_path) == read_sha256sums(DATA_DIR / "SHA256SUMS")


# ------------------------------------------------------------ raw-file safety
class _RunsShell:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


@needs_raw
def test_malicious_pickle_is_refused_and_not_executed(tmp_path: Path) -> None:
    raw = _copy_raw("cora", tmp_path / "raw")
    marker = tmp_path / "pwned"
    (raw / "ind.cora.x").write_bytes(pickle.dumps(_RunsShell(f"touch {marker}"), protocol=2))
    sums = read_sha256sums(raw / "SHA256SUMS")
    sums["ind.cora.x"] = hashlib.sha256((raw / "ind.cora.x").read_bytes()).hexdigest()
    write_sha256sums(raw / "SHA256SUMS", sums)  # checksum passes: the unpickler must stop it
    with pytest.raises(pickle.UnpicklingError,
                       match=r"ind\.cora\.x: refused to load global '(posix|os|nt)\.system'"):
        read_planetoid_raw("cora", raw)
    assert not marker.exists()


@pytest.mark.parametrize("payload", [
    b"cbuiltins\neval\n(S'1+1'\ntR.",
    b"csubprocess\nPopen\n((S'true'\nltR.",
    b"cnumpy\nload\n(S'x'\ntR.",
])
def test_restricted_unpickler_refuses_globals_outside_the_allow_list(payload: bytes) -> None:
    with pytest.raises(pickle.UnpicklingError, match=r"evil\.pkl: refused to load global"):
        safe_loads(payload, "evil.pkl")


@needs_raw
def test_checksum_mismatch_names_file_and_digests(tmp_path: Path) -> None:
    raw = _copy_raw("cora", tmp_path)
    with open(raw / "ind.cora.graph", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ValueError, match=r"SHA-256 mismatch for .*ind\.cora\.graph: expected "
                                         r"58f13302\w+, got \w{64}\. Replace"):
        read_planetoid_raw("cora", raw)


@needs_raw
def test_file_without_recorded_checksum_is_not_parsed(tmp_path: Path) -> None:
    raw = _copy_raw("cora", tmp_path)
    sums = read_sha256sums(raw / "SHA256SUMS")
    del sums["ind.cora.ty"]
    write_sha256sums(raw / "SHA256SUMS", sums)
    with pytest.raises(ValueError, match=r"no digest for ind\.cora\.ty"):
        read_planetoid_raw("cora", raw)


# ------------------------------------------------------------------ download
class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch):
    """Serve a directory on 127.0.0.1 and point PLANETOID_URL at it; never the internet."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "*")
    servers = []

    def start(directory: Path) -> str:
        handler = functools.partial(_QuietHandler, directory=str(directory))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        url = f"http://127.0.0.1:{server.server_address[1]}"
        monkeypatch.setattr(download_mod, "PLANETOID_URL", url)
        return url

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@needs_raw
def test_pubmed_download_trusts_first_use_and_records_digests(
        tmp_path: Path, serve, caplog: pytest.LogCaptureFixture) -> None:
    site = _copy_raw("cora", tmp_path / "site", rename_to="pubmed")  # Planetoid format, small
    serve(site)
    with caplog.at_level(logging.WARNING, logger="graphmae2.datasets.planetoid.download"):
        ds = load_dataset("PubMed", root=tmp_path / "cache")
    assert (ds.name, ds.num_nodes, ds.graph.num_edges) == ("pubmed", 2708, 10556 + 2708)
    cache = tmp_path / "cache" / "planetoid"
    assert read_sha256sums(cache / "SHA256SUMS") == read_sha256sums(site / "SHA256SUMS")
    assert sorted(p.name for p in cache.iterdir()) == sorted([*planetoid_files("pubmed"), "SHA256SUMS"])
    assert "no known SHA-256 for ind.pubmed.x" in caplog.text


@needs_raw
def test_pubmed_cache_tampered_after_first_use_is_refused(tmp_path: Path, serve) -> None:
    serve(_copy_raw("cora", tmp_path / "site", rename_to="pubmed"))
    cache = fetch_planetoid("pubmed", root=tmp_path / "cache")
    (cache / "ind.pubmed.allx").write_bytes(b"tampered")
    with pytest.raises(ValueError, match=r"SHA-256 mismatch for .*ind\.pubmed\.allx \(cached\)"):
        load_dataset("pubmed", root=tmp_path / "cache")


@needs_raw
def test_download_with_wrong_pinned_digest_is_not_kept(tmp_path: Path, serve) -> None:
    serve(_copy_raw("cora", tmp_path / "site", rename_to="pubmed"))
    with pytest.raises(ValueError, match=r"ind\.pubmed\.x \(downloaded from http://127\.0\.0\.1:\d+"
                                         r"/ind\.pubmed\.x\): expected 0{64}"):
        fetch_planetoid("pubmed", root=tmp_path / "cache", checksums={"ind.pubmed.x": "0" * 64})
    assert list((tmp_path / "cache" / "planetoid").glob("ind.pubmed.x*")) == []


def test_failed_download_names_file_url_and_where_to_place_it(tmp_path: Path, serve) -> None:
    empty = tmp_path / "site"
    empty.mkdir()
    serve(empty)
    cache = tmp_path / "cache" / "planetoid"
    with pytest.raises(DownloadError, match=r"could not download ind\.pubmed\.x from http://"
                                            r"127\.0\.0\.1:\d+/ind\.pubmed\.x: HTTP Error 404.*"
                                            + str(cache).replace(".", r"\.")):
        fetch_planetoid("pubmed", root=tmp_path / "cache")
    assert list(cache.iterdir()) == []  # no partial file left behind


# ---------------------------------------------------------------- validation
def _tiny(**overrides) -> NodeDataset:
    """4-node path graph, 3 features, 2 classes, one node per split (node 3 in none)."""
    args = dict(
        name="tiny", x=np.eye(4, 3, dtype=np.float32), y=np.array([0, 1, 0, 1]),
        edges=(np.array([0, 1, 2]), np.array([1, 2, 3])),
        train_mask=np.array([True, False, False, False]),
        val_mask=np.array([False, True, False, False]),
        test_mask=np.array([False, False, True, False]), num_classes=2)
    args.update(overrides)
    return NodeDataset.from_arrays(**args)


def test_tiny_dataset_is_valid_and_gets_undirected_edges_with_self_loops() -> None:
    ds = _tiny()
    assert (ds.num_nodes, ds.num_features, ds.graph.num_edges) == (4, 3, 6 + 4)


def test_nan_feature_is_rejected_with_its_position() -> None:
    x = np.eye(4, 3, dtype=np.float32)
    x[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"'tiny': x has 1 NaN/Inf value\(s\), first at node 2, feature 1"):
        _tiny(x=x)


def test_label_out_of_range_is_rejected_with_count_and_first_node() -> None:
    with pytest.raises(ValueError, match=r"2 label\(s\) outside \[0, 2\), first at node 1: 5"):
        _tiny(y=np.array([0, 5, 0, -1]))


def test_feature_row_count_must_match_nodes() -> None:
    with pytest.raises(ValueError, match=r"x has 4 feature rows but the graph has 5 nodes"):
        _tiny(num_nodes=5)


def test_empty_split_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"val_mask selects no node"):
        _tiny(val_mask=np.zeros(4, dtype=bool))


def test_overlapping_splits_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"train_mask and test_mask share 1 node\(s\), first 0"):
        _tiny(test_mask=np.array([True, False, False, False]))


def test_row_feature_norm_scales_rows_to_unit_l1_and_memmap_rows_agree(tmp_path: Path) -> None:
    from graphmae2.datasets.features import RowNormalized, normalize_features

    x = torch.tensor([[1.0, 3.0, 0.0], [0.0, 0.0, 0.0], [2.0, 0.0, 2.0]])
    y = normalize_features(x, "row")
    assert torch.equal(y, torch.tensor([[0.25, 0.75, 0.0], [0.0, 0.0, 0.0], [0.5, 0.0, 0.5]]))
    assert normalize_features(x, "none") is x
    with pytest.raises(ValueError, match="feature_norm='l2'.*allowed: none, row"):
        normalize_features(x, "l2")
    np.save(tmp_path / "x.npy", x.numpy())
    view = RowNormalized(np.load(tmp_path / "x.npy", mmap_mode="r"))
    assert view.shape == (3, 3) and view.ndim == 2 and len(view) == 3
    assert np.array_equal(view[np.array([2, 0])], y[[2, 0]].numpy())
