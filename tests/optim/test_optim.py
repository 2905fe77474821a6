"""Tests for convnp.optim: every optimizer equal to torch.optim, state dict round trips, clipping, errors."""
import io
import json

import numpy as np
import pytest

import convnp
from convnp import optim
from convnp.nn import Dense, Sequential
from convnp.nn.parameter import Parameter

SHAPES = [(3, 4), (5,), (2, 3, 2, 2)]

# (convnp class, torch class name, kwargs shared by both)
CASES = [
    ("sgd", optim.SGD, "SGD", dict(lr=0.1)),
    ("sgd-wd", optim.SGD, "SGD", dict(lr=0.1, weight_decay=0.05)),
    ("momentum", optim.SGD, "SGD", dict(lr=0.05, momentum=0.9)),
    ("momentum-dampening", optim.SGD, "SGD", dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    ("nesterov", optim.SGD, "SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.02)),
    ("adagrad", optim.AdaGrad, "Adagrad", dict(lr=0.1)),
    ("adagrad-all", optim.AdaGrad, "Adagrad",
     dict(lr=0.1, weight_decay=0.1, initial_accumulator_value=0.2, lr_decay=0.05, eps=1e-6)),
    ("rmsprop", optim.RMSprop, "RMSprop", dict(lr=0.01)),
    ("rmsprop-momentum", optim.RMSprop, "RMSprop", dict(lr=0.01, momentum=0.7, weight_decay=0.1)),
    ("rmsprop-centered", optim.RMSprop, "RMSprop", dict(lr=0.01, alpha=0.9, centered=True)),
    ("rmsprop-centered-momentum", optim.RMSprop, "RMSprop", dict(lr=0.01, centered=True, momentum=0.5, eps=1e-4)),
    ("adam", optim.Adam, "Adam", dict(lr=0.01)),
    ("adam-wd", optim.Adam, "Adam", dict(lr=0.01, betas=(0.8, 0.95), weight_decay=0.1)),
    ("adam-amsgrad", optim.Adam, "Adam", dict(lr=0.01, amsgrad=True, eps=1e-6)),
    ("adamw", optim.AdamW, "AdamW", dict(lr=0.01)),
    ("adamw-amsgrad", optim.AdamW, "AdamW", dict(lr=0.01, weight_decay=0.2, amsgrad=True)),
]


def _grad_sequence(steps, seed=1):
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(s) for s in SHAPES] for _ in range(steps)]


def _initial(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s) for s in SHAPES]


def _run_convnp(cls, kwargs, dtype, steps=10, grads=None):
    params = [Parameter(w.astype(dtype)) for w in _initial()]
    opt = cls(params, **kwargs)
    for gs in grads or _grad_sequence(steps):
        for p, g in zip(params, gs):
            p.grad = g.astype(dtype)
        opt.step()
    return params, opt


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 2e-5)])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_equal_to_torch_over_10_steps(case, dtype, tol):
    torch = pytest.importorskip("torch")
    _, cls, tname, kwargs = case
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    tparams = [torch.tensor(w.astype(dtype), dtype=tdtype, requires_grad=True) for w in _initial()]
    topt = getattr(torch.optim, tname)(tparams, foreach=False, **kwargs)
    grads = _grad_sequence(10)
    for gs in grads:
        for p, g in zip(tparams, gs):
            p.grad = torch.tensor(g.astype(dtype), dtype=tdtype)
        topt.step()
    params, _ = _run_convnp(cls, kwargs, dtype, grads=grads)
    for p, tp in zip(params, tparams):
        assert p.data.dtype == dtype
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=tol, atol=tol)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_state_dict_round_trip_is_bit_exact(case):
    _, cls, _, kwargs = case
    grads = _grad_sequence(10)
    straight, _ = _run_convnp(cls, kwargs, np.float32, grads=grads)

    first, opt = _run_convnp(cls, kwargs, np.float32, grads=grads[:5])
    saved = opt.state_dict()
    # through an npz file and JSON (scalars) as a user would store it
    arrays = {k: v for k, v in saved.items() if isinstance(v, np.ndarray)}
    scalars = {k: v for k, v in saved.items() if not isinstance(v, np.ndarray)}
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    buf.seek(0)
    restored = dict(np.load(buf, allow_pickle=False))
    restored.update(json.loads(json.dumps(scalars)))

    params = [Parameter(p.data.copy()) for p in first]
    fresh = cls(params, lr=123.0)  # hyper-parameters come back from the state dict too
    fresh.load_state_dict(restored)
    assert fresh.lr == opt.lr and fresh.step_count == 5
    for gs in grads[5:]:
        for p, g in zip(params, gs):
            p.grad = g.astype(np.float32)
        fresh.step()
    for a, b in zip(params, straight):
        np.testing.assert_array_equal(a.data, b.data)


