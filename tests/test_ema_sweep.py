"""benchmarks/accuracy/ema_sweep.py: the loss columns (the last logged loss/rec and loss/latent of a seed)
and the table."""
import math

from conftest import load_benchmark
from torch.utils.tensorboard import SummaryWriter

ema_sweep = load_benchmark("ema_sweep")


def test_final_losses_reads_the_last_logged_step_of_each_part(tmp_path):
    writer = SummaryWriter(str(tmp_path))
    for step in range(300):  # more than any reservoir sample keeps
        writer.add_scalar("loss/rec", 3.0 - step / 100, step)
        writer.add_scalar("loss/latent", 1.0 - step / 1000, step)
        writer.add_scalar("loss/total", 99.0, step)
    writer.close()
    losses = ema_sweep.final_losses(tmp_path)
    # TensorBoard stores float32
    assert math.isclose(losses["rec"], 3.0 - 299 / 100, rel_tol=1e-6)
    assert math.isclose(losses["latent"], 1.0 - 299 / 1000, rel_tol=1e-6)


def test_final_losses_are_nan_for_a_run_without_events(tmp_path):
    losses = ema_sweep.final_losses(tmp_path)
    assert math.isnan(losses["rec"]) and math.isnan(losses["latent"])


def _row(momentum, val, test, param_cos):
    return {"momentum": momentum, "target": "whiten", "seeds": [0, 1], "val": val, "test": test,
            "teacher_rank": [10.0, 12.0], "teacher_cos": [0.9, 0.8], "online_rank": [100.0, 110.0],
            "loss_rank": [200.0, 220.0], "info": [1.0, 1.0], "param_cos": param_cos,
            "rec": [1.2, 1.3], "latent": [0.6, 0.7]}


def test_table_has_the_weight_cosine_column_and_stars_the_best_validation_row():
    rows = [_row(0.0, [0.70, 0.72], [0.80, 0.90], [1.0, 1.0]), _row(1.0, [0.74, 0.76], [0.50, 0.60], [0.96, 0.98])]
    lines = ema_sweep.table(rows).splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header.index("teacher-student weight cosine") == header.index("teacher information") + 1
    assert lines[1].count("---") == len(header)
    m0 = [c.strip() for c in lines[2].strip("|").split("|")]
    m1 = [c.strip() for c in lines[3].strip("|").split("|")]
    col = header.index("teacher-student weight cosine")
    assert (m0[col], m1[col]) == ("1.0000", "0.9700")
    assert m1[2] == "0.7500 ± 0.0100 ★" and "★" not in m0[2]  # best validation, not best test
