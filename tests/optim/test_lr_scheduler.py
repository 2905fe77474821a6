"""Tests for convnp.optim.lr_scheduler: lr sequences equal to torch.optim.lr_scheduler, state round trips, errors."""
import json

import numpy as np
import pytest

from convnp import optim
from convnp.nn.parameter import Parameter
from convnp.optim import lr_scheduler as sched

STEPS = 30


def _opt(lr=0.1, cls=optim.SGD, **kw):
    return cls([Parameter(np.zeros(2))], lr=lr, **kw)


def _sequence(scheduler, optimizer, steps=STEPS):
    """lrs seen by optimizer.step() at steps 0 .. steps-1, checking get_last_lr agrees."""
    out = []
    for _ in range(steps):
        assert scheduler.get_last_lr() == optimizer.lr
        out.append(optimizer.lr)
        scheduler.step()
    return out


def _torch_sequence(make, lr=0.1, steps=STEPS, momentum=0.0):
    torch = pytest.importorskip("torch")
    p = torch.zeros(2, requires_grad=True)
    opt = torch.optim.SGD([p], lr=lr, momentum=momentum)
    s = make(opt, torch.optim.lr_scheduler)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        s.step()
    return out


CASES = [
    ("step", lambda o: sched.StepLR(o, step_size=7, gamma=0.5), lambda o, t: t.StepLR(o, step_size=7, gamma=0.5)),
    ("step-1", lambda o: sched.StepLR(o, 1), lambda o, t: t.StepLR(o, 1)),
    ("multistep", lambda o: sched.MultiStepLR(o, [12, 3, 20], gamma=0.3),
     lambda o, t: t.MultiStepLR(o, [12, 3, 20], gamma=0.3)),
    ("multistep-repeated", lambda o: sched.MultiStepLR(o, [5, 5, 9]), lambda o, t: t.MultiStepLR(o, [5, 5, 9])),
    ("exponential", lambda o: sched.ExponentialLR(o, 0.9), lambda o, t: t.ExponentialLR(o, 0.9)),
    ("cosine", lambda o: sched.CosineAnnealingLR(o, T_max=10), lambda o, t: t.CosineAnnealingLR(o, T_max=10)),
    ("cosine-eta-min", lambda o: sched.CosineAnnealingLR(o, T_max=25, eta_min=0.01),
     lambda o, t: t.CosineAnnealingLR(o, T_max=25, eta_min=0.01)),
    ("onecycle", lambda o: sched.OneCycleLR(o, max_lr=1.0, total_steps=STEPS, cycle_momentum=False),
     lambda o, t: t.OneCycleLR(o, max_lr=1.0, total_steps=STEPS, cycle_momentum=False)),
    ("onecycle-linear", lambda o: sched.OneCycleLR(o, max_lr=0.5, epochs=3, steps_per_epoch=10, pct_start=0.25,
                                                   anneal_strategy="linear", div_factor=10, final_div_factor=100,
                                                   cycle_momentum=False),
     lambda o, t: t.OneCycleLR(o, max_lr=0.5, epochs=3, steps_per_epoch=10, pct_start=0.25, anneal_strategy="linear",
                               div_factor=10, final_div_factor=100, cycle_momentum=False)),
    ("onecycle-three-phase", lambda o: sched.OneCycleLR(o, max_lr=2.0, total_steps=STEPS, three_phase=True,
                                                        cycle_momentum=False),
     lambda o, t: t.OneCycleLR(o, max_lr=2.0, total_steps=STEPS, three_phase=True, cycle_momentum=False)),
    ("warmup", lambda o: sched.LinearWarmup(o, 5, start_factor=0.2),
     lambda o, t: t.LinearLR(o, start_factor=0.2, total_iters=5)),
    ("warmup-step", lambda o: sched.LinearWarmup(o, 4, after=sched.StepLR(o, 3, 0.5), start_factor=0.1),
     lambda o, t: t.SequentialLR(o, [t.LinearLR(o, 0.1, total_iters=4), t.StepLR(o, 3, 0.5)], milestones=[4])),
    ("warmup-cosine", lambda o: sched.LinearWarmup(o, 6, after=sched.CosineAnnealingLR(o, 24, 1e-3), start_factor=0.5),
     lambda o, t: t.SequentialLR(o, [t.LinearLR(o, 0.5, total_iters=6), t.CosineAnnealingLR(o, 24, 1e-3)],
                                 milestones=[6])),
    ("warmup-multistep", lambda o: sched.LinearWarmup(o, 3, after=sched.MultiStepLR(o, [4, 10]), start_factor=1/3),
     lambda o, t: t.SequentialLR(o, [t.LinearLR(o, total_iters=3), t.MultiStepLR(o, [4, 10])], milestones=[3])),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_lr_sequence_equal_to_torch(case):
    _, make, make_torch = case
    opt = _opt()
    ours = _sequence(make(opt), opt)
    theirs = _torch_sequence(make_torch)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)


