"""Losses: torch oracles (value and gradient), numerical gradients, names, and every error message."""
import numpy as np
import pytest

from convnp import nn
from convnp.backend import to_numpy
from convnp.functional import loss as L
from convnp.gradcheck import max_relative_error, numerical_gradient
from convnp.nn import losses

RNG = np.random.default_rng(0)
LOGITS = RNG.standard_normal((6, 5)) * 2
LABELS = np.array([0, 4, 2, 2, 1, 3])
PROBS = RNG.dirichlet(np.ones(5), 6)


def _numeric_check(loss_obj, pred, target):
    loss_obj(pred, target)
    analytic = loss_obj.backward()
    numeric = numerical_gradient(lambda: loss_obj(pred, target), pred)
    assert analytic.shape == pred.shape and analytic.dtype == pred.dtype
    assert max_relative_error(analytic, numeric) < 1e-6


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.5, 1.0])
@pytest.mark.parametrize("target", [LABELS, PROBS, np.eye(5)[LABELS]], ids=["labels", "probs", "one_hot"])
def test_cross_entropy_matches_torch(smoothing, target):
    torch = pytest.importorskip("torch")
    fn = nn.losses.CrossEntropyLoss(label_smoothing=smoothing)
    value = fn(LOGITS, target)
    grad = fn.backward()
    zt = torch.tensor(LOGITS, requires_grad=True)
    ref = torch.nn.functional.cross_entropy(zt, torch.tensor(target), label_smoothing=smoothing)
    ref.backward()
    assert isinstance(value, float)
    assert value == pytest.approx(ref.item(), rel=1e-12)
    np.testing.assert_allclose(grad, zt.grad.numpy(), rtol=1e-10, atol=1e-15)
    _numeric_check(fn, LOGITS.copy(), target)


def test_cross_entropy_float_labels_equal_int_labels_and_stable_for_huge_logits():
    fn = losses.CrossEntropyLoss()
    assert fn(LOGITS, LABELS.astype(np.float64)) == fn(LOGITS, LABELS)
    z = np.array([[1000.0, 0.0], [-1000.0, 1000.0]])
    assert fn(z, np.array([0, 1])) == pytest.approx(0.0, abs=1e-12)
    assert fn(z, np.array([1, 0])) == pytest.approx(1500.0)
    np.testing.assert_allclose(fn.backward(), [[0.5, -0.5], [-0.5, 0.5]])


def test_cross_entropy_float32_gradient_dtype():
    fn = losses.CrossEntropyLoss()
    fn(LOGITS.astype(np.float32), LABELS)
    assert fn.backward().dtype == np.float32


@pytest.mark.parametrize("name,tfn", [("mse", "mse_loss"), ("l1", "l1_loss"), ("bce", "binary_cross_entropy"),
                                      ("bce_with_logits", "binary_cross_entropy_with_logits")])
def test_regression_and_binary_losses_match_torch(name, tfn):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    pred = rng.random((4, 3)) if name == "bce" else rng.standard_normal((4, 3)) * 3
    target = rng.random((4, 3)) if name.startswith("bce") else rng.standard_normal((4, 3))
    fn = losses.get_loss(name)
    value = fn(pred, target)
    grad = fn.backward()
    pt = torch.tensor(pred, requires_grad=True)
    ref = getattr(torch.nn.functional, tfn)(pt, torch.tensor(target))
    ref.backward()
    assert value == pytest.approx(ref.item(), rel=1e-12)
    np.testing.assert_allclose(grad, pt.grad.numpy(), rtol=1e-10, atol=1e-15)
    _numeric_check(fn, pred.copy(), target)


def test_bce_clips_logs_and_bce_with_logits_is_stable():
    torch = pytest.importorskip("torch")
    p = np.array([0.0, 1.0, 0.5, 1.0])
    t = np.array([1.0, 0.0, 1.0, 1.0])
    value = losses.BCELoss()(p, t)
    assert value == pytest.approx(torch.nn.functional.binary_cross_entropy(torch.tensor(p), torch.tensor(t)).item())
    assert value == pytest.approx((100 + 100 + np.log(2) + 0) / 4)
    fn = losses.BCEWithLogitsLoss()
    assert fn(np.array([1000.0, -1000.0]), np.array([1.0, 0.0])) == pytest.approx(0.0, abs=1e-12)
    assert fn(np.array([1000.0]), np.array([0.0])) == pytest.approx(1000.0)
    np.testing.assert_allclose(fn.backward(), [1.0])


