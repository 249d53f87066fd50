"""benchmarks/accuracy/probe_selection.py: validation halves, selection, and the probe of a real run
probed again (it must reproduce the run's result.json, or the script stops)."""
import json

import pytest
import torch
from conftest import load_benchmark, tiny_overrides

from graphmae2.cli import main

probe_selection = load_benchmark("probe_selection")


def test_halves_split_the_validation_nodes_in_two_the_same_way_for_a_seed():
    val = torch.zeros(20, dtype=torch.bool)
    val[3:14] = True
    parts = probe_selection.halves(val, 3, seed=0)
    assert len(parts) == 6
    for a, b in zip(parts[::2], parts[1::2]):
        assert not (a & b).any() and torch.equal(a | b, val) and (int(a.sum()), int(b.sum())) == (5, 6)
    assert not torch.equal(parts[0], parts[2])  # each halving draws anew
    assert all(torch.equal(p, q) for p, q in zip(parts, probe_selection.halves(val, 3, seed=0)))


def test_select_scores_the_epoch_the_chooser_prefers_with_the_probes_ties():
    chooser = torch.tensor([0.5, 0.7, 0.6, 0.7], dtype=torch.float64)
    scored = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    assert probe_selection.select(chooser, scored, "first") == 0.2
    assert probe_selection.select(chooser, scored, "last") == 0.4


def test_a_run_probed_again_reproduces_its_result_and_is_paired_by_seed(tmp_path):
    for variant, extra in (("base", []), ("other", ["model.mask_rate=0.3"])):
        assert main(["--config", "cora.yaml", "--quiet", "--out", str(tmp_path / variant / "seed-0"),
                     "--set", *tiny_overrides(), *extra]) == 0
    datasets = {}
    found = {}
    for variant in ("base", "other"):
        ckpt = next((tmp_path / variant).glob("seed-0/*/seed-0/checkpoint.pt"))
        found[variant] = {0: probe_selection.measure(ckpt, 4, 0, datasets)}
        recorded = json.loads((ckpt.parent / "result.json").read_text())
        assert (found[variant][0]["val"], found[variant][0]["test"]) == (recorded["val_acc"], recorded["test_acc"])
        assert 0 < found[variant][0]["held"] <= 1
    text = probe_selection.table(found, "base")
    assert "| base |" in text and "| other |" in text and "held-out val − base" in text
    # A record the probe cannot reproduce stops the script instead of mixing runs.
    result = next((tmp_path / "base").glob("seed-0/*/seed-0/result.json"))
    record = json.loads(result.read_text())
    result.write_text(json.dumps({**record, "val_acc": record["val_acc"] + 0.01}))
    with pytest.raises(SystemExit, match="not the run's embeddings or probe"):
        probe_selection.measure(result.with_name("checkpoint.pt"), 4, 0, datasets)
