"""Sweeps: parsing and checking --sweep items, the grid, the sweep directory, resume."""
import csv
import json
import shutil
import sys

import pytest
import torch

import graphmae2.experiment as experiment
from graphmae2.config import Config, ConfigError, load_config
from graphmae2.sweep import (
    add_paired_differences,
    grid,
    is_sweep_dir,
    load_sweep_spec,
    parse_sweep,
    point_name,
    run_sweep,
)
from graphmae2.sweep_report import best_index, format_table, plot_sweep
from graphmae2.trainer import SeedRun

TINY = ["model.num_hidden=16", "model.num_heads=2", "model.projector_hidden=8", "model.num_remask=1",
        "train.max_epoch=2", "train.checkpoint_every=1", "eval.max_epoch=10"]
CPU = torch.device("cpu")


def _row(momentum, mean, n=2, val=0.5):
    return {"ema.momentum": momentum, "test_acc_mean": mean, "test_acc_std": 0.01, "val_acc_mean": val,
            "val_acc_std": 0.02, "n_seeds": n, "n_failed": 0, "seconds_mean": 1.25}


# ====== parse_sweep and grid ======

def test_parse_sweep_reads_values_as_schema_types():
    sweeps = parse_sweep(["ema.momentum=0,0.9,0.99,0.996,0.999,1", "model.encoder=gat, gcn",
                          "model.num_remask=1,2.0"])
    assert sweeps == [("ema.momentum", [0.0, 0.9, 0.99, 0.996, 0.999, 1.0]),
                      ("model.encoder", ["gat", "gcn"]), ("model.num_remask", [1, 2])]
    assert all(isinstance(v, float) for v in sweeps[0][1])
    assert all(isinstance(v, int) for v in sweeps[2][1])


@pytest.mark.parametrize("items,message", [
    (["ema.momentum"], "--sweep 'ema.momentum': no '='; expected section.key=v1,v2,..."),
    (["ema.momentum="], "--sweep 'ema.momentum=': empty value list; expected section.key=v1,v2"),
    (["=0.9"], "missing key before '='"),
    (["ema.momentum=0.9,,1"], "empty value between commas; expected section.key=v1,v2"),
    (["ema.momentum=0.9", "ema.momentum=0.99"],
     "--sweep 'ema.momentum=0.99': key ema.momentum is already swept by --sweep 'ema.momentum=0.9'"),
    (["ema.momentum=1,1.0"], "value 1.0 is given twice"),
    (["ema.momentum=0.9,2"], "--sweep: ema.momentum: 2.0 is out of range; allowed: float >= 0.0 and <= 1.0"),
    (["ema.momentun=0.9"], "unknown key 'ema.momentun' (did you mean 'ema.momentum'?)"),
    (["model.encoder=gat,sage"], "model.encoder: 'sage' is not allowed"),
    (["model.num_hidden=16,abc"], "model.num_hidden: 'abc' is not a valid value; allowed: int >= 1"),
    (["train.seeds=0,1"], "train.seeds cannot be swept: seeds are the repetitions of every point; use --seeds"),
    (["data.dataset=cora,citeseer"], "data.dataset cannot be swept"),
])
def test_parse_sweep_refuses_bad_items_with_one_line(items, message):
    with pytest.raises(ConfigError) as err:
        parse_sweep(items)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_grid_is_cartesian_product_in_given_order_last_key_fastest():
    base = load_config(None, TINY)
    points = grid(base, parse_sweep(["ema.momentum=0.9,0.99", "model.lam=0,0.5,1"]))
    assert [tuple(v.values()) for v, _ in points] == [
        (0.9, 0.0), (0.9, 0.5), (0.9, 1.0), (0.99, 0.0), (0.99, 0.5), (0.99, 1.0)]
    for values, cfg in points:
        assert (cfg.ema.momentum, cfg.model.lam) == (values["ema.momentum"], values["model.lam"])
        assert cfg.model.num_hidden == 16
    assert base.ema.momentum == 0.996 and base.model.lam == 0.1            # base is not touched
    assert point_name(points[1][0]) == "ema.momentum=0.9__model.lam=0.5"


