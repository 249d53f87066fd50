"""benchmarks/accuracy/screen.py: job order and the ranked, paired summary table (no runs started)."""
import pytest
from conftest import load_benchmark

screen = load_benchmark("screen")


def _rec(val: float, test: float, **monitor: float) -> dict:
    return {"val_acc": val, "test_acc": test, "seconds": 10.0, **monitor}


def test_schedule_runs_every_variant_of_a_seed_before_the_next_seed():
    assert screen.schedule(["a", "b"], [3, 1]) == [("a", 3), ("b", 3), ("a", 1), ("b", 1)]


def test_table_ranks_on_validation_and_pairs_with_the_base_by_seed():
    found = {
        "base": {0: _rec(0.70, 0.80), 1: _rec(0.72, 0.78)},
        "new": {0: _rec(0.74, 0.70), 1: _rec(0.71, 0.70), 2: _rec(0.90, 0.60)},
    }
    text = screen.table(found, {"base": [], "new": ["ema.momentum=0.9"]}, base="base")
    lines = text.splitlines()
    assert lines[0].startswith("| variant | val acc | test acc | val − base (paired)")
    first, second = lines[2], lines[3]
    assert first.startswith("| new | 0.7833 ± ")        # higher mean validation first, lower test
    assert second.startswith("| base | 0.7100 ± 0.0100 | 0.7900 ± 0.0100 | — |")
    # paired over seeds 0 and 1 only (seed 2 has no base run): +0.04 and -0.01
    assert "| +0.0150 ± 0.0250, > 0 on 1 of 2 |" in first
    assert "0.740/0.700, 0.710/0.700, 0.900/0.600" in first
    assert "`ema.momentum=0.9`" in first and "`(as shipped)`" in second
    assert "| — | — | — |" in first                     # no monitor readings in these records


def test_table_reports_the_targets_collapse_reading_as_a_span_over_seeds():
    healthy = dict(target_eff_rank_centred=80.0, target_cos_to_mean=-0.0015, teacher_information=1.0)
    found = {"std": {0: _rec(0.7, 0.8, **healthy),
                     1: _rec(0.7, 0.8, **dict(healthy, target_eff_rank_centred=74.25, target_cos_to_mean=0.0023))},
             "ref": {0: _rec(0.6, 0.8, target_eff_rank_centred=1.2, target_cos_to_mean=0.9998,
                             teacher_information=2e-4)}}
    lines = screen.table(found, {}, base="ref").splitlines()
    assert "| target centred rank | target cos to mean | teacher information |" in lines[0]
    assert "| 74.2 to 80.0 | -0.0015 to 0.0023 | 1 |" in lines[2]
    assert "| 1.2 | 0.9998 | 0.0002 |" in lines[3]


def test_a_bad_variant_is_refused_before_any_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["screen.py", "--dataset", "cora", "--out", str(tmp_path),
                                     "--variant", "bad=ema.momentum=2"])
    with pytest.raises(SystemExit) as e:
        screen.main()
    assert e.value.code == 2
    assert "variant 'bad'" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_report_tabulates_finished_runs_and_starts_none(tmp_path, monkeypatch, capsys):
    import json
    for name, val in (("shipped", 0.70), ("std", 0.75)):
        run = tmp_path / name / "seed-0" / "cora-x"
        run.mkdir(parents=True)
        (run / "metrics.json").write_text(json.dumps({"seeds": {"0": _rec(val, 0.8)}}))
    monkeypatch.setattr(screen, "run_one", lambda *a: pytest.fail("--report started a run"))
    monkeypatch.setattr("sys.argv", ["screen.py", "--dataset", "cora", "--out", str(tmp_path), "--report",
                                     "--seeds", "0", "1", "--variant", "shipped=", "--variant",
                                     "std=model.latent_target=standardise"])
    screen.main()
    text = (tmp_path / "screen.md").read_text()
    assert text.splitlines()[2].startswith(
        "| std | 0.7500 ± 0.0000 | 0.8000 ± 0.0000 | +0.0500 ± 0.0000, > 0 on 1 of 1 |")
    assert text.strip() in capsys.readouterr().out