def test_onecycle_momentum_cycling_equal_to_torch():
    torch = pytest.importorskip("torch")
    p = torch.zeros(2, requires_grad=True)
    topt = torch.optim.SGD([p], lr=0.1, momentum=0.9)
    ts = torch.optim.lr_scheduler.OneCycleLR(topt, max_lr=1.0, total_steps=20)
    tadam = torch.optim.Adam([p], lr=0.1)
    tsa = torch.optim.lr_scheduler.OneCycleLR(tadam, max_lr=1.0, total_steps=20, three_phase=True)
    opt, adam = _opt(momentum=0.9), _opt(cls=optim.Adam)
    s = sched.OneCycleLR(opt, max_lr=1.0, total_steps=20)
    sa = sched.OneCycleLR(adam, max_lr=1.0, total_steps=20, three_phase=True)
    for _ in range(20):
        assert opt.momentum == pytest.approx(topt.param_groups[0]["momentum"], rel=1e-12)
        assert adam.betas[0] == pytest.approx(tadam.param_groups[0]["betas"][0], rel=1e-12)
        assert adam.betas[1] == 0.999
        assert adam.lr == pytest.approx(tadam.param_groups[0]["lr"], rel=1e-12)
        topt.step()
        tadam.step()
        for x in (ts, tsa, s, sa):
            x.step()


def test_onecycle_stepping_past_the_end_raises():
    opt = _opt()
    s = sched.OneCycleLR(opt, max_lr=1.0, total_steps=5, cycle_momentum=False)
    for _ in range(5):
        s.step()
    with pytest.raises(ValueError, match="OneCycleLR: tried to step 6 times; the cycle has total_steps=5"):
        s.step()


def test_onecycle_sets_initial_lr_and_known_values():
    opt = _opt(lr=123.0)
    s = sched.OneCycleLR(opt, max_lr=1.0, total_steps=10, pct_start=0.3, cycle_momentum=False)
    assert opt.lr == pytest.approx(1.0 / 25) and opt.initial_lr == pytest.approx(1 / 25)
    lrs = [s.lr_at(t) for t in range(10)]
    assert lrs[2] == pytest.approx(1.0)  # the peak at pct_start * total - 1
    assert lrs[-1] == pytest.approx(1.0 / 25 / 1e4)


def test_base_lr_is_shared_by_schedulers_on_one_optimizer():
    opt = _opt(lr=0.4)
    a = sched.StepLR(opt, 1, gamma=0.5)
    a.step()
    assert opt.lr == 0.2 and opt.initial_lr == 0.4
    b = sched.ExponentialLR(opt, 0.5)  # PyTorch: the second scheduler also starts from initial_lr
    assert b.base_lr == 0.4 and opt.lr == 0.4