def test_grid_checks_values_and_cross_key_rules_per_point():
    base = load_config(None, TINY)                                         # train.max_epoch=2
    with pytest.raises(ConfigError, match=r"ema.momentum: 2.0 is out of range"):
        grid(base, [("ema.momentum", [0.9, 2])])
    with pytest.raises(ConfigError, match=r"point ema.delay_epochs=5: ema.delay_epochs=5 exceeds "
                                          r"train.max_epoch=2"):
        grid(base, parse_sweep(["ema.delay_epochs=1,5"]))


def test_point_name_is_filesystem_safe_and_drops_trailing_zero():
    assert point_name({"ema.momentum": 1.0}) == "ema.momentum=1"
    assert point_name({"ema.momentum": 0.996, "model.residual": True}) == \
        "ema.momentum=0.996__model.residual=true"
    assert point_name({"data.root": "/tmp/a b:c"}) == "data.root=_tmp_a_b_c"


# ====== reports ======

def test_format_table_stars_the_best_validation_row_not_the_best_test_row():
    """Regression: the star followed test accuracy. m=0.99 has the best test mean, m=0.9
    the best validation mean: the star (and best_index) must go to 0.9, in its val column."""
    rows = [_row(0.9, 0.70, val=0.62), _row(0.99, 0.75, val=0.58), _row(1.0, 0.60, val=0.40)]
    assert best_index(rows) == 0
    lines = format_table(rows).splitlines()
    assert lines[0] == "| ema.momentum | test_acc | val_acc | seeds | seconds |"
    assert lines[2] == "| 0.9 | 0.7000 ± 0.0100 | **0.6200 ± 0.0200** ★ | 2 | 1.2 |"
    assert sum("★" in line for line in lines[:5]) == 1
    assert "chosen on validation" in lines[-1]


def test_rows_without_a_validation_metric_star_nothing():
    rows = [{"ema.momentum": 0.9, "nmi_mean": 0.4, "nmi_std": 0.0, "ari_mean": 0.3, "ari_std": 0.0,
             "n_seeds": 1, "n_failed": 0, "seconds_mean": 1.0}]
    assert best_index(rows) is None and "★" not in format_table(rows)


def test_plot_is_skipped_with_a_warning_without_matplotlib(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    assert plot_sweep([_row(0.9, 0.7)], tmp_path / "sweep.png") is False
    assert not (tmp_path / "sweep.png").exists()
    assert "pip install graphmae2[plot]" in caplog.text


# ====== run_sweep end to end ======

@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory, cora):
    """A tiny 2-value x 2-seed EMA-momentum sweep on Cora, run once for this module."""
    sweep_dir = tmp_path_factory.mktemp("sweep") / "cora-sweep"
    base = load_config(None, TINY)
    sweeps = parse_sweep(["ema.momentum=0,0.996"])
    rows = run_sweep(base, sweeps, [0, 1], sweep_dir, CPU, data=cora, progress=False)
    return sweep_dir, base, sweeps, rows


def test_run_sweep_writes_point_dirs_csv_markdown_and_plot(finished_sweep):
    sweep_dir, _, _, rows = finished_sweep
    for point in ("ema.momentum=0", "ema.momentum=0.996"):
        for seed in (0, 1):
            assert (sweep_dir / point / f"seed-{seed}" / "result.json").is_file()
        metrics = json.loads((sweep_dir / point / "metrics.json").read_text())
        assert metrics["n_seeds"] == 2 and set(metrics["seeds"]) == {"0", "1"}
        assert "seeds:\n  - 0\n  - 1" in (sweep_dir / point / "config.yaml").read_text()
    with open(sweep_dir / "sweep.csv") as fh:
        table = list(csv.DictReader(fh))
    assert [r["ema.momentum"] for r in table] == ["0.0", "0.996"]
    assert {"test_acc_mean", "test_acc_std", "val_acc_mean", "val_acc_std", "n_seeds",
            "seconds_mean"} <= set(table[0])
    assert all(r["n_seeds"] == "2" for r in table)
    expected = json.loads((sweep_dir / "ema.momentum=0.996" / "metrics.json").read_text())["test_acc_mean"]
    assert float(table[1]["test_acc_mean"]) == pytest.approx(expected)
    md = (sweep_dir / "sweep.md").read_text()
    assert sum("★" in line for line in md.splitlines() if line.startswith("|")) == 1
    assert md.startswith(format_table(rows) + "\n\nPer seed, validation / test accuracy:")
    r = json.loads((sweep_dir / "ema.momentum=0" / "seed-1" / "result.json").read_text())
    assert f"1: {r['val_acc']:.4f} / {r['test_acc']:.4f}" in md
    assert (sweep_dir / "sweep.png").stat().st_size > 0


