"""Figures the notebooks share: a class grid with its rows named, readable on a projector."""
from __future__ import annotations

import torch
import torch.nn as nn

from .data import to_unit_range
from .errors import CourseError
from .sampling import class_names, sample_grid, to_image_grid


def class_grid_figure(G: nn.Module, per_class: int = 10, seed: int = 0, title: str = "",
                      truncation: float | None = None, tile_inches: float = 0.55):
    """One row per class, named on the left; every column shares one latent ``z``.

    ``tile_inches`` sets the printed size of one sample (pixels are drawn as blocks, not
    blurred), so a 10x10 grid stays legible when projected. Returns the matplotlib figure.
    """
    rows = G.num_classes or 10  # an unconditional G: ten rows of fresh samples, no names
    images = sample_grid(G, per_class=per_class, seed=seed, truncation=truncation)  # (rows * per_class, 3, S, S)
    return labelled_rows_figure(images, class_names(G) if G.num_classes else [""] * rows, title, tile_inches)


def labelled_rows_figure(images: torch.Tensor, row_names: list[str], title: str = "", tile_inches: float = 0.55):
    """``images [R * C, 3, S, S]`` (row-major; uint8 or floats in [-1, 1]) as R named rows of C."""
    import matplotlib.pyplot as plt

    rows = len(row_names)
    if rows == 0 or images.shape[0] % rows:
        raise CourseError(f"{images.shape[0]} images do not fill {rows} rows evenly: pass rows x columns images")
    images = to_unit_range(images) if images.dtype == torch.uint8 else images
    per_row = images.shape[0] // rows
    grid = to_image_grid(images, nrow=per_row)  # (3, H, W) uint8
    fig, ax = plt.subplots(figsize=(tile_inches * per_row + 1.2, tile_inches * rows + 0.5))
    ax.imshow(grid.permute(1, 2, 0), interpolation="nearest")  # (3, H, W) -> (H, W, 3)
    row = grid.shape[1] / rows
    ax.set_yticks([row * (i + 0.5) for i in range(rows)], row_names)
    ax.set_xticks([])
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