def test_closed_form_values():
    opt = _opt(lr=1.0)
    assert sched.StepLR(opt, 3, 0.1).lr_at(7) == pytest.approx(0.01)
    assert sched.CosineAnnealingLR(opt, 10, eta_min=0.1).lr_at(10) == pytest.approx(0.1)
    assert sched.CosineAnnealingLR(opt, 10).lr_at(5) == pytest.approx(0.5)
    w = sched.LinearWarmup(opt, 4, start_factor=0.0)
    assert [w.lr_at(t) for t in range(6)] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_state_dict_round_trip(case):
    _, make, _ = case
    opt = _opt()
    s = make(opt)
    straight = _sequence(s, opt, 20)

    opt1 = _opt()
    s1 = make(opt1)
    first = _sequence(s1, opt1, 8)
    saved_opt = opt1.state_dict()
    saved = json.loads(json.dumps(s1.state_dict()))  # JSON friendly

    opt2 = _opt(lr=0.1)
    s2 = make(opt2)
    opt2.load_state_dict(saved_opt)
    s2.load_state_dict(saved)
    assert s2.last_epoch == 8 and s2.get_last_lr() == s1.get_last_lr() == opt2.lr
    rest = _sequence(s2, opt2, 12)
    assert first + rest == straight


def test_scheduler_resumes_from_last_epoch_like_torch():
    opt = _opt(lr=1.0)
    opt.initial_lr = 1.0
    s = sched.StepLR(opt, 2, 0.5, last_epoch=4)
    assert s.last_epoch == 5 and opt.lr == 0.25


def test_works_with_textbook_optimizer():
    from convnp.textbook import SGD
    book = SGD(lr=0.1)
    s = sched.ExponentialLR(book, 0.5)
    s.step()
    assert book.lr == 0.05


def test_get_scheduler():
    opt = _opt()
    assert type(sched.get_scheduler("StepLR", opt, step_size=2)) is sched.StepLR
    assert type(optim.get_scheduler("cosine", opt, T_max=5)) is sched.CosineAnnealingLR
    assert type(optim.get_scheduler("CosineAnnealingLR", opt, T_max=5)) is sched.CosineAnnealingLR
    assert type(optim.get_scheduler("one_cycle", opt, max_lr=1, total_steps=3)) is sched.OneCycleLR
    assert type(optim.get_scheduler("LinearWarmup", opt, warmup_steps=3)) is sched.LinearWarmup
    s = sched.MultiStepLR(opt, [1])
    assert optim.get_scheduler(s) is s
    with pytest.raises(ValueError, match="unknown scheduler 'plateau'; choose one of step, multistep"):
        optim.get_scheduler("plateau", opt)
    with pytest.raises(ValueError, match="get_scheduler: ExponentialLR needs the optimizer"):
        optim.get_scheduler("exponential", gamma=0.5)


def test_repr():
    assert repr(sched.StepLR(_opt(lr=0.1), 3)) == "StepLR(step_size=3, gamma=0.1, last_epoch=0, lr=0.1)"


