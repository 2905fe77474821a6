"""convnp.viz: PNGs for a tiny model (exist, right pixel size, not blank), NaN-free scaling, what is drawn
equals what the model computes, saliency against finite differences, Grad-CAM against its closed form,
and the error messages."""
import copy
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")
Image = pytest.importorskip("PIL.Image")

import convnp  # noqa: E402
from convnp import nn, viz  # noqa: E402
from convnp.gradcheck import numerical_gradient  # noqa: E402
from convnp.signal import correlate2d, kernels  # noqa: E402
from convnp.viz._mpl import scale01  # noqa: E402


# ---------------------------------------------------------------------------- helpers
def tiny_convnet(in_channels=1, seed=0, classes=3):
    """(N, C, 10, 10) -> conv 4@3x3 relu -> pool 2 -> conv 5@3x3 relu -> flatten -> dense."""
    model = nn.Sequential([nn.Conv2D(4, 3, activation="relu", in_channels=in_channels, seed=seed),
                           nn.MaxPool2D(2),
                           nn.Conv2D(5, 3, activation="relu", in_channels=4, seed=seed + 1),
                           nn.Flatten(), nn.Dense(classes, seed=seed + 2)])
    model(np.zeros((1, in_channels, 10, 10), np.float32))
    return model


def images(n=6, c=1, size=10, seed=0):
    return np.random.default_rng(seed).standard_normal((n, c, size, size)).astype(np.float32)


def check_png(path, fig):
    """The file exists, has the figure's pixel size and is not blank."""
    assert os.path.isfile(path)
    with Image.open(path) as img:
        w, h = img.size
        pixels = np.asarray(img.convert("RGB"), dtype=np.float64)
    inches = fig.get_size_inches()
    assert (w, h) == (round(inches[0] * fig.dpi), round(inches[1] * fig.dpi))
    assert pixels.var() > 0


def drawn_arrays(fig):
    """Every image array drawn in the figure (including sub-figures), in drawing order."""
    out = []
    for ax in fig.get_axes():
        out += [np.asarray(im.get_array(), dtype=np.float64) for im in ax.images]
    return out


# ---------------------------------------------------------------------------- import and helpers
def test_import_convnp_does_not_import_matplotlib():
    code = "import sys, convnp, convnp.viz; assert 'matplotlib' not in sys.modules, 'matplotlib imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_scale01_constant_and_nonfinite_do_not_nan():
    np.testing.assert_array_equal(scale01(np.full((3, 3), 7.0)), 0.5)
    np.testing.assert_array_equal(scale01(np.zeros((2, 2)), symmetric=True), 0.5)
    out = scale01(np.array([0.0, np.nan, 2.0, np.inf]))
    np.testing.assert_array_equal(out, [0.0, 0.5, 1.0, 0.5])
    np.testing.assert_allclose(scale01(np.array([-1.0, 0.0, 3.0]), symmetric=True), [1 / 3, 0.5, 1.0])


# ---------------------------------------------------------------------------- filters
def test_plot_filters_png_and_tiles_are_the_weights(tmp_path):
    model = tiny_convnet()
    path = tmp_path / "sub" / "filters.png"
    fig = viz.plot_filters(model, path=path)
    check_png(path, fig)
    w = model[0].weight.data.astype(np.float64)  # (4, 1, 3, 3)
    tiles = drawn_arrays(fig)
    assert len(tiles) == 4
    for o in range(4):  # shared scale: one min..max for all filters
        np.testing.assert_allclose(tiles[o], (w[o, 0] - w.min()) / (w.max() - w.min()), atol=1e-6)


def test_plot_filters_shared_vs_per_filter_scaling():
    layer = nn.Conv2D(2, 3, in_channels=1, seed=0)
    layer.weight.data[1] = 0.25 * layer.weight.data[0]  # filter 1 is a weaker copy of filter 0
    shared = drawn_arrays(viz.plot_filters(layer, scale="shared"))
    own = drawn_arrays(viz.plot_filters(layer, scale="filter"))
    np.testing.assert_allclose(own[0], own[1], atol=1e-6)  # each stretched to its own range: identical
    assert np.ptp(shared[1]) < 0.5 * np.ptp(shared[0])  # on one scale the weak copy has less contrast


