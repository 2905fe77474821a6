"""CI training check: SimpleConvNet, 10,000 MNIST images, one seeded epoch, must reach a real accuracy.

A broken gradient anywhere in conv / pool / dense / loss / Adam typically leaves the network near chance or
well below this threshold (one good epoch of 200 steps on 10k images gives about 94%).
"""
import numpy as np

import convnp
from convnp.data import load_mnist


def test_simple_convnet_learns_mnist_in_one_short_epoch():
    (x, t), (xt, tt) = load_mnist()
    model = convnp.models.simple_convnet(seed=0)
    model.compile("adam", "cross_entropy", ["accuracy"], lr=1e-3)
    history = model.fit(x[:10000], t[:10000], epochs=1, batch_size=50, seed=0, verbose=0)
    result = model.evaluate(xt[:2000], tt[:2000], batch_size=500)
    assert history.history["loss"][0] < 0.6
    assert result["accuracy"] >= 0.92, result
    assert np.isfinite(result["loss"]) and result["loss"] < 0.3