def test_state_dict_contents_and_copies():
    params, opt = _run_convnp(optim.Adam, dict(lr=0.01, amsgrad=True), np.float64, steps=3)
    sd = opt.state_dict()
    assert sd["optimizer"] == "Adam" and sd["lr"] == 0.01 and sd["betas"] == [0.9, 0.999] and sd["step"] == 3
    assert sd["param_names"] == ["0", "1", "2"]
    assert sd["state.1.step"] == 3
    assert set(k for k in sd if k.startswith("state.0.")) == {
        "state.0.step", "state.0.exp_avg", "state.0.exp_avg_sq", "state.0.max_exp_avg_sq"}
    before = sd["state.0.exp_avg"].copy()
    params[0].grad = np.ones(SHAPES[0])
    opt.step()
    np.testing.assert_array_equal(sd["state.0.exp_avg"], before)  # the saved dict is a snapshot


def test_named_state_from_module_and_pairs():
    model = Sequential([Dense(4, in_features=3), Dense(2)])
    model(np.ones((1, 3), np.float32))
    opt = optim.SGD(model, lr=0.1, momentum=0.9)
    assert opt.param_names == ["0.weight", "0.bias", "1.weight", "1.bias"]
    opt2 = optim.SGD(model.named_parameters(), lr=0.1)
    assert opt2.param_names == opt.param_names
    for p in model.parameters():
        p.grad = np.ones_like(p.data)
    opt.step()
    assert "state.1.weight.momentum_buffer" in opt.state_dict()
    # loading a state dict keyed by other names names them
    with pytest.raises(ValueError, match=r"unknown parameter names: 0.weight, 0.bias, 1.weight, 1.bias "
                                         r"\| missing parameter names: 0, 1, 2, 3"):
        optim.SGD(model.parameters(), lr=0.1, momentum=0.9).load_state_dict(opt.state_dict())


def test_step_updates_in_place_and_skips():
    a, b, c = (Parameter(np.ones(3)) for _ in range(3))
    c.requires_grad = False
    data_a = a.data
    opt = optim.SGD([a, b, c], lr=0.5)
    a.grad = np.full(3, 2.0)
    c.grad = np.full(3, 2.0)
    opt.step()
    assert a.data is data_a  # same array, updated in place
    np.testing.assert_array_equal(a.data, np.zeros(3))
    np.testing.assert_array_equal(b.data, np.ones(3))  # no gradient: untouched
    np.testing.assert_array_equal(c.data, np.ones(3))  # frozen: untouched
    opt.zero_grad()
    assert a.grad is None and c.grad is None


def test_adam_per_parameter_step_counts_like_torch():
    torch = pytest.importorskip("torch")
    w = [np.arange(3.0), np.arange(2.0)]
    params = [Parameter(x.copy()) for x in w]
    tparams = [torch.tensor(x.copy(), requires_grad=True) for x in w]
    opt, topt = optim.Adam(params, lr=0.1), torch.optim.Adam(tparams, lr=0.1, foreach=False)
    for i in range(4):
        for j, (p, tp) in enumerate(zip(params, tparams)):
            g = np.full(p.shape, i + 1.0 + j) if (j == 0 or i % 2) else None  # param 1 skips steps 0 and 2
            p.grad = g
            tp.grad = None if g is None else torch.tensor(g)
        opt.step()
        topt.step()
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-12)
    assert opt.state["0"]["step"] == 4 and opt.state["1"]["step"] == 2