def test_l1_gradient_is_zero_where_equal_and_mse_value():
    fn = losses.L1Loss()
    assert fn(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 0.0, 5.0, 4.0])) == pytest.approx(1.0)
    np.testing.assert_array_equal(fn.backward(), [0, 0.25, -0.25, 0])
    assert losses.MSELoss()(np.array([[1.0, 3.0]]), np.array([[0.0, 0.0]])) == pytest.approx(5.0)


def test_functional_pairs_return_loss_and_cache():
    value, cache = L.softmax_cross_entropy_forward(LOGITS, LABELS, 0.1)
    obj = losses.CrossEntropyLoss(0.1)
    assert value == obj(LOGITS, LABELS)
    np.testing.assert_array_equal(L.softmax_cross_entropy_backward(cache), obj.backward())
    for fwd, bwd in ((L.mse_forward, L.mse_backward), (L.l1_forward, L.l1_backward),
                     (L.bce_with_logits_forward, L.bce_with_logits_backward)):
        v, c = fwd(LOGITS, PROBS)
        assert isinstance(v, float) and bwd(c).shape == LOGITS.shape


def test_target_arrays_are_not_modified():
    probs = PROBS.copy()
    losses.CrossEntropyLoss(0.3)(LOGITS, probs)
    np.testing.assert_array_equal(probs, PROBS)


@pytest.mark.parametrize("name,cls", [("cross_entropy", "CrossEntropyLoss"),
                                      ("sparse_categorical_crossentropy", "CrossEntropyLoss"),
                                      ("categorical_crossentropy", "CrossEntropyLoss"),
                                      ("softmax_cross_entropy", "CrossEntropyLoss"), ("mse", "MSELoss"),
                                      ("mean_squared_error", "MSELoss"), ("l2", "MSELoss"), ("l1", "L1Loss"),
                                      ("mae", "L1Loss"), ("mean_absolute_error", "L1Loss"),
                                      ("binary_crossentropy", "BCELoss"), ("bce", "BCELoss"),
                                      ("bce_with_logits", "BCEWithLogitsLoss"), ("Mean-Squared-Error", "MSELoss")])
def test_get_loss_names(name, cls):
    assert type(losses.get_loss(name)).__name__ == cls


def test_get_loss_objects_classes_and_errors():
    obj = losses.CrossEntropyLoss(0.2)
    assert losses.get_loss(obj) is obj
    assert isinstance(losses.get_loss(losses.L1Loss), losses.L1Loss)
    assert repr(obj) == "CrossEntropyLoss(label_smoothing=0.2)" and repr(losses.MSELoss()) == "MSELoss()"
    assert obj.get_config() == {"label_smoothing": 0.2}
    with pytest.raises(ValueError, match=r"get_loss: unknown loss 'hinge'; choose one of bce, bce_with_logits"):
        losses.get_loss("hinge")
    with pytest.raises(TypeError, match=r"get_loss: expected a loss name or a Loss object, got int"):
        losses.get_loss(3)


def test_backends(xp):
    z = xp.asarray(LOGITS.astype(np.float32))
    fn = losses.CrossEntropyLoss(0.1)
    value = fn(z, xp.asarray(LABELS))
    grad = fn.backward()
    ref = losses.CrossEntropyLoss(0.1)
    assert value == pytest.approx(ref(LOGITS.astype(np.float32), LABELS), rel=1e-5)
    np.testing.assert_allclose(to_numpy(grad), ref.backward(), rtol=1e-5, atol=1e-7)
    for name in ("mse", "l1", "bce_with_logits"):
        fn, ref = losses.get_loss(name), losses.get_loss(name)
        assert fn(z, xp.asarray(PROBS.astype(np.float32))) == pytest.approx(ref(LOGITS.astype(np.float32), PROBS.astype(np.float32)), rel=1e-5)
        np.testing.assert_allclose(to_numpy(fn.backward()), ref.backward(), rtol=1e-5, atol=1e-7)