@pytest.mark.parametrize("make,error,message", [
    (lambda o: sched.StepLR(o, 0), ValueError, r"StepLR: step_size must be a positive integer, got 0"),
    (lambda o: sched.StepLR(o, 2.5), ValueError, r"StepLR: step_size must be a positive integer, got 2.5"),
    (lambda o: sched.StepLR(o, True), ValueError, r"StepLR: step_size must be a positive integer, got True"),
    (lambda o: sched.StepLR(o, 2, gamma=0), ValueError, r"StepLR: gamma must be > 0, got 0"),
    (lambda o: sched.MultiStepLR(o, [2, -1]), ValueError, r"MultiStepLR: milestones must be non-negative integers"),
    (lambda o: sched.MultiStepLR(o, [2.5]), ValueError, r"MultiStepLR: milestones must be non-negative integers"),
    (lambda o: sched.MultiStepLR(o, 3), ValueError, r"MultiStepLR: milestones must be a list of integers, got 3"),
    (lambda o: sched.ExponentialLR(o, -0.5), ValueError, r"ExponentialLR: gamma must be > 0, got -0.5"),
    (lambda o: sched.CosineAnnealingLR(o, 0), ValueError, r"CosineAnnealingLR: T_max must be a positive integer"),
    (lambda o: sched.CosineAnnealingLR(o, 5, eta_min=-1), ValueError, r"CosineAnnealingLR: eta_min must be >= 0"),
    (lambda o: sched.OneCycleLR(o, 1.0), ValueError, r"OneCycleLR: give total_steps, or both epochs and steps_per"),
    (lambda o: sched.OneCycleLR(o, 1.0, epochs=0, steps_per_epoch=3), ValueError,
     r"OneCycleLR: epochs must be a positive integer, got 0"),
    (lambda o: sched.OneCycleLR(o, 1.0, 10, pct_start=1.5), ValueError, r"OneCycleLR: pct_start must be in \[0, 1\]"),
    (lambda o: sched.OneCycleLR(o, 1.0, 10, anneal_strategy="exp"), ValueError,
     r"OneCycleLR: anneal_strategy must be 'cos' or 'linear', got 'exp'"),
    (lambda o: sched.OneCycleLR(o, -1.0, 10), ValueError, r"OneCycleLR: max_lr must be > 0, got -1.0"),
    (lambda o: sched.OneCycleLR(o, 1.0, 10, div_factor=0), ValueError, r"OneCycleLR: div_factor must be > 0"),
    (lambda o: sched.OneCycleLR(o, 1.0, 10, base_momentum=0.99), ValueError,
     r"OneCycleLR: need 0 <= base_momentum <= max_momentum < 1, got 0.99 and 0.95"),
    (lambda o: sched.OneCycleLR(optim.AdaGrad(o.parameters()), 1.0, 10), ValueError,
     r"OneCycleLR: cycle_momentum=True needs an optimizer with `momentum` or `betas` \(AdaGrad has neither\)"),
    (lambda o: sched.LinearWarmup(o, 0), ValueError, r"LinearWarmup: warmup_steps must be a positive integer, got 0"),
    (lambda o: sched.LinearWarmup(o, 3, start_factor=2), ValueError, r"LinearWarmup: start_factor must be in \[0, 1\]"),
    (lambda o: sched.LinearWarmup(o, 3, after="cosine"), TypeError,
     r"LinearWarmup: after must be a learning-rate scheduler, got str"),
    (lambda o: sched.LinearWarmup(o, 3, after=sched.StepLR(_opt(), 2)), ValueError,
     r"LinearWarmup: after must schedule the same optimizer"),
    (lambda o: sched.StepLR(object(), 2), TypeError, r"StepLR: expected an optimizer with an `lr` attribute, got object"),
    (lambda o: sched.StepLR(o, 2, last_epoch=3), ValueError,
     r"StepLR: last_epoch=3 resumes a schedule, but the optimizer has no initial_lr"),
])
def test_errors(make, error, message):
    with pytest.raises(error, match=message):
        make(_opt())


def test_load_state_dict_errors():
    opt = _opt()
    with pytest.raises(ValueError, match="StepLR.load_state_dict: the state dict is from ExponentialLR"):
        sched.StepLR(opt, 2).load_state_dict(sched.ExponentialLR(opt, 0.5).state_dict())
    with pytest.raises(ValueError, match="StepLR.load_state_dict: missing keys: base_lr, last_lr"):
        sched.StepLR(opt, 2).load_state_dict({"last_epoch": 3})
    plain = sched.LinearWarmup(opt, 2).state_dict()
    with pytest.raises(ValueError, match="the saved warm-up has no `after` scheduler but this one has one"):
        sched.LinearWarmup(opt, 2, after=sched.StepLR(opt, 2)).load_state_dict(plain)