def test_shared_parameter_is_updated_once():
    p = Parameter(np.ones(2))
    opt = optim.SGD([("a", p), ("b", p)], lr=1.0)
    assert opt.param_names == ["a"]
    p.grad = np.ones(2)
    opt.step()
    np.testing.assert_array_equal(p.data, np.zeros(2))


def test_momentum_and_nesterov_aliases():
    m = optim.Momentum([Parameter(np.zeros(1))])
    n = optim.Nesterov([Parameter(np.zeros(1))], lr=0.1, momentum=0.5)
    assert isinstance(m, optim.SGD) and (m.lr, m.momentum, m.nesterov) == (0.01, 0.9, False)
    assert (n.lr, n.momentum, n.nesterov) == (0.1, 0.5, True)
    grads = _grad_sequence(10)
    a, _ = _run_convnp(optim.Nesterov, dict(lr=0.05, momentum=0.8), np.float64, grads=grads)
    b, _ = _run_convnp(optim.SGD, dict(lr=0.05, momentum=0.8, nesterov=True), np.float64, grads=grads)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.data, y.data)


def test_lr_is_a_plain_attribute():
    p = Parameter(np.zeros(2))
    opt = optim.SGD([p], lr=1.0)
    opt.lr = 0.25
    p.grad = np.ones(2)
    opt.step()
    np.testing.assert_array_equal(p.data, np.full(2, -0.25))


# ---------------------------------------------------------------- clipping
def test_clip_grad_norm_equal_to_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    grads = [rng.standard_normal(s) * 3 for s in SHAPES]
    for max_norm, norm_type in [(1.0, 2.0), (100.0, 2.0), (0.5, float("inf")), (2.0, 1.0)]:
        params = [Parameter(np.zeros(s)) for s in SHAPES]
        tparams = [torch.zeros(s, dtype=torch.float64, requires_grad=True) for s in SHAPES]
        for p, tp, g in zip(params, tparams, grads):
            p.grad, tp.grad = g.copy(), torch.tensor(g)
        total = optim.clip_grad_norm(params, max_norm, norm_type)
        ttotal = torch.nn.utils.clip_grad_norm_(tparams, max_norm, norm_type)
        assert total == pytest.approx(float(ttotal), rel=1e-12)
        for p, tp in zip(params, tparams):
            np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-12)


def test_clip_grad_value_equal_to_torch():
    torch = pytest.importorskip("torch")
    g = np.random.default_rng(4).standard_normal((4, 5))
    p, tp = Parameter(np.zeros((4, 5))), torch.zeros(4, 5, dtype=torch.float64, requires_grad=True)
    p.grad, tp.grad = g.copy(), torch.tensor(g)
    optim.clip_grad_value(p, 0.5)
    torch.nn.utils.clip_grad_value_([tp], 0.5)
    np.testing.assert_array_equal(p.grad, tp.grad.numpy())
    assert np.abs(p.grad).max() == 0.5


def test_clip_skips_missing_grads_and_returns_zero():
    assert optim.clip_grad_norm([Parameter(np.ones(2))], 1.0) == 0.0


def test_optimizer_clip_options_equal_to_clipping_first():
    torch = pytest.importorskip("torch")
    grads = _grad_sequence(10)
    for kwargs, clip in [(dict(global_clipnorm=1.0), lambda ps: torch.nn.utils.clip_grad_norm_(ps, 1.0)),
                         (dict(clipvalue=0.3), lambda ps: torch.nn.utils.clip_grad_value_(ps, 0.3)),
                         (dict(clipnorm=0.7), lambda ps: [torch.nn.utils.clip_grad_norm_([p], 0.7) for p in ps])]:
        tparams = [torch.tensor(w, requires_grad=True) for w in _initial()]
        topt = torch.optim.Adam(tparams, lr=0.01, foreach=False)
        for gs in grads:
            for p, g in zip(tparams, gs):
                p.grad = torch.tensor(g)
            clip(tparams)
            topt.step()
        params, _ = _run_convnp(optim.Adam, dict(lr=0.01, **kwargs), np.float64, grads=grads)
        for p, tp in zip(params, tparams):
            np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-12, atol=1e-12)