def test_plot_filters_channels_grid_rgb_and_mean_modes(tmp_path):
    model = tiny_convnet(in_channels=3)
    w = model[0].weight.data
    assert len(drawn_arrays(viz.plot_filters(model, mode="channels"))) == 4 * 3
    rgb = drawn_arrays(viz.plot_filters(model))  # auto -> rgb for 3 input channels
    assert len(rgb) == 4 and rgb[0].shape == (3, 3, 3)
    np.testing.assert_allclose(rgb[0], (np.moveaxis(w[0], 0, -1) - w.min()) / (w.max() - w.min()), atol=1e-6)
    mean = drawn_arrays(viz.plot_filters(model, mode="mean"))
    assert len(mean) == 4 and mean[0].shape == (3, 3)
    second = drawn_arrays(viz.plot_filters(model, layer="2", max_filters=3, max_channels=2))
    assert len(second) == 3 * 2  # 5 filters x 4 channels, capped
    fig = viz.plot_filters(w, path=tmp_path / "array.png")  # a raw weight array works too
    check_png(tmp_path / "array.png", fig)


def test_plot_filters_before_and_after_share_one_scale(tmp_path):
    model = tiny_convnet()
    before = copy.deepcopy(model)
    model[0].weight.data *= 2.0  # "training" doubled the weights
    fig = viz.plot_filters(model, before=before, path=tmp_path / "ba.png")
    check_png(tmp_path / "ba.png", fig)
    tiles = drawn_arrays(fig)
    assert len(tiles) == 8
    assert [sf._suptitle.get_text() for sf in fig.subfigs] == ["before", "after"]
    w_before = before[0].weight.data[:, 0].astype(np.float64)
    m, big_m = w_before.min(), w_before.max()  # after = 2 * before, so the shared range is [2m, 2M]
    for o in range(4):
        np.testing.assert_allclose(tiles[o], (w_before[o] - 2 * m) / (2 * (big_m - m)), atol=1e-6)
        np.testing.assert_allclose(tiles[4 + o], (w_before[o] - m) / (big_m - m), atol=1e-6)
    assert max(t.max() for t in tiles[:4]) < 1.0 and min(t.min() for t in tiles[:4]) > 0.0


def test_constant_filters_do_not_nan(tmp_path):
    layer = nn.Conv2D(3, 3, in_channels=2, seed=0)
    layer.weight.data[:] = 0.3
    for scale in ("shared", "filter"):
        fig = viz.plot_filters(layer, scale=scale, path=tmp_path / f"const_{scale}.png")
        tiles = drawn_arrays(fig)
        assert all(np.isfinite(t).all() for t in tiles)
        np.testing.assert_array_equal(tiles[0], 0.5)
    with Image.open(tmp_path / "const_shared.png") as img:
        assert np.asarray(img).var() > 0  # tiles are grey, titles and labels still drawn


def test_plot_filters_errors():
    dense_only = nn.Sequential([nn.Flatten(), nn.Dense(3, in_features=4)])
    with pytest.raises(ValueError, match="plot_filters: Sequential has no convolution layer"):
        viz.plot_filters(dense_only)
    with pytest.raises(ValueError, match=r"plot_filters: layer '0' is not built yet; call the model on an input"):
        viz.plot_filters(nn.Sequential([nn.Conv2D(2, 3)]))
    with pytest.raises(ValueError, match=r"plot_filters: Conv2D 'Conv2D' is not built yet"):
        viz.plot_filters(nn.Conv2D(2, 3))
    model = tiny_convnet()
    with pytest.raises(ValueError, match="plot_filters: unknown mode 'colour'"):
        viz.plot_filters(model, mode="colour")
    with pytest.raises(ValueError, match="plot_filters: unknown scale 'global'"):
        viz.plot_filters(model, scale="global")
    with pytest.raises(ValueError, match=r"mode='rgb' needs 3 input channels, the filters have 1"):
        viz.plot_filters(model, mode="rgb")
    with pytest.raises(ValueError, match=r"before= has filters of shape \(4, 3, 3, 3\), but the layer has "
                                         r"\(4, 1, 3, 3\)"):
        viz.plot_filters(model, before=tiny_convnet(in_channels=3))
    with pytest.raises(ValueError, match=r"Dense '4' has a 2-D weight of shape \(3, 20\)"):
        viz.plot_filters(model, layer=4)
    with pytest.raises(ValueError, match="plot_filters: no layer named 'conv9'; layers: 0, 1, 2, 3, 4"):
        viz.plot_filters(model, layer="conv9")
    with pytest.raises(ValueError, match="plot_filters: layer index 7 is out of range for a model with 5 layers"):
        viz.plot_filters(model, layer=7)
    with pytest.raises(ValueError, match=r"expected a weight of shape \(O, I, kh, kw\).* got shape \(3,\)"):
        viz.plot_filters(np.ones(3))