def test_errors():
    ce = losses.CrossEntropyLoss()
    with pytest.raises(RuntimeError, match=r"CrossEntropyLoss.backward called before the loss was computed"):
        ce.backward()
    with pytest.raises(ValueError, match=r"CrossEntropyLoss: label 5 is out of range for 5 classes \(expected 0..4\)"):
        ce(LOGITS, np.array([0, 1, 2, 3, 4, 5]))
    with pytest.raises(ValueError, match=r"CrossEntropyLoss: label -1 is out of range for 5 classes"):
        ce(LOGITS, np.array([0, 1, 2, 3, 4, -1]))
    with pytest.raises(ValueError, match=r"CrossEntropyLoss: batch size mismatch: 6 predictions but 4 labels"):
        ce(LOGITS, LABELS[:4])
    with pytest.raises(ValueError, match=r"CrossEntropyLoss: batch size mismatch: 6 predictions but 2 targets"):
        ce(LOGITS, PROBS[:2])
    with pytest.raises(ValueError, match=r"CrossEntropyLoss: target shape \(6, 4\) does not match logits shape \(6, 5\) \(5 classes\)"):
        ce(LOGITS, PROBS[:, :4])
    with pytest.raises(ValueError, match=r"CrossEntropyLoss: target must be int labels \(N,\) or probabilities \(N, K\), got shape \(6, 5, 1\)"):
        ce(LOGITS, PROBS[:, :, None])
    with pytest.raises(ValueError, match=r"CrossEntropyLoss: class labels must be integers, got non-integer values"):
        ce(LOGITS, np.full(6, 0.5))
    with pytest.raises(ValueError, match=r"CrossEntropyLoss: class labels must be integers, got dtype bool"):
        ce(LOGITS, np.ones(6, bool))
    with pytest.raises(ValueError, match=r"CrossEntropyLoss: expected logits of shape \(N, K\), got \(6, 5, 1\)"):
        ce(LOGITS[:, :, None], LABELS)
    with pytest.raises(ValueError, match=r"CrossEntropyLoss: predictions must be a floating-point array, got int64"):
        ce(LABELS[:, None].astype(np.int64), LABELS)
    with pytest.raises(ValueError, match=r"CrossEntropyLoss: label_smoothing must be in \[0, 1\], got 1.5"):
        losses.CrossEntropyLoss(1.5)
    with pytest.raises(ValueError, match=r"cross_entropy: label_smoothing must be in \[0, 1\], got -0.1"):
        L.softmax_cross_entropy_forward(LOGITS, LABELS, -0.1)
    with pytest.raises(ValueError, match=r"MSELoss: target shape \(6,\) does not match prediction shape \(6, 5\)"):
        losses.MSELoss()(LOGITS, LABELS)
    with pytest.raises(ValueError, match=r"L1Loss: target shape \(3, 5\) does not match prediction shape \(6, 5\)"):
        losses.L1Loss()(LOGITS, PROBS[:3])
    with pytest.raises(ValueError, match=r"MSELoss: empty input of shape \(0, 5\)"):
        losses.MSELoss()(np.zeros((0, 5)), np.zeros((0, 5)))
    with pytest.raises(ValueError, match=r"BCELoss: predictions must be probabilities in \[0, 1\] \(apply a sigmoid"):
        losses.BCELoss()(LOGITS, PROBS)
    with pytest.raises(ValueError, match=r"BCEWithLogitsLoss: target shape"):
        losses.BCEWithLogitsLoss()(LOGITS, LABELS)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_loss_raises_floating_point_error(bad):
    z = LOGITS.copy()
    z[0, 0] = bad
    with pytest.raises(FloatingPointError, match=r"CrossEntropyLoss: the loss is nan \(not finite\).*lower learning rate.*check the inputs"):
        losses.CrossEntropyLoss()(z, LABELS)
    with pytest.raises(FloatingPointError, match=r"MSELoss: the loss is (nan|inf) \(not finite\).*lower learning rate"):
        losses.MSELoss()(z, PROBS)
    with pytest.raises(FloatingPointError, match=r"mse: the loss is"):
        L.mse_forward(z, PROBS)