def test_clipnorm_is_per_parameter():
    a, b = Parameter(np.zeros(2)), Parameter(np.zeros(2))
    opt = optim.SGD([a, b], lr=1.0, clipnorm=1.0)
    a.grad, b.grad = np.array([3.0, 4.0]), np.array([0.3, 0.4])
    opt.step()
    np.testing.assert_allclose(a.data, [-0.6, -0.8], rtol=1e-6)  # clipped to norm 1
    np.testing.assert_allclose(b.data, [-0.3, -0.4])  # already below: untouched


# ---------------------------------------------------------------- get_optimizer
def test_get_optimizer_by_name_class_and_instance():
    p = [Parameter(np.zeros(2))]
    for name, cls in [("SGD", optim.SGD), ("momentum", optim.Momentum), ("Nesterov", optim.Nesterov),
                      ("adagrad", optim.AdaGrad), ("RMSprop", optim.RMSprop), ("ADAM", optim.Adam),
                      ("adamw", optim.AdamW)]:
        assert type(optim.get_optimizer(name, p)) is cls
    opt = optim.get_optimizer("sgd", p, lr=0.3, momentum=0.5)
    assert (opt.lr, opt.momentum) == (0.3, 0.5)
    assert type(optim.get_optimizer(optim.Adam, p, lr=0.1)) is optim.Adam
    assert optim.get_optimizer(opt) is opt
    assert optim.get_optimizer(opt, p) is opt


def test_get_optimizer_errors():
    p = [Parameter(np.zeros(2))]
    with pytest.raises(ValueError, match="unknown optimizer 'adamax'; choose one of sgd, momentum, nesterov, "
                                         "adagrad, rmsprop, adam, adamw"):
        optim.get_optimizer("adamax", p)
    with pytest.raises(ValueError, match="get_optimizer: Adam needs the parameters"):
        optim.get_optimizer("adam")
    with pytest.raises(ValueError, match=r"got an SGD instance and hyper-parameters \['lr'\]"):
        optim.get_optimizer(optim.SGD(p), lr=0.1)


# ---------------------------------------------------------------- validation
@pytest.mark.parametrize("make,message", [
    (lambda p: optim.SGD(p, lr=-0.1), r"SGD: lr must be >= 0, got -0.1"),
    (lambda p: optim.Adam(p, lr=float("nan")), r"Adam: lr must be >= 0, got nan"),
    (lambda p: optim.SGD(p, momentum=-0.5), r"SGD: momentum must be >= 0, got -0.5"),
    (lambda p: optim.SGD(p, weight_decay=-1), r"SGD: weight_decay must be >= 0, got -1"),
    (lambda p: optim.SGD(p, nesterov=True), r"SGD: nesterov=True needs momentum > 0 and dampening = 0, got "
                                            r"momentum=0.0, dampening=0.0"),
    (lambda p: optim.SGD(p, momentum=0.9, dampening=0.1, nesterov=True), r"dampening=0.1"),
    (lambda p: optim.Adam(p, betas=(1.0, 0.999)), r"Adam: betas\[0\] must be in \[0, 1\), got 1.0"),
    (lambda p: optim.AdamW(p, betas=(0.9, -0.1)), r"AdamW: betas\[1\] must be in \[0, 1\), got -0.1"),
    (lambda p: optim.Adam(p, betas=0.9), r"Adam: betas must be a pair \(beta1, beta2\), got 0.9"),
    (lambda p: optim.Adam(p, weight_decay=-0.01), r"Adam: weight_decay must be >= 0, got -0.01"),
    (lambda p: optim.AdamW(p, eps=-1e-8), r"AdamW: eps must be >= 0, got -1e-08"),
    (lambda p: optim.AdaGrad(p, initial_accumulator_value=-1), r"AdaGrad: initial_accumulator_value must be >= 0"),
    (lambda p: optim.AdaGrad(p, lr_decay=-1), r"AdaGrad: lr_decay must be >= 0, got -1"),
    (lambda p: optim.RMSprop(p, alpha=1.5), r"RMSprop: alpha must be in \[0, 1\), got 1.5"),
    (lambda p: optim.RMSprop(p, momentum=-1), r"RMSprop: momentum must be >= 0, got -1"),
    (lambda p: optim.Adam(p, clipnorm=0), r"Adam: clipnorm must be > 0 or None, got 0"),
    (lambda p: optim.SGD(p, clipvalue=-1), r"SGD: clipvalue must be > 0 or None, got -1"),
    (lambda p: optim.SGD(p, global_clipnorm=-1), r"SGD: global_clipnorm must be > 0 or None, got -1"),
    (lambda p: optim.Adam([]), r"Adam: got an empty parameter list"),
    (lambda p: optim.SGD(iter([])), r"SGD: got an empty parameter list"),
    (lambda p: optim.SGD([("a", p[0]), ("a", Parameter(np.zeros(1)))]), r"SGD: duplicate parameter name 'a'"),
    (lambda p: optim.clip_grad_norm(p, 0.0), r"clip_grad_norm: max_norm must be > 0, got 0.0"),
    (lambda p: optim.clip_grad_norm(p, 1.0, norm_type=0), r"clip_grad_norm: norm_type must be > 0, got 0.0"),
    (lambda p: optim.clip_grad_value(p, -2), r"clip_grad_value: clip_value must be > 0, got -2"),
])
def test_value_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make([Parameter(np.zeros(2))])


