"""Heatmaps carry a colorbar by default; several axes can share one."""

import matplotlib.pyplot as plt
import pytest
import torch

from learnlib.viz import add_colorbar, heatmap


def test_heatmap_draws_values_with_a_labelled_colorbar():
    fig, ax = plt.subplots()
    image = heatmap(torch.arange(12.0).view(3, 4), ax=ax, vmin=0, vmax=11, label="value", background=torch.zeros(3, 4))
    assert image.get_clim() == (0, 11)
    assert len(fig.axes) == 2 and fig.axes[1].get_ylabel() == "value"
    plt.close(fig)


def test_shared_colorbar_and_shape_check():
    fig, axes = plt.subplots(1, 3)
    images = [heatmap(torch.rand(4, 4), ax=a, colorbar=False, vmin=0, vmax=1) for a in axes]
    assert len(fig.axes) == 3
    add_colorbar(images[-1], axes, label="shared")
    assert len(fig.axes) == 4
    with pytest.raises(ValueError, match="2D"):
        heatmap(torch.zeros(2, 2, 2), ax=axes[0])
    plt.close(fig)
