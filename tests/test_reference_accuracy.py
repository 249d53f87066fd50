"""benchmarks/reference/reference_accuracy.py: reading the official script's final probe, and the table."""
import pytest
from conftest import load_benchmark

ref = load_benchmark("reference_accuracy")

LOG = """####### Run 0 for seed 0
# IGNORE: --- TestAcc: 0.8120, early-stopping-TestAcc: 0.8150, Best ValAcc: 0.8000 in epoch 120 ---
# IGNORE: --- TestAcc: 0.8300, early-stopping-TestAcc: 0.8310, Best ValAcc: 0.8140 in epoch 88 ---
num parameters for finetuning: 7175
--- TestAcc: 0.8410, early-stopping-TestAcc: 0.8440, Best ValAcc: 0.8220 in epoch 97 ---
# final_acc: 0.8410±0.0000
# early-stopping_acc: 0.8440±0.0000
"""


def test_the_final_probe_is_read_and_the_muted_ones_skipped():
    assert ref.parse_final_probe(LOG) == {"val_acc": 0.822, "test_acc": 0.844, "test_acc_last_epoch": 0.841,
                                          "probe_epoch": 97}


def test_a_log_without_a_final_probe_is_an_error():
    with pytest.raises(ValueError, match="no final"):
        ref.parse_final_probe(LOG.split("num parameters")[0])


def test_table_gives_per_seed_rows_and_population_std():
    rows = [{"seed": 0, "val_acc": 0.80, "test_acc": 0.84, "test_acc_last_epoch": 0.83, "probe_epoch": 9,
             "seconds": 3.0},
            {"seed": 1, "val_acc": 0.82, "test_acc": 0.82, "test_acc_last_epoch": 0.81, "probe_epoch": 7,
             "seconds": 4.0}]
    lines = ref.table(rows).splitlines()
    assert lines[2] == "| 0 | 0.8000 | 0.8400 | 0.8300 | 9 | 3 |"
    assert lines[-1] == "| mean ± std (2 seeds) | 0.8100 ± 0.0100 | 0.8300 ± 0.0100 | 0.8200 ± 0.0100 | | |"