def test_type_errors():
    with pytest.raises(TypeError, match=r"Adam: parameter '1' is a ndarray, not a convnp.nn.Parameter"):
        optim.Adam([Parameter(np.zeros(2)), np.zeros(2)])
    with pytest.raises(TypeError, match=r"SGD: parameter 'w' is a list, not a convnp.nn.Parameter"):
        optim.SGD({"w": [1.0]})
    with pytest.raises(TypeError, match=r"SGD: params must be a Module or an iterable of Parameters, got float"):
        optim.SGD(1.0)
    with pytest.raises(TypeError, match=r"clip_grad_value: expected convnp.nn.Parameter objects, got ndarray"):
        optim.clip_grad_value([np.zeros(2)], 1.0)


def test_unknown_argument_names_the_accepted_ones():
    with pytest.raises(TypeError, match=r"Adam: unexpected argument\(s\) 'momentum'; Adam takes lr, betas, eps, "
                                        r"weight_decay, amsgrad, clipnorm, clipvalue, global_clipnorm"):
        optim.get_optimizer("adam", [Parameter(np.zeros(2))], momentum=0.9)
    with pytest.raises(TypeError, match=r"Nesterov: unexpected argument\(s\) 'nesterov', 'dampening'; Nesterov "
                                        r"takes lr, momentum, weight_decay, clipnorm"):
        optim.Nesterov([Parameter(np.zeros(2))], nesterov=False, dampening=0.1)


def test_momentum_and_nesterov_rebuild_from_config_and_state():
    for cls in (optim.Momentum, optim.Nesterov):
        params, opt = _run_convnp(cls, dict(lr=0.05, momentum=0.8, clipvalue=0.5), np.float64, steps=2)
        again = cls(params, **opt.get_config())
        again.load_state_dict(opt.state_dict())
        assert again.get_config() == opt.get_config() and again.nesterov == (cls is optim.Nesterov)


def test_step_with_wrong_gradient_shape():
    first, p = Parameter(np.zeros(2)), Parameter(np.zeros(3))
    opt = optim.Adam({"v": first, "w": p})
    first.grad, p.grad = np.ones(2), np.zeros(4)
    with pytest.raises(ValueError, match=r"Adam.step: gradient of 'w' has shape \(4,\), parameter has \(3,\)"):
        opt.step()
    np.testing.assert_array_equal(first.data, np.zeros(2))  # nothing was updated
    assert opt.state["v"] == {}