def test_sweep_spec_round_trips_for_resume(finished_sweep):
    sweep_dir, base, sweeps, _ = finished_sweep
    assert is_sweep_dir(sweep_dir) and not is_sweep_dir(sweep_dir / "ema.momentum=0")
    loaded_base, loaded_sweeps, seeds = load_sweep_spec(sweep_dir)
    assert loaded_base.to_dict() == base.to_dict()
    assert loaded_sweeps == sweeps and seeds == [0, 1]
    with pytest.raises(FileNotFoundError, match="no sweep.json there; not a sweep directory"):
        load_sweep_spec(sweep_dir / "ema.momentum=0")


def test_run_sweep_refuses_to_overwrite_or_resume_a_different_sweep(finished_sweep, cora):
    sweep_dir, base, sweeps, _ = finished_sweep
    with pytest.raises(FileExistsError, match="already holds a sweep; resume it with --resume"):
        run_sweep(base, sweeps, [0, 1], sweep_dir, CPU, data=cora, progress=False)
    with pytest.raises(ConfigError, match="differ from its sweep.json"):
        run_sweep(base, sweeps, [0, 1, 2], sweep_dir, CPU, data=cora, resume=True, progress=False)


def test_resume_runs_only_the_missing_point_and_seed(finished_sweep, cora, tmp_path, monkeypatch):
    sweep_dir = tmp_path / "copy"
    shutil.copytree(finished_sweep[0], sweep_dir)
    missing = sweep_dir / "ema.momentum=0.996" / "seed-1" / "result.json"
    before = json.loads(missing.read_text())
    missing.unlink()
    others = {p: p.stat().st_mtime_ns for p in sweep_dir.glob("*/seed-*/result.json")}
    calls = []
    real = experiment.run_seed

    def counting(cfg, data, seed, device, seed_dir, resume, *args, **kwargs):
        calls.append((seed_dir.parent.name, seed, resume))
        return real(cfg, data, seed, device, seed_dir, resume, *args, **kwargs)

    monkeypatch.setattr(experiment, "run_seed", counting)
    configs = {p: (p / "config.yaml").read_text() for p in sweep_dir.glob("ema.momentum=*")}
    base, sweeps, seeds = load_sweep_spec(sweep_dir)
    rows = run_sweep(base, sweeps, seeds, sweep_dir, CPU, data=cora, resume=True, progress=False)
    assert calls == [("ema.momentum=0.996", 1, True)]
    assert {p: (p / "config.yaml").read_text() for p in configs} == configs
    assert {p: p.stat().st_mtime_ns for p in others} == others
    # The seed's checkpoint was final, so resuming repeats its evaluation exactly.
    assert json.loads(missing.read_text())["test_acc"] == before["test_acc"]
    assert [r["n_seeds"] for r in rows] == [2, 2]
    assert [r["test_acc_mean"] for r in rows] == [r["test_acc_mean"] for r in finished_sweep[3]]


def test_parse_sweep_leaves_the_given_base_untouched():
    base = Config()
    base.ema.momentum = 0.5
    assert parse_sweep(["ema.momentum=0.9"], base) == [("ema.momentum", [0.9])]
    assert base.ema.momentum == 0.5


