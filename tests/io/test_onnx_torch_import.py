"""ONNX files written by torch.onnx.export itself, with the TorchScript exporter (dynamo=False, opsets 13 and
17) and the default one (dynamo=True, opset 18): LeNet (torch.flatten and x.view(x.size(0), -1)), ResNet-18
and a DenseNet-like net, imported by convnp.io.onnx_import; outputs and input gradients match torch."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
tnn = torch.nn

from convnp.io.onnx_import import load_onnx  # noqa: E402


class LeNet(tnn.Module):
    def __init__(self, view=False):
        super().__init__()
        self.view = view
        self.c1, self.pool = tnn.Conv2d(1, 6, 5, padding=2), tnn.AvgPool2d(2)
        self.c2, self.mp = tnn.Conv2d(6, 16, 5), tnn.MaxPool2d(2, ceil_mode=True)
        self.f1, self.f2 = tnn.Linear(16 * 5 * 5, 120), tnn.Linear(120, 10)

    def forward(self, x):
        x = self.mp(torch.relu(self.c2(self.pool(torch.tanh(self.c1(x))))))
        x = x.view(x.size(0), -1) if self.view else torch.flatten(x, 1)
        return self.f2(torch.sigmoid(self.f1(x)))


class Basic(tnn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1, self.bn1 = tnn.Conv2d(cin, cout, 3, stride, 1, bias=False), tnn.BatchNorm2d(cout)
        self.conv2, self.bn2 = tnn.Conv2d(cout, cout, 3, 1, 1, bias=False), tnn.BatchNorm2d(cout)
        self.down = None if stride == 1 and cin == cout else tnn.Sequential(
            tnn.Conv2d(cin, cout, 1, stride, bias=False), tnn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(y + (x if self.down is None else self.down(x)))


class ResNet18(tnn.Module):
    """torchvision's resnet18 layout (written here: torchvision is not a test dependency)."""

    def __init__(self, classes=10):
        super().__init__()
        self.stem = tnn.Sequential(tnn.Conv2d(3, 64, 7, 2, 3, bias=False), tnn.BatchNorm2d(64), tnn.ReLU(),
                                   tnn.MaxPool2d(3, 2, 1))
        blocks, cin = [], 64
        for cout, stride in ((64, 1), (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1)):
            blocks.append(Basic(cin, cout, stride))
            cin = cout
        self.blocks = tnn.Sequential(*blocks)
        self.fc = tnn.Linear(512, classes)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.fc(x.mean(dim=(2, 3)))  # ReduceMean in the file (adaptive pooling writes GlobalAveragePool)


class DenseNetLike(tnn.Module):
    """Dense blocks (BN-ReLU-conv, concatenation), a transition with AvgPool, ConvTranspose, ReLU6 (Clip),
    adaptive pooling and a scaled, shifted head (Mul/Sub/Div with constants)."""

    def __init__(self):
        super().__init__()
        self.conv0 = tnn.Conv2d(3, 8, 3, padding=1)
        self.layers = tnn.ModuleList([tnn.Sequential(tnn.BatchNorm2d(8 + 4 * i), tnn.ReLU(),
                                                     tnn.Conv2d(8 + 4 * i, 4, 3, padding=1)) for i in range(3)])
        self.trans = tnn.Sequential(tnn.BatchNorm2d(20), tnn.ReLU6(), tnn.Conv2d(20, 8, 1), tnn.AvgPool2d(2))
        self.up = tnn.ConvTranspose2d(8, 6, 3, stride=2, padding=1, output_padding=1)
        self.pool = tnn.AdaptiveAvgPool2d(1)
        self.fc = tnn.Linear(6, 5)

    def forward(self, x):
        x = self.conv0(x)
        for layer in self.layers:
            x = torch.cat([x, layer(x)], 1)
        x = self.up(self.trans(x))
        x = self.pool(x).flatten(1)
        return (self.fc(x) * 2.0 - 0.5) / 3.0


def _randomize_bn(model, seed):
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, tnn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model.eval()


def _export(model, x, path, dynamo, opset):
    kwargs = dict(input_names=["x"], opset_version=opset, dynamo=dynamo)
    if dynamo:
        pytest.importorskip("onnxscript")
        kwargs["dynamic_shapes"] = ({0: torch.export.Dim("n", min=1, max=64)},)
    else:
        kwargs["dynamic_axes"] = {"x": {0: "n"}}
    torch.onnx.export(model, (x,), str(path), **kwargs)
    return path


def _check(model, x, path, rtol=2e-4):
    xt = torch.tensor(x, requires_grad=True)
    yt = model(xt)
    g = np.random.default_rng(1).normal(size=tuple(yt.shape)).astype(np.float32)
    yt.backward(torch.tensor(g))
    net = load_onnx(path)
    for batch in (x, x[:1]):  # the batch size is not baked in (Shape/Reshape run at forward time)
        y = net(batch)
        ref = model(torch.tensor(batch)).detach().numpy()
        assert y.shape == ref.shape
        np.testing.assert_allclose(y, ref, rtol=rtol, atol=rtol * np.abs(ref).max())
    net(x)
    dx = net.backward(g)
    ref = xt.grad.numpy()
    np.testing.assert_allclose(dx, ref, rtol=rtol, atol=rtol * np.abs(ref).max())
    return net


EXPORTERS = [pytest.param(False, 13, id="torchscript-13"), pytest.param(False, 17, id="torchscript-17"),
             pytest.param(True, 18, id="dynamo-18")]


@pytest.mark.parametrize("dynamo,opset", EXPORTERS)
@pytest.mark.parametrize("view", [False, True], ids=["flatten", "view"])
def test_lenet(tmp_path, dynamo, opset, view):
    torch.manual_seed(0)
    model = LeNet(view).eval()
    x = np.random.default_rng(0).normal(size=(3, 1, 28, 28)).astype(np.float32)
    _check(model, x, _export(model, torch.tensor(x), tmp_path / "lenet.onnx", dynamo, opset))


@pytest.mark.parametrize("dynamo,opset", [EXPORTERS[0], EXPORTERS[2]])
def test_resnet18(tmp_path, dynamo, opset):
    torch.manual_seed(0)
    model = _randomize_bn(ResNet18(), 0)
    x = np.random.default_rng(0).normal(size=(2, 3, 64, 64)).astype(np.float32)
    _check(model, x, _export(model, torch.tensor(x), tmp_path / "r18.onnx", dynamo, opset), rtol=1e-3)


@pytest.mark.parametrize("dynamo,opset", EXPORTERS)
def test_densenet_like(tmp_path, dynamo, opset):
    torch.manual_seed(0)
    model = _randomize_bn(DenseNetLike(), 1)
    x = np.random.default_rng(2).normal(size=(2, 3, 16, 16)).astype(np.float32)
    _check(model, x, _export(model, torch.tensor(x), tmp_path / "d.onnx", dynamo, opset))


def test_unsupported_operators_are_listed_at_once(tmp_path):
    class Odd(tnn.Module):
        def forward(self, x):
            return torch.nn.functional.pad(x, (1, 1, 1, 1)).cumsum(2).floor()

    path = _export(Odd(), torch.zeros(1, 1, 4, 4), tmp_path / "odd.onnx", False, 17)
    with pytest.raises(NotImplementedError, match=r"does not support \d+ operators used in this file: .*"
                                                  r"CumSum \(1x, e.g. node .*Floor \(1x.*Pad \(1x"):
        load_onnx(path)