def test_load_state_dict_errors():
    params, opt = _run_convnp(optim.Adam, dict(lr=0.01), np.float64, steps=2)
    sd = opt.state_dict()
    with pytest.raises(ValueError, match="state dict is from Adam, not SGD"):
        optim.SGD(params).load_state_dict(sd)
    other = [Parameter(np.zeros(s)) for s in SHAPES[:2]]
    with pytest.raises(ValueError, match=r"unknown parameter names: 2 \(this optimizer has 0, 1\)"):
        optim.Adam(other).load_state_dict(sd)
    more = [Parameter(np.zeros(s)) for s in SHAPES + [(7,)]]
    with pytest.raises(ValueError, match=r"missing parameter names: 3"):
        optim.Adam(more).load_state_dict(sd)
    wrong = [Parameter(np.zeros(s)) for s in [(4, 3), (5,), (2, 3, 2, 2)]]
    with pytest.raises(ValueError, match=r"shape mismatch for 0.exp_avg: expected \(4, 3\), got \(3, 4\); "
                                         r"0.exp_avg_sq: expected \(4, 3\), got \(3, 4\)"):
        optim.Adam(wrong).load_state_dict(sd)


def test_state_follows_parameter_dtype_on_load():
    _, opt = _run_convnp(optim.Adam, dict(lr=0.01), np.float64, steps=2)
    params32 = [Parameter(w.astype(np.float32)) for w in _initial()]
    fresh = optim.Adam(params32)
    fresh.load_state_dict(opt.state_dict())
    assert fresh.state["0"]["exp_avg"].dtype == np.float32 and fresh.state["0"]["step"] == 2


def test_repr_and_config():
    opt = optim.SGD([Parameter(np.zeros(2))], lr=0.1, momentum=0.9, clipvalue=1.0)
    assert opt.get_config() == {"lr": 0.1, "momentum": 0.9, "dampening": 0.0, "nesterov": False,
                                "weight_decay": 0.0, "clipvalue": 1.0}
    assert repr(opt).startswith("SGD(1 parameters, lr=0.1, momentum=0.9")
    rebuilt = optim.SGD([Parameter(np.zeros(2))], **opt.get_config())
    assert rebuilt.get_config() == opt.get_config()
    assert optim.Adam([Parameter(np.zeros(1))]).get_config()["betas"] == [0.9, 0.999]


def test_convnp_exposes_optim():
    assert convnp.optim is optim


def test_trains_a_dense_layer_on_cupy_or_numpy(xp):
    """A few Adam steps reduce a least-squares loss, with the state on the parameters' device."""
    rng = np.random.default_rng(0)
    layer = Dense(1, in_features=3, seed=0)
    if xp is not np:
        layer.to("cuda")
    x = xp.asarray(rng.standard_normal((32, 3)).astype(np.float32))
    y = x @ xp.asarray(np.array([[1.0], [-2.0], [0.5]], np.float32))
    opt = optim.Adam(layer, lr=0.05)
    losses = []
    for _ in range(50):
        layer.zero_grad()
        out = layer(x)
        losses.append(float(((out - y) ** 2).mean()))
        layer.backward(2 * (out - y) / out.size)
        opt.step()
    assert losses[-1] < 0.1 * losses[0]
    assert convnp.get_array_module(opt.state["weight"]["exp_avg"]) is xp


@pytest.mark.parametrize("cls,kwargs", [(optim.Adam, dict(lr=0.1, amsgrad=True, clipnorm=2.0)),
                                        (optim.RMSprop, dict(centered=True, momentum=0.5)),
                                        (optim.SGD, dict(momentum=0.9, nesterov=True, global_clipnorm=1.0))])
def test_whole_state_dict_through_one_npz_file(cls, kwargs):
    params, opt = _run_convnp(cls, kwargs, np.float32, steps=3)
    convnp.optim.lr_scheduler.StepLR(opt, 2)  # sets initial_lr, saved too
    buf = io.BytesIO()
    np.savez(buf, **opt.state_dict())  # strings, lists, bools and ints become arrays
    buf.seek(0)
    fresh = cls([Parameter(p.data.copy()) for p in params])
    fresh.load_state_dict(dict(np.load(buf, allow_pickle=False)))
    assert fresh.get_config() == opt.get_config()
    assert fresh.initial_lr == opt.initial_lr and fresh.step_count == 3
    for name in opt.state:
        assert fresh.state[name].keys() == opt.state[name].keys()
        if "step" in opt.state[name]:
            assert type(fresh.state[name]["step"]) is int
        for key, value in opt.state[name].items():
            np.testing.assert_array_equal(fresh.state[name][key], value)