def test_diverged_run_is_counted_left_out_of_means_and_the_sweep_goes_on(tmp_path, cora, monkeypatch,
                                                                          caplog):
    from graphmae2.trainer import NonFiniteLossError

    def fake(cfg, data, seed, device, seed_dir, *args, **kwargs):
        if cfg.ema.momentum == 0.0 and seed == 1:
            raise NonFiniteLossError("non-finite loss at epoch 1 (seed 1): rec = nan")
        seed_dir.mkdir(parents=True)
        (seed_dir / "checkpoint.pt").write_bytes(b"")
        return SeedRun(seed, cfg, None, None, scores={"test_acc": 0.5 + seed / 10, "val_acc": 0.4, "seconds": 2.0})

    monkeypatch.setattr(experiment, "run_seed", fake)
    rows = run_sweep(load_config(None, TINY), parse_sweep(["ema.momentum=0,1"]), [0, 1], tmp_path,
                     CPU, data=cora, progress=False)
    assert [(r["n_seeds"], r["n_failed"]) for r in rows] == [(1, 1), (2, 0)]
    assert rows[0]["test_acc_mean"] == pytest.approx(0.5) and rows[1]["test_acc_mean"] == pytest.approx(0.55)
    assert "ema.momentum=0 seed 1 diverged and is left out of the means" in caplog.text
    assert "1 (1 diverged)" in (tmp_path / "sweep.md").read_text()


def test_sweep_over_an_unlabelled_graph_tabulates_no_accuracy_and_chooses_nothing(tmp_path):
    """A graph without labels pre-trains at every point; the table says why no point is
    chosen instead of printing ``nan ± nan``."""
    from graphmae2.datasets import NodeDataset

    gen = torch.Generator().manual_seed(0)
    src = torch.arange(24)
    data = NodeDataset.from_arrays(torch.rand(24, 6, generator=gen), torch.stack([src, (src + 1) % 24]))
    rows = run_sweep(load_config(None, TINY), parse_sweep(["ema.momentum=0,1"]), [0], tmp_path, CPU,
                     data=data, progress=False)
    assert best_index(rows) is None and [r["n_seeds"] for r in rows] == [1, 1]
    table = (tmp_path / "sweep.md").read_text()
    assert "nan" not in table and "★" not in table
    assert "| 0 | — | — |" in table and "no labels or no validation split" in table


def test_paired_difference_is_over_shared_seeds_with_its_standard_error():
    rows = [{"ema.momentum": 0.0}, {"ema.momentum": 1.0}, {"ema.momentum": 0.5}]
    per_seed = [{"0": {"val_acc": 0.70}, "1": {"val_acc": 0.72}},
                {"0": {"val_acc": 0.74}, "1": {"val_acc": 0.71}, "2": {"val_acc": 0.90}},  # seed 2: unpaired
                {"1": {"val_acc": 0.80}}]
    add_paired_differences(rows, per_seed)
    assert rows[0]["val_acc_diff"] != rows[0]["val_acc_diff"]  # NaN: the baseline
    assert rows[1]["val_acc_diff"] == pytest.approx(0.015)      # (+0.04 - 0.01) / 2
    assert rows[1]["val_acc_diff_se"] == pytest.approx(0.025)   # sd 0.0354 / sqrt(2)
    assert rows[2]["val_acc_diff"] == pytest.approx(0.08) and rows[2]["val_acc_diff_se"] != rows[2]["val_acc_diff_se"]
    table = format_table([dict(r, val_acc_mean=0.7, val_acc_std=0.01, n_seeds=2, seconds_mean=1.0) for r in rows])
    assert "| baseline |" in table and "| +0.0150 ± 0.0250 |" in table and "| +0.0800 |" in table


def test_parallel_sweep_gives_the_serial_sweeps_numbers(finished_sweep, cora, tmp_path):
    """``jobs=2``: the same (point, seed) runs in two worker processes, each seed's scores
    equal to the serial sweep's; the table carries the paired validation difference."""
    _, base, sweeps, serial = finished_sweep
    rows = run_sweep(base, sweeps, [0, 1], tmp_path / "parallel", CPU, data=cora, progress=False, jobs=2)
    for name in ("ema.momentum=0", "ema.momentum=0.996"):
        for seed in ("0", "1"):
            a = json.loads((finished_sweep[0] / name / f"seed-{seed}" / "result.json").read_text())
            b = json.loads((tmp_path / "parallel" / name / f"seed-{seed}" / "result.json").read_text())
            assert (a["val_acc"], a["test_acc"], a["final_loss"]) == (b["val_acc"], b["test_acc"], b["final_loss"])
    assert [r["val_acc_mean"] for r in rows] == [r["val_acc_mean"] for r in serial]
    assert "val_acc − first, paired" in (tmp_path / "parallel" / "sweep.md").read_text()