# ---------------------------------------------------------------------------- feature maps
def test_feature_maps_are_the_layer_outputs(tmp_path):
    model = tiny_convnet()
    x = images(1)
    maps = viz.feature_maps(model, x[0])
    assert [name for name, _ in maps] == ["0 (Conv2D)", "2 (Conv2D)"]  # default: the conv layers
    with convnp.no_grad():
        a0 = model[0](x)
        a2 = model[2](model[1](a0))
    np.testing.assert_allclose(maps[0][1], a0[0], rtol=1e-6)
    np.testing.assert_allclose(maps[1][1], a2[0], rtol=1e-6)
    fig = viz.plot_feature_maps(model, x[0], layers=["0"], scale="map", path=tmp_path / "fm.png")
    check_png(tmp_path / "fm.png", fig)
    tiles = drawn_arrays(fig)
    assert len(tiles) == 1 + 4  # the input, then the 4 maps of conv "0"
    for c in range(4):
        np.testing.assert_allclose(tiles[1 + c], scale01(a0[0, c]), atol=1e-6)


def test_feature_maps_layer_selection_by_index_module_and_dense():
    model = tiny_convnet()
    x = images(1)[0]
    by_index = viz.feature_maps(model, x, layers=1)  # the max pool
    assert by_index[0][0] == "1 (MaxPool2D)" and by_index[0][1].shape == (4, 4, 4)
    by_module = viz.feature_maps(model, x, layers=[model[2], -1])
    assert by_module[1][0] == "4 (Dense)" and by_module[1][1].shape == (3,)
    fig = viz.plot_feature_maps(model, x, layers=[0, -1], max_maps=2, show_input=False)
    assert len(drawn_arrays(fig)) == 2 + 1
    assert model.training  # mode restored


def test_zero_variance_feature_maps_do_not_nan(tmp_path):
    model = tiny_convnet()
    model[0].weight.data[:] = 0.0  # every map of conv 0 is relu(0 + 0) = 0
    for scale in ("layer", "map"):
        fig = viz.plot_feature_maps(model, images(1)[0], layers="0", scale=scale, path=tmp_path / f"z{scale}.png")
        tiles = drawn_arrays(fig)
        assert all(np.isfinite(t).all() for t in tiles)
        np.testing.assert_array_equal(tiles[1], 0.5)
    check_png(tmp_path / "zlayer.png", fig)


def test_feature_maps_errors():
    model = tiny_convnet()
    with pytest.raises(ValueError, match=r"plot_feature_maps: expected one image, got a batch of 2"):
        viz.plot_feature_maps(model, images(2))
    with pytest.raises(ValueError, match="plot_feature_maps: no layer named 'conv1'"):
        viz.plot_feature_maps(model, images(1)[0], layers="conv1")
    with pytest.raises(ValueError, match="plot_feature_maps: unknown scale 'global'"):
        viz.plot_feature_maps(model, images(1)[0], scale="global")
    with pytest.raises(ValueError, match=r"expected an image \(H, W\) or \(C, H, W\), or a batch"):
        viz.plot_feature_maps(model, np.zeros((1, 1, 1, 10, 10)))
    dense = nn.Sequential([nn.Flatten(), nn.Dense(2, in_features=100)])
    with pytest.raises(ValueError, match="Sequential has no layer with a 4-D output to draw; pass layers="):
        viz.plot_feature_maps(dense, images(1)[0])


# ---------------------------------------------------------------------------- history
HIST = {"loss": [1.0, 0.6, 0.4], "accuracy": [0.5, 0.7, 0.8], "val_loss": [1.1, None, 0.5],
        "val_accuracy": [0.4, 0.6, 0.75], "lr": [0.1, 0.1, 0.01], "time": [1.0, 1.0, 1.0]}


def _curves(fig):
    """{panel title: {label: (x, y)}}"""
    out = {}
    for ax in fig.get_axes():
        out[ax.get_title()] = {line.get_label(): (list(line.get_xdata()), list(line.get_ydata()))
                               for line in ax.get_lines()}
    return out


