"""benchmarks/ema_sweep.py's loss columns: the last logged loss/rec and loss/latent of a seed."""
import math

from torch.utils.tensorboard import SummaryWriter

from conftest import load_benchmark

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
