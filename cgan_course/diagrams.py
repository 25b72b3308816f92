"""Architecture diagrams drawn from the models themselves: where the label ``y`` enters each network.

A diagram is a column of boxes, one per stage of the real network, each with its output shape;
the shapes are measured by running a batch through the model built from the same ``ModelConfig``,
so a diagram cannot drift from the code. The label's path is drawn in orange.

- ``generator_stages(cfg)`` / ``discriminator_stages(cfg)``: the stages, as data;
- ``draw_stages(ax, stages, title)``: one column;
- ``architecture_figure(cfg)``: notebook 03's three panels: the projection generator with
  conditional BatchNorm, the classic CGAN discriminator and the projection discriminator.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn as nn

from .training.recipes import PRETRAINED_MODEL
from .models import (ClassicDiscriminator, ClassicGenerator, DCGANUpBlock, ModelConfig, ProjectionDiscriminator,
                     ProjectionGenerator, build_discriminator, build_generator, forward_with_hooks)

LABEL_COLOUR = "tab:orange"


@dataclass
class Stage:
    text: str  # what the stage computes
    shape: tuple[int, ...]  # its output for one sample, measured (batch dimension dropped)
    label: str = ""  # how y enters at this stage; "" where it does not


def _output_shapes(model: nn.Module, modules: list[nn.Module], *inputs) -> list[tuple[int, ...]]:
    """Output shape (without the batch) of each of ``modules`` in one eval-mode forward pass."""
    shapes: dict[int, tuple[int, ...]] = {}

    def record(i: int):
        def hook(module: nn.Module, args, out: torch.Tensor) -> None:  # returns None: the output is kept
            shapes.setdefault(i, tuple(out.shape[1:]))
        return hook

    forward_with_hooks(model, [(m, record(i)) for i, m in enumerate(modules)], *inputs)
    return [shapes[i] for i in range(len(modules))]


def generator_stages(cfg: ModelConfig) -> list[Stage]:
    """The generator of ``cfg`` as stages, from the latent ``z`` to the image."""
    G = build_generator(cfg)
    z, y = torch.randn(2, cfg.z_dim), torch.zeros(2, dtype=torch.long)
    if isinstance(G, ClassicGenerator):
        ups = [m for m in G.net if isinstance(m, nn.ConvTranspose2d)]
        shapes = _output_shapes(G, ups, z, y)
        stages = [Stage("z ~ N(0, I)", (cfg.z_dim,)),
                  Stage("concatenate [z, embed(y)]", (cfg.z_dim + cfg.embed_dim,), "embed(y)")]
        stages += [Stage("ConvT 4x4 · BN · ReLU", s) for s in shapes[:-1]]
        return stages + [Stage("ConvT 4x4 · tanh", shapes[-1])]
    assert isinstance(G, ProjectionGenerator)
    blocks = list(G.blocks.blocks)
    shapes = _output_shapes(G, [G.linear, *blocks, G], z, y)
    up = "CBN · ReLU · ConvT 4x4 (x2 size)" if isinstance(blocks[0], DCGANUpBlock) else \
        "ResBlock: CBN · ReLU · up x2 · conv 3x3, twice"
    last = "CBN · ReLU · conv 3x3 · tanh" if G.out_cbn else "BN · ReLU · conv 3x3 · tanh"
    start = [Stage("z ~ N(0, I)", (cfg.z_dim,))]
    if G.class_input is not None:  # BigGAN: the class at the input too
        start.append(Stage("concatenate [z, embed(y)]", (G.input_dim,), "embed(y)"))
    return (start + [Stage("Linear, reshape", (G.seed_channels, 4, 4))]
            + [Stage(up, s, r"$\gamma_y, \beta_y$") for s in shapes[1:-1]]
            + [Stage(last, shapes[-1], r"$\gamma_y, \beta_y$" if G.out_cbn else "")])


def discriminator_stages(cfg: ModelConfig) -> list[Stage]:
    """The discriminator of ``cfg`` as stages, from the image to the logit."""
    D = build_discriminator(cfg)
    s = cfg.image_size
    x, y = torch.randn(2, 3, s, s), torch.zeros(2, dtype=torch.long)
    if isinstance(D, ClassicDiscriminator):
        acts = [m for m in D.net if isinstance(m, nn.LeakyReLU)]
        shapes = _output_shapes(D, acts, x, y)
        return ([Stage("image x", (3, s, s)),
                 Stage(f"stack one-hot(y) as {cfg.num_classes} channels", (3 + cfg.num_classes, s, s), "one-hot(y)")]
                + [Stage("conv 4x4 (/2 size) · BN · LeakyReLU", sh) for sh in shapes]
                + [Stage("conv 4x4 -> logit D(x, y)", (1,))])
    assert isinstance(D, ProjectionDiscriminator)
    if cfg.backbone == "dcgan":  # per stage: conv 3x3, LReLU, conv 4x4 /2, LReLU; then conv 3x3, LReLU
        acts = [m for m in D.body if isinstance(m, nn.LeakyReLU)]
        stage_ends, final = acts[1:-1:2], acts[-1]
        down, tail = "SN conv 3x3 · SN conv 4x4 (/2 size)", "SN conv 3x3"
    else:
        stage_ends, final = list(D.body)[:-2], D.body[-1]
        down, tail = "SN ResBlock", "SN ResBlock · ReLU"
    shapes = _output_shapes(D, [*stage_ends, final], x, y)
    features = shapes[-1][0]
    return ([Stage("image x", (3, s, s))]
            + [Stage(down, sh) for sh in shapes[:-1]]
            + [Stage(tail, shapes[-1]),
               Stage(r"sum over pixels: $\phi(x)$", (features,)),
               Stage(r"$w^\top\phi(x) + e_y^\top\phi(x)$ -> logit", (1,), r"$e_y$ = embed(y)")])


def _shape_text(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(v) for v in shape) + ")"


def draw_stages(ax, stages: list[Stage], title: str, fontsize: float = 11) -> None:
    """Draw ``stages`` top to bottom as boxes joined by arrows; ``y`` on the left, with an orange
    arrow to every stage it enters."""
    from matplotlib.patches import FancyBboxPatch

    n = len(stages)
    ax.set(xlim=(0, 1), ylim=(-0.6, n - 0.2), title=title)
    ax.title.set_fontsize(fontsize + 2)
    ax.axis("off")
    centre = lambda i: n - 1 - i  # noqa: E731 (the box of stage i, counted from the top)
    for i, st in enumerate(stages):
        colour = LABEL_COLOUR if st.label else "0.3"
        ax.add_patch(FancyBboxPatch((0.36, centre(i) - 0.32), 0.62, 0.64, boxstyle="round,pad=0.01",
                                    facecolor="#fff3e0" if st.label else "white", edgecolor=colour, lw=1.5))
        ax.text(0.67, centre(i) + 0.1, st.text, ha="center", va="center", fontsize=fontsize)
        ax.text(0.67, centre(i) - 0.17, _shape_text(st.shape), ha="center", va="center", fontsize=fontsize - 1,
                color="0.35", family="monospace")
        if i:
            ax.annotate("", (0.67, centre(i) + 0.33), (0.67, centre(i - 1) - 0.33),
                        arrowprops=dict(arrowstyle="->", color="0.3", lw=1.2))
    entries = [i for i, st in enumerate(stages) if st.label]
    if not entries:
        return
    top = centre(entries[0]) + 0.5
    ax.text(0.06, top, "y", ha="center", va="center", fontsize=fontsize + 3, color=LABEL_COLOUR, weight="bold")
    for i in entries:
        ax.annotate("", (0.36, centre(i)), (0.06, top - 0.15),
                    arrowprops=dict(arrowstyle="->", color=LABEL_COLOUR, lw=1.4,
                                    connectionstyle="angle,angleA=-90,angleB=0"))  # down from y, then right
        ax.text(0.08, centre(i) + 0.06, stages[i].label, ha="left", va="bottom", fontsize=fontsize - 1,
                color=LABEL_COLOUR)


def architecture_figure(cfg: ModelConfig | None = None, fontsize: float = 11):
    """Three panels: the projection generator (conditional BatchNorm), the classic CGAN
    discriminator and the projection discriminator, all at ``cfg``'s sizes. Returns the figure."""
    import matplotlib.pyplot as plt

    cfg = cfg or PRETRAINED_MODEL
    classic = replace(cfg, arch="classic", backbone="dcgan", class_head=False, class_input=False)  # has neither
    panels = [(generator_stages(replace(cfg, arch="projection")), "G: conditional BatchNorm"),
              (discriminator_stages(classic), "classic D: y as input channels"),
              (discriminator_stages(replace(cfg, arch="projection")), "projection D: y in the last layer")]
    rows = max(len(stages) for stages, _ in panels)
    fig, axes = plt.subplots(1, 3, figsize=(16, 0.85 * rows + 0.8))
    for ax, (stages, title) in zip(axes, panels):
        draw_stages(ax, stages, title, fontsize)
        ax.set_ylim(len(stages) - rows - 0.6, len(stages) - 0.2)  # align the three columns at the top
    fig.tight_layout()
    return fig
