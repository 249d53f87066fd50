"""EMA teacher: exact arithmetic, in place, buffers included, no gradients."""
import math

import pytest
import torch
from torch import nn

from graphmae2.ema import EMATeacher
from graphmae2.schedules import momentum_at


def student():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.PReLU(), nn.Linear(8, 2))


def perturb(model):
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    model.train()
    model(torch.randn(16, 4))  # moves BatchNorm running stats and its counter


@pytest.mark.parametrize("m", [0.0, 0.5, 0.9, 0.996, 1.0])
def test_ema_update_matches_closed_form_bitwise(m):
    s = student()
    ema = EMATeacher(s)
    perturb(s)
    before = {k: v.clone() for k, v in ema.module.state_dict().items()}
    objects = {k: v for k, v in ema.module.state_dict(keep_vars=True).items()}
    ema.update_(s, m)
    after = ema.module.state_dict(keep_vars=True)
    src = s.state_dict()
    for name, t_new in after.items():
        assert t_new is objects[name], f"{name} was replaced, not updated in place"
        if t_new.is_floating_point():
            assert torch.equal(t_new, m * before[name] + (1 - m) * src[name]), name
        else:
            assert torch.equal(t_new, src[name]), name  # integer counters are copied
    assert "1.running_mean" in after and not torch.equal(before["1.running_mean"], after["1.running_mean"]) or m == 1.0


def test_momentum_zero_copies_and_one_freezes():
    s = student()
    ema = EMATeacher(s)
    frozen = {k: v.clone() for k, v in ema.module.state_dict().items()}
    perturb(s)
    ema.update_(s, 1.0)
    assert all(torch.equal(v, frozen[k]) for k, v in ema.module.state_dict().items()
               if v.is_floating_point())
    ema.update_(s, 0.0)
    assert all(torch.equal(v, s.state_dict()[k]) for k, v in ema.module.state_dict().items())


def test_teacher_has_no_gradients_and_is_in_eval_mode():
    s = student()
    ema = EMATeacher(s)
    assert not ema.module.training
    assert all(not p.requires_grad for p in ema.module.parameters())
    s(torch.randn(4, 4)).sum().backward()
    ema.update_(s, 0.9)
    assert all(p.grad is None for p in ema.module.parameters())


def test_teacher_starts_as_exact_copy():
    s = student()
    ema = EMATeacher(s)
    assert all(torch.equal(v, s.state_dict()[k]) for k, v in ema.module.state_dict().items())


def test_cosine_momentum_schedule_rises_to_end():
    total = 101
    values = [momentum_at(i, total, 0.99, 1.0, "cosine") for i in range(total)]
    assert values[0] == pytest.approx(0.99) and values[-1] == pytest.approx(1.0)
    assert all(b >= a for a, b in zip(values, values[1:]))
    assert values[50] == pytest.approx(0.995)
    assert momentum_at(7, total, 0.9, 1.0, "constant") == 0.9
    assert math.isclose(momentum_at(3, 1, 0.5, 1.0, "cosine"), 1.0)


def test_out_of_range_momentum_is_refused():
    s = student()
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\], got 1.5"):
        EMATeacher(s).update_(s, 1.5)


@pytest.mark.parametrize("mode", ["copy", "freeze"])
def test_delay_mode_copies_the_student_or_keeps_the_initial_teacher_until_the_delay_ends(mode):
    from graphmae2.config import EMAConfig

    s = student()
    ema = EMATeacher(s, EMAConfig(momentum=0.5, delay_epochs=2, delay_mode=mode))
    initial = {k: v.clone() for k, v in ema.module.state_dict().items()}
    for epoch in (0, 1):
        perturb(s)
        ema.step(s, step=epoch, total_steps=10, epoch=epoch)
        expected = s.state_dict() if mode == "copy" else initial
        assert all(torch.equal(v, expected[k]) for k, v in ema.module.state_dict().items()), epoch
    before = {k: v.clone() for k, v in ema.module.state_dict().items()}
    perturb(s)
    assert ema.step(s, step=2, total_steps=10, epoch=2) == 0.5           # the EMA from here on
    for k, v in ema.module.state_dict().items():
        if v.is_floating_point():
            assert torch.equal(v, 0.5 * before[k] + 0.5 * s.state_dict()[k]), k


def test_delay_mode_default_is_copy_and_unknown_modes_are_refused():
    from graphmae2.config import ConfigError, EMAConfig, load_config

    assert EMAConfig().delay_mode == "copy"
    with pytest.raises(ConfigError, match=r"ema.delay_mode: 'frozen' is not allowed \(did you mean 'freeze'\?\)"):
        load_config(None, ["ema.delay_mode=frozen"])
