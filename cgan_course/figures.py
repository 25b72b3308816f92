"""Figures the notebooks share: a class grid with its rows named, readable on a projector."""
from __future__ import annotations

import torch.nn as nn

from .sampling import sample_grid, to_image_grid
from .widgets import class_names


def class_grid_figure(G: nn.Module, per_class: int = 10, seed: int = 0, title: str = "",
                      truncation: float | None = None, tile_inches: float = 0.55):
    """One row per class, named on the left; every column shares one latent ``z``.

    ``tile_inches`` sets the printed size of one 32x32 sample (pixels are drawn as blocks, not
    blurred), so a 10x10 grid stays legible when projected. Returns the matplotlib figure.
    """
    import matplotlib.pyplot as plt

    grid = to_image_grid(sample_grid(G, per_class=per_class, seed=seed, truncation=truncation), nrow=per_class)
    rows = G.num_classes or 10  # an unconditional G: ten rows of fresh samples, no names
    fig, ax = plt.subplots(figsize=(tile_inches * per_class + 1.2, tile_inches * rows + 0.5))
    ax.imshow(grid.permute(1, 2, 0), interpolation="nearest")  # (3, H, W) -> (H, W, 3)
    row = grid.shape[1] / rows
    ax.set_yticks([row * (i + 0.5) for i in range(rows)], class_names(G) if G.num_classes else [""] * rows)
    ax.set_xticks([])
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig

