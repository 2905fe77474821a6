"""convnp.viz: look inside a network: filters, feature maps, training curves, confusion matrix,
misclassified images, kernel responses, saliency and Grad-CAM.

matplotlib (the ``plots`` extra) is imported only when a plot is drawn, so ``import convnp`` does not
need it. Every ``plot_*`` function returns a ``matplotlib.figure.Figure`` made without pyplot (headless:
nothing is displayed, no GUI backend is needed) and saves a PNG when given ``path=``.

Example::

    from convnp import viz
    viz.plot_filters(model, before=initial_model, path="filters.png")
    viz.plot_feature_maps(model, x_test[0], layers=["0"], path="conv1_maps.png")
    viz.plot_history(history, path="curves.png")
    heat = viz.saliency(model, x_test[0]); cam = viz.grad_cam(model, x_test[0])
"""
from .filters import plot_filters, filter_weights
from .features import plot_feature_maps, feature_maps
from .history import plot_history, load_history
from .confusion import confusion_matrix, plot_confusion_matrix, plot_misclassified, predict_classes
from .kernels import plot_kernel_response, kernel_response, kernel_set
from .saliency import saliency, grad_cam, plot_saliency

__all__ = ["plot_filters", "filter_weights", "plot_feature_maps", "feature_maps", "plot_history", "load_history",
           "confusion_matrix", "plot_confusion_matrix", "plot_misclassified", "predict_classes",
           "plot_kernel_response", "kernel_response", "kernel_set", "saliency", "grad_cam", "plot_saliency"]