def test_plot_history_panels_and_values(tmp_path):
    fig = viz.plot_history(HIST, path=tmp_path / "h.png")
    check_png(tmp_path / "h.png", fig)
    curves = _curves(fig)
    assert list(curves) == ["loss", "accuracy"]  # lr and time are bookkeeping
    assert curves["loss"]["train"] == ([1, 2, 3], [1.0, 0.6, 0.4])
    assert curves["loss"]["validation"] == ([1, 3], [1.1, 0.5])  # the missing value is skipped
    assert curves["accuracy"]["validation"][1] == [0.4, 0.6, 0.75]
    assert list(_curves(viz.plot_history(HIST, metrics="lr"))) == ["lr"]


def test_plot_history_accepts_history_objects_logs_and_run_dirs(tmp_path):
    from convnp.train.history import History
    h = History()
    for e in range(3):
        h.append(e + 1, {k: v[e] for k, v in HIST.items()})
    expected = _curves(viz.plot_history(HIST))
    assert _curves(viz.plot_history(h)) == expected
    assert _curves(viz.plot_history(h.to_dict())) == expected
    (tmp_path / "json_run").mkdir()
    (tmp_path / "json_run" / "history.json").write_text(json.dumps(h.to_dict()))
    assert _curves(viz.plot_history(tmp_path / "json_run")) == expected
    rows = ["epoch," + ",".join(HIST)] + [f"{e + 1}," + ",".join("" if v[e] is None else repr(v[e])
                                                                   for v in HIST.values()) for e in range(3)]
    (tmp_path / "csv_run").mkdir()
    (tmp_path / "csv_run" / "log.csv").write_text("\n".join(rows) + "\n")
    assert _curves(viz.plot_history(str(tmp_path / "csv_run"))) == expected
    lines = [json.dumps({"epoch": e + 1, **{k: v[e] for k, v in HIST.items()}}) for e in range(3)]
    (tmp_path / "log.jsonl").write_text("\n".join(lines))
    assert _curves(viz.plot_history(tmp_path / "log.jsonl")) == expected
    epochs, columns = viz.load_history([{"epoch": 5, "loss": 2.0}, {"epoch": 6, "loss": 1.0}])
    assert epochs == [5, 6] and columns["loss"] == [2.0, 1.0]


def test_plot_history_reads_a_checkpoint(tmp_path):
    from convnp.io.checkpoint import save_checkpoint
    model = tiny_convnet()
    run = tmp_path / "run"
    save_checkpoint(run / "last.npz", model, epoch=3, state={"history": {"epoch": [1, 2, 3], "history": HIST}},
                    input_shape=(1, 10, 10))
    assert _curves(viz.plot_history(run)) == _curves(viz.plot_history(HIST))
    save_checkpoint(run / "empty.npz", model, epoch=0, input_shape=(1, 10, 10))
    with pytest.raises(ValueError, match="holds no training history"):
        viz.plot_history(run / "empty.npz")


def test_plot_history_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="plot_history: no training log in .*; looked for history.json"):
        viz.plot_history(tmp_path)
    with pytest.raises(FileNotFoundError, match="plot_history: .*nope.json' does not exist"):
        viz.plot_history(tmp_path / "nope.json")
    with pytest.raises(ValueError, match="plot_history: no values logged for 'f1'; logged: loss, accuracy"):
        viz.plot_history(HIST, metrics=["f1"])
    with pytest.raises(ValueError, match="plot_history: nothing to plot; logged values: lr"):
        viz.plot_history({"lr": [0.1]})
    with pytest.raises(TypeError, match="plot_history: expected a History, a dict of lists"):
        viz.plot_history(3.5)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="plot_history: cannot read the log"):
        viz.plot_history(tmp_path / "bad.json")


