"""Plain torch.nn reference networks for the model-zoo tests (torchvision is not installed): the same
layouts and state-dict keys as torchvision, written from the papers, used as oracles."""
from collections import OrderedDict

import numpy as np
import torch
import torch.nn as tnn
import torch.nn.functional as TF

VGG_CFG = {11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
           16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]}


class TBasic(tnn.Module):
    expansion = 1

    def __init__(self, cin, c, stride=1, shortcut="B"):
        super().__init__()
        self.conv1 = tnn.Conv2d(cin, c, 3, stride, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(c)
        self.conv2 = tnn.Conv2d(c, c, 3, 1, 1, bias=False)
        self.bn2 = tnn.BatchNorm2d(c)
        self.shortcut_kind = shortcut
        self.stride, self.cin, self.cout = stride, cin, c
        self.downsample = (tnn.Sequential(tnn.Conv2d(cin, c, 1, stride, bias=False), tnn.BatchNorm2d(c))
                           if (stride != 1 or cin != c) and shortcut == "B" else None)

    def forward(self, x):
        out = TF.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            idt = self.downsample(x)
        elif self.stride != 1 or self.cin != self.cout:  # option A: subsample, zero channels appended
            sub = x[:, :, ::self.stride, ::self.stride]
            idt = TF.pad(sub, (0, 0, 0, 0, 0, self.cout - self.cin))
        else:
            idt = x
        return TF.relu(out + idt)


class TBottleneck(tnn.Module):
    expansion = 4

    def __init__(self, cin, c, stride=1, shortcut="B"):
        super().__init__()
        self.conv1 = tnn.Conv2d(cin, c, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(c)
        self.conv2 = tnn.Conv2d(c, c, 3, stride, 1, bias=False)
        self.bn2 = tnn.BatchNorm2d(c)
        self.conv3 = tnn.Conv2d(c, 4 * c, 1, bias=False)
        self.bn3 = tnn.BatchNorm2d(4 * c)
        self.downsample = (tnn.Sequential(tnn.Conv2d(cin, 4 * c, 1, stride, bias=False), tnn.BatchNorm2d(4 * c))
                           if stride != 1 or cin != 4 * c else None)

    def forward(self, x):
        out = TF.relu(self.bn1(self.conv1(x)))
        out = TF.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return TF.relu(out + (x if self.downsample is None else self.downsample(x)))


class TPreAct(tnn.Module):
    expansion = 1

    def __init__(self, cin, c, stride=1, shortcut="B"):
        super().__init__()
        self.bn1 = tnn.BatchNorm2d(cin)
        self.conv1 = tnn.Conv2d(cin, c, 3, stride, 1, bias=False)
        self.bn2 = tnn.BatchNorm2d(c)
        self.conv2 = tnn.Conv2d(c, c, 3, 1, 1, bias=False)
        self.downsample = (tnn.Sequential(tnn.Conv2d(cin, c, 1, stride, bias=False))
                           if stride != 1 or cin != c else None)

    def forward(self, x):
        a = TF.relu(self.bn1(x))
        idt = x if self.downsample is None else self.downsample(a)
        return self.conv2(TF.relu(self.bn2(self.conv1(a)))) + idt


class TResNet(tnn.Module):
    def __init__(self, block="basic", layers=(2, 2, 2, 2), num_classes=1000, in_channels=3,
                 widths=(64, 128, 256, 512), stem="imagenet", shortcut="B"):
        super().__init__()
        cls = {"basic": TBasic, "bottleneck": TBottleneck, "preact": TPreAct}[block]
        self.preact = block == "preact"
        self.stem = stem
        k, s, p = (7, 2, 3) if stem == "imagenet" else (3, 1, 1)
        self.conv1 = tnn.Conv2d(in_channels, widths[0], k, s, p, bias=False)
        if not self.preact:
            self.bn1 = tnn.BatchNorm2d(widths[0])
        c = widths[0]
        for i, (n, w) in enumerate(zip(layers, widths)):
            blocks = []
            for j in range(n):
                blocks.append(cls(c, w, 2 if i > 0 and j == 0 else 1, shortcut))
                c = w * cls.expansion
            setattr(self, f"layer{i + 1}", tnn.Sequential(*blocks))
        self.n_stages = len(layers)
        if self.preact:
            self.bn_final = tnn.BatchNorm2d(c)
        self.fc = tnn.Linear(c, num_classes)

    def forward(self, x):
        x = self.conv1(x)
        if not self.preact:
            x = TF.relu(self.bn1(x))
        if self.stem == "imagenet":
            x = TF.max_pool2d(x, 3, 2, 1)
        for i in range(self.n_stages):
            x = getattr(self, f"layer{i + 1}")(x)
        if self.preact:
            x = TF.relu(self.bn_final(x))
        return self.fc(torch.flatten(TF.adaptive_avg_pool2d(x, 1), 1))


class TDenseLayer(tnn.Module):
    def __init__(self, cin, k, bn_size):
        super().__init__()
        self.norm1 = tnn.BatchNorm2d(cin)
        self.relu1 = tnn.ReLU()
        self.conv1 = tnn.Conv2d(cin, bn_size * k, 1, bias=False)
        self.norm2 = tnn.BatchNorm2d(bn_size * k)
        self.relu2 = tnn.ReLU()
        self.conv2 = tnn.Conv2d(bn_size * k, k, 3, 1, 1, bias=False)

    def forward(self, x):
        return self.conv2(self.relu2(self.norm2(self.conv1(self.relu1(self.norm1(x))))))


class TDenseBlock(tnn.ModuleDict):
    def __init__(self, cin, n, k, bn_size):
        super().__init__()
        for i in range(n):
            self.add_module(f"denselayer{i + 1}", TDenseLayer(cin + i * k, k, bn_size))

    def forward(self, x):
        feats = [x]
        for layer in self.values():
            feats.append(layer(torch.cat(feats, 1)))
        return torch.cat(feats, 1)


class TDenseNet(tnn.Module):
    def __init__(self, block_config=(6, 12, 24, 16), growth_rate=32, num_init_features=64, bn_size=4,
                 num_classes=1000, in_channels=3):
        super().__init__()
        f = OrderedDict([("conv0", tnn.Conv2d(in_channels, num_init_features, 7, 2, 3, bias=False)),
                         ("norm0", tnn.BatchNorm2d(num_init_features)), ("relu0", tnn.ReLU()),
                         ("pool0", tnn.MaxPool2d(3, 2, 1))])
        c = num_init_features
        for i, n in enumerate(block_config):
            f[f"denseblock{i + 1}"] = TDenseBlock(c, n, growth_rate, bn_size)
            c += n * growth_rate
            if i != len(block_config) - 1:
                f[f"transition{i + 1}"] = tnn.Sequential(OrderedDict([
                    ("norm", tnn.BatchNorm2d(c)), ("relu", tnn.ReLU()), ("conv", tnn.Conv2d(c, c // 2, 1, bias=False)),
                    ("pool", tnn.AvgPool2d(2, 2))]))
                c //= 2
        f["norm5"] = tnn.BatchNorm2d(c)
        self.features = tnn.Sequential(f)
        self.classifier = tnn.Linear(c, num_classes)

    def forward(self, x):
        x = TF.relu(self.features(x))
        return self.classifier(torch.flatten(TF.adaptive_avg_pool2d(x, 1), 1))


class TVGG(tnn.Module):
    def __init__(self, depth=16, batch_norm=False, num_classes=1000, width=1.0):
        super().__init__()
        layers, c = [], 3
        for v in VGG_CFG[depth]:
            if v == "M":
                layers.append(tnn.MaxPool2d(2, 2))
                continue
            out = max(1, int(round(v * width)))
            layers.append(tnn.Conv2d(c, out, 3, padding=1))
            if batch_norm:
                layers.append(tnn.BatchNorm2d(out))
            layers.append(tnn.ReLU())
            c = out
        hidden = max(1, int(round(4096 * width)))
        self.features = tnn.Sequential(*layers)
        self.avgpool = tnn.AdaptiveAvgPool2d((7, 7))
        self.classifier = tnn.Sequential(tnn.Linear(c * 49, hidden), tnn.ReLU(), tnn.Dropout(), tnn.Linear(hidden, hidden),
                                         tnn.ReLU(), tnn.Dropout(), tnn.Linear(hidden, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class TAlexNet(tnn.Module):
    def __init__(self, num_classes=1000):
        super().__init__()
        self.features = tnn.Sequential(
            tnn.Conv2d(3, 64, 11, 4, 2), tnn.ReLU(), tnn.MaxPool2d(3, 2), tnn.Conv2d(64, 192, 5, padding=2), tnn.ReLU(),
            tnn.MaxPool2d(3, 2), tnn.Conv2d(192, 384, 3, padding=1), tnn.ReLU(), tnn.Conv2d(384, 256, 3, padding=1),
            tnn.ReLU(), tnn.Conv2d(256, 256, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(3, 2))
        self.avgpool = tnn.AdaptiveAvgPool2d((6, 6))
        self.classifier = tnn.Sequential(tnn.Dropout(), tnn.Linear(9216, 4096), tnn.ReLU(), tnn.Dropout(),
                                         tnn.Linear(4096, 4096), tnn.ReLU(), tnn.Linear(4096, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def randomize_bn(module, seed=0):
    """Give every BatchNorm non-trivial affine parameters and running statistics (so eval mode tests them)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, tnn.BatchNorm2d):
                m.weight.copy_(1 + 0.2 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=g))
                m.running_mean.copy_(0.2 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
                m.num_batches_tracked.fill_(7)
    return module


def numpy_state(module):
    return OrderedDict((k, v.detach().numpy().copy()) for k, v in module.state_dict().items())


def copy_into(convnp_model, torch_model):
    """Load the torch model's state dict into the convnp model with strict key and shape checking."""
    convnp_model.load_state_dict(numpy_state(torch_model), strict=True)
    return convnp_model


def as_np(t):
    return t.detach().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