# ---------------------------------------------------------------------------- confusion matrix, misclassified
def test_confusion_matrix_counts_and_normalization(tmp_path):
    t = np.array([0, 0, 1, 1, 1, 2])
    p = np.array([0, 1, 1, 1, 0, 2])
    cm = viz.confusion_matrix(t, p, num_classes=4)
    np.testing.assert_array_equal(cm, [[1, 1, 0, 0], [1, 2, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(viz.confusion_matrix(np.eye(3)[t], p), cm[:3, :3])  # one-hot labels
    fig = viz.plot_confusion_matrix(t, p, num_classes=4, normalize="true", class_names=list("abcd"),
                                    path=tmp_path / "cm.png")
    check_png(tmp_path / "cm.png", fig)
    shown = drawn_arrays(fig)[0]
    np.testing.assert_allclose(shown, [[0.5, 0.5, 0, 0], [1 / 3, 2 / 3, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]])
    assert np.isfinite(shown).all()  # the empty class row stays 0, not NaN
    pred_norm = drawn_arrays(viz.plot_confusion_matrix(cm, normalize="pred"))[0]
    np.testing.assert_allclose(pred_norm[:, :3].sum(axis=0), 1.0)
    texts = [t.get_text() for t in fig.get_axes()[0].texts]
    assert texts[:2] == ["0.50", "0.50"]


def test_confusion_matrix_errors():
    with pytest.raises(ValueError, match="confusion_matrix: y_true has 3 labels but y_pred has 2"):
        viz.confusion_matrix([0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match="confusion_matrix: label 3 is out of range for num_classes=2"):
        viz.confusion_matrix([0, 3], [0, 1], num_classes=2)
    with pytest.raises(ValueError, match="y_true must hold non-negative integer class indices"):
        viz.confusion_matrix([0, -1], [0, 1])
    with pytest.raises(ValueError, match="plot_confusion_matrix: unknown normalize 'rows'"):
        viz.plot_confusion_matrix([0, 1], [0, 1], normalize="rows")
    with pytest.raises(ValueError, match=r"with one argument it must be a square \(K, K\) matrix, got shape \(2, 3\)"):
        viz.plot_confusion_matrix(np.ones((2, 3)))
    with pytest.raises(ValueError, match="plot_confusion_matrix: 3 class_names for 2 classes"):
        viz.plot_confusion_matrix([0, 1], [1, 0], class_names=["a", "b", "c"])


def test_plot_misclassified_shows_exactly_the_mistakes(tmp_path):
    model = tiny_convnet()
    x = images(12)
    pred = viz.predict_classes(model, x, batch_size=5)
    with convnp.no_grad():
        np.testing.assert_array_equal(pred, model.eval()(x).argmax(axis=1))
    model.train()
    y = pred.copy()
    y[[1, 4, 9]] = (pred[[1, 4, 9]] + 1) % 3
    fig = viz.plot_misclassified(model, x, y, class_names=["cat", "dog", "emu"], path=tmp_path / "mis.png")
    check_png(tmp_path / "mis.png", fig)
    titles = [ax.get_title() for ax in fig.get_axes() if ax.images]
    names = ["cat", "dog", "emu"]
    assert titles == [f"true {names[y[i]]} / pred {names[pred[i]]}" for i in (1, 4, 9)]
    np.testing.assert_allclose(drawn_arrays(fig)[1], scale01(x[4, 0]), atol=1e-6)
    assert fig._suptitle.get_text() == "3 of 12 misclassified (25.0%)"
    assert model.training


def test_plot_misclassified_none_wrong_and_errors(tmp_path):
    model = tiny_convnet()
    x = images(4)
    pred = viz.predict_classes(model, x)
    fig = viz.plot_misclassified(model, x, pred, path=tmp_path / "none.png")
    check_png(tmp_path / "none.png", fig)
    assert "no misclassified images among 4" in [t.get_text() for t in fig.get_axes()[0].texts]
    fig = viz.plot_misclassified(None, x[:, 0], np.array([0, 1, 2, 0]), y_pred=np.array([1, 1, 2, 2]))
    assert len(drawn_arrays(fig)) == 2
    with pytest.raises(ValueError, match="plot_misclassified: x has 4 images but y has 3 labels"):
        viz.plot_misclassified(model, x, pred[:3])
    with pytest.raises(ValueError, match=r"plot_misclassified: x must be a batch \(N, C, H, W\) or \(N, H, W\)"):
        viz.plot_misclassified(model, x[0, 0, 0], pred)


# ---------------------------------------------------------------------------- kernel responses
def test_plot_kernel_response_draws_correlations(tmp_path):
    img = np.tile(np.arange(8.0), (8, 1))  # a horizontal ramp
    fig = viz.plot_kernel_response(img, path=tmp_path / "k.png")
    check_png(tmp_path / "k.png", fig)
    tiles = drawn_arrays(fig)
    assert len(tiles) == 1 + 2 * 4  # image, then kernel + response for sobel_x, sobel_y, laplacian, gaussian
    np.testing.assert_allclose(tiles[2], scale01(correlate2d(img, kernels.sobel_x(), "same", "symm")))
    np.testing.assert_array_equal(tiles[4], 0.5)  # sobel_y on a horizontal ramp: constant 0, grey, no NaN
    named = viz.kernel_set({"edge": kernels.sobel_x(), "blur": "box"})
    assert [n for n, _ in named] == ["edge", "blur"]
    np.testing.assert_array_equal(named[1][1], kernels.box(3))


def test_learned_filter_response_is_what_conv2d_computes():
    layer = nn.Conv2D(3, 3, in_channels=2, use_bias=False, seed=4)
    x = images(1, c=2, size=7)
    with convnp.no_grad():
        y = layer(x)[0]  # (3, 5, 5)
    items = viz.kernel_set(layer)
    assert [n for n, _ in items] == ["learned 0", "learned 1", "learned 2"]
    for o, (_, k) in enumerate(items):
        np.testing.assert_allclose(viz.kernel_response(x[0].astype(np.float64), k, mode="valid"), y[o], rtol=1e-5,
                                   atol=1e-5)
    fig = viz.plot_kernel_response(x[0], layer)
    assert len(drawn_arrays(fig)) == 1 + 2 * 3


def test_kernel_response_errors():
    with pytest.raises(ValueError, match="plot_kernel_response: unknown kernel 'sobel'; named kernels: sobel_x"):
        viz.plot_kernel_response(np.ones((5, 5)), ["sobel"])
    with pytest.raises(ValueError, match=r"a 3-channel filter needs a 3-channel image \(C, H, W\), got shape \(5, 5\)"):
        viz.plot_kernel_response(np.ones((5, 5)), np.ones((2, 3, 3, 3)))
    with pytest.raises(ValueError, match=r"plot_kernel_response: expected an image \(H, W\), \(C, H, W\)"):
        viz.plot_kernel_response(np.ones(5))
    with pytest.raises(ValueError, match=r"kernel 'k0' must be 2-D \(kh, kw\) or 3-D"):
        viz.plot_kernel_response(np.ones((5, 5)), [np.ones(3)])


# ---------------------------------------------------------------------------- saliency
def left_half_model(height=6, width=8, classes=3, conv=False):
    """A model whose class scores only read the left half of the image (weights on the right are 0)."""
    rng = np.random.default_rng(1)
    if not conv:
        model = nn.Sequential([nn.Flatten(), nn.Dense(classes, in_features=height * width, seed=0)])
        mask = np.zeros((height, width), np.float32)
        mask[:, : width // 2] = 1
        model[1].weight.data *= mask.reshape(1, -1)
        return model
    # conv 3x3 (valid) -> flatten -> dense reading only output columns whose window stays left of the middle
    model = nn.Sequential([nn.Conv2D(2, 3, in_channels=1, activation="tanh", seed=0), nn.Flatten(),
                           nn.Dense(classes, in_features=2 * (height - 2) * (width - 2), seed=1)])
    model[0].bias.data[:] = rng.standard_normal(2).astype(np.float32)
    mask = np.zeros((2, height - 2, width - 2), np.float32)
    mask[:, :, : width // 2 - 2] = 1  # output column j reads input columns j..j+2 < width // 2
    model[2].weight.data *= mask.reshape(1, -1)
    return model


@pytest.mark.parametrize("conv", [False, True])
def test_saliency_is_zero_where_the_model_does_not_look(conv):
    model = left_half_model(conv=conv)
    x = np.random.default_rng(2).standard_normal((4, 1, 6, 8)).astype(np.float32)
    heat = viz.saliency(model, x)
    assert heat.shape == (4, 6, 8)
    assert np.all(heat[:, :, 4:] == 0.0)  # exactly zero on the right half
    assert np.all(heat[:, :, :4].reshape(4, -1).max(axis=1) > 0)


def test_saliency_equals_the_numerical_gradient_of_the_class_score():
    model = tiny_convnet(in_channels=2).astype(np.float64)
    x = np.random.default_rng(3).standard_normal((2, 2, 10, 10))
    classes = np.array([2, 0])
    heat = viz.saliency(model, x, class_index=classes, channels=None)
    assert heat.shape == x.shape
    model.eval()
    for i, c in enumerate(classes):
        xi = x[i:i + 1].copy()
        with convnp.no_grad():
            num = numerical_gradient(lambda: model(xi)[0, c], xi)
        np.testing.assert_allclose(heat[i], np.abs(num[0]), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(viz.saliency(model, x, classes, channels="sum"), heat.sum(axis=1))
    np.testing.assert_allclose(viz.saliency(model, x, classes), heat.max(axis=1))


def test_saliency_default_class_is_the_prediction_and_the_model_is_left_as_found():
    model = tiny_convnet()
    model[0].compute_input_grad = False
    x = images(3)
    model(x)
    model.backward(np.ones((3, 3), np.float32))
    grads = {n: p.grad.copy() for n, p in model.named_parameters()}
    heat, classes = viz.saliency(model, x, return_class=True)
    with convnp.no_grad():
        np.testing.assert_array_equal(classes, model.eval()(x).argmax(axis=1))
    model.train()
    np.testing.assert_allclose(heat, viz.saliency(model, x, class_index=classes))
    single = viz.saliency(model, x[0])
    assert single.shape == (10, 10)
    np.testing.assert_allclose(single, heat[0], rtol=1e-6)
    assert model.training and model[0].compute_input_grad is False
    for n, p in model.named_parameters():
        np.testing.assert_array_equal(p.grad, grads[n])


def test_saliency_errors():
    model = tiny_convnet()
    x = images(2)
    with pytest.raises(ValueError, match=r"saliency: class_index \[0, 5\] is out of range for 3 classes"):
        viz.saliency(model, x, class_index=[0, 5])
    with pytest.raises(ValueError, match=r"saliency: class_index must be an int or 2 ints, got shape \(3,\)"):
        viz.saliency(model, x, class_index=[0, 1, 2])
    with pytest.raises(ValueError, match="saliency: unknown channels 'min'"):
        viz.saliency(model, x, channels="min")
    fcn = nn.Sequential([nn.Conv2D(2, 3, in_channels=1, seed=0)])
    with pytest.raises(ValueError, match=r"saliency: the model must output class scores \(N, K\), got shape "
                                         r"\(2, 2, 8, 8\)"):
        viz.saliency(fcn, x)


# ---------------------------------------------------------------------------- Grad-CAM
def cam_model(seed=0):
    """conv 3@3x3 relu -> global average pool -> dense: Grad-CAM = CAM = relu(sum_k W[c, k] A_k) / (h w)."""
    model = nn.Sequential([nn.Conv2D(3, 3, activation="relu", in_channels=1, seed=seed),
                           nn.GlobalAvgPool2D(), nn.Dense(4, in_features=3, seed=seed + 1)])
    return model


def test_grad_cam_equals_class_activation_mapping():
    model = cam_model()
    x = np.random.default_rng(0).standard_normal((3, 1, 9, 9)).astype(np.float32)
    cam, classes = viz.grad_cam(model, x, upsample=False, return_class=True)
    assert cam.shape == (3, 7, 7)
    with convnp.no_grad():
        a = model[0](x)  # (3, 3, 7, 7)
    w = model[2].weight.data
    for i, c in enumerate(classes):
        expected = np.maximum((w[c][:, None, None] * a[i]).sum(axis=0), 0)
        expected = expected / expected.max() if expected.max() > 0 else expected
        np.testing.assert_allclose(cam[i], expected, rtol=1e-5, atol=1e-6)
    assert cam.min() >= 0 and np.isclose(cam.reshape(3, -1).max(axis=1), 1).all()


def test_grad_cam_upsampled_shape_layers_and_single_image():
    model = tiny_convnet()
    x = images(2)
    cam = viz.grad_cam(model, x)
    assert cam.shape == (2, 10, 10) and cam.dtype == np.float32
    assert np.all((cam >= 0) & (cam <= 1))
    small = viz.grad_cam(model, x, upsample=False)
    assert small.shape == (2, 2, 2)  # the last conv layer ("2") by default
    np.testing.assert_allclose(viz.grad_cam(model, x, layer="2", upsample=False), small)
    np.testing.assert_allclose(viz.grad_cam(model, x, layer=2, upsample=False), small)
    assert viz.grad_cam(model, x, layer=model[0], upsample=False).shape == (2, 8, 8)
    assert viz.grad_cam(model, x[0], class_index=1).shape == (10, 10)


def test_grad_cam_bilinear_upsampling_of_a_constant_is_constant_and_keeps_the_corners():
    from convnp.viz.saliency import _resize_bilinear
    maps = np.random.default_rng(0).random((2, 3, 4))
    up = _resize_bilinear(maps, (6, 8))
    assert up.shape == (2, 6, 8)
    np.testing.assert_allclose(_resize_bilinear(np.full((1, 3, 3), 0.7), (7, 5)), 0.7)
    np.testing.assert_allclose(up[:, 0, 0], maps[:, 0, 0])
    np.testing.assert_allclose(up[:, -1, -1], maps[:, -1, -1])
    torch = pytest.importorskip("torch")
    ref = torch.nn.functional.interpolate(torch.tensor(maps)[:, None], size=(6, 8), mode="bilinear",
                                          align_corners=False)[:, 0].numpy()
    np.testing.assert_allclose(up, ref, rtol=1e-12)


def test_grad_cam_all_negative_evidence_gives_zeros_not_nan():
    model = cam_model()
    model[2].weight.data[:] = -1.0  # relu outputs >= 0, negative weights: every map is relu(<= 0) = 0
    cam = viz.grad_cam(model, images(2, size=9))
    assert np.isfinite(cam).all() and np.all(cam == 0)


def test_grad_cam_errors():
    model = tiny_convnet()
    x = images(1)
    with pytest.raises(ValueError, match="grad_cam: Sequential has no convolution layer in its chain of layers"):
        viz.grad_cam(nn.Sequential([nn.Flatten(), nn.Dense(2, in_features=100)]), x)
    with pytest.raises(ValueError, match=r"grad_cam: layer '4' outputs shape \(1, 3\); Grad-CAM needs a 4-D"):
        viz.grad_cam(model, x, layer="4")
    block = nn.Sequential([nn.Residual(nn.Sequential([nn.Conv2D(1, 3, padding="same", in_channels=1, seed=0)])),
                           nn.Flatten(), nn.Dense(2, in_features=100, seed=1)])
    inner = block[0].body[0]
    with pytest.raises(ValueError, match=r"grad_cam: layer .* is inside a block; choose a step of the model's "
                                         r"chain: 0, 1, 2"):
        viz.grad_cam(block, x, layer=inner)
    assert viz.grad_cam(block, x).shape == (1, 10, 10)  # the Residual block contains a conv: it is the default
    with pytest.raises(TypeError, match="grad_cam: a layer is a name, an index or a Module, got float"):
        viz.grad_cam(model, x, layer=1.5)


def test_plot_saliency_png(tmp_path):
    model = tiny_convnet()
    fig = viz.plot_saliency(model, images(1)[0], class_names=["a", "b", "c"], path=tmp_path / "s.png")
    check_png(tmp_path / "s.png", fig)
    assert [ax.get_title() for ax in fig.get_axes()] == ["input", "saliency |d score / d x|", "Grad-CAM"]
    assert fig._suptitle.get_text().startswith("class ")
    dense = left_half_model()
    fig = viz.plot_saliency(dense, np.ones((1, 6, 8), np.float32), path=tmp_path / "d.png")
    assert len(fig.get_axes()) == 2  # no conv layer: saliency only
    with pytest.raises(ValueError, match="plot_saliency: unknown method 'cam'"):
        viz.plot_saliency(model, images(1)[0], method="cam")
    with pytest.raises(ValueError, match="plot_saliency: expected one image, got a batch of 2"):
        viz.plot_saliency(model, images(2))


def test_saliency_and_grad_cam_on_the_model_device(xp):
    model = tiny_convnet()
    x = images(2)
    ref_heat, ref_cam = viz.saliency(model, x), viz.grad_cam(model, x)
    if xp is not np:
        model.to("cuda")
    heat = viz.saliency(model, xp.asarray(x))
    cam = viz.grad_cam(model, x)  # NumPy input is moved to the model's device
    assert type(heat) is type(xp.zeros(1)) and type(cam) is type(xp.zeros(1))
    np.testing.assert_allclose(convnp.to_numpy(heat), ref_heat, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(convnp.to_numpy(cam), ref_cam, rtol=1e-4, atol=1e-5)
    assert not math.isnan(float(convnp.to_numpy(cam).sum()))


def test_visualize_mnist_example_writes_every_picture(tmp_path, capsys):
    import runpy
    from pathlib import Path
    example = Path(__file__).resolve().parents[2] / "examples" / "visualize_mnist.py"
    main = runpy.run_path(str(example))["main"]
    assert main(["--out", str(tmp_path), "--train-size", "200", "--val-size", "100", "--epochs", "1"]) == 0
    expected = {"filters_before_after.png", "conv1_feature_maps.png", "kernel_response.png", "learned_response.png",
                "misclassified.png", "confusion_matrix.png", "curves.png", "saliency.png"}
    assert set(os.listdir(tmp_path)) == expected
    for name in expected:
        with Image.open(tmp_path / name) as img:
            assert np.asarray(img.convert("L"), dtype=np.float64).var() > 0
    assert "validation accuracy" in capsys.readouterr().out
