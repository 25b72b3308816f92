"""Architecture diagrams: every stage's shape is the real network's, and y enters where the model
says it does."""
import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

from cgan_course import diagrams  # noqa: E402
from cgan_course.models import ModelConfig, build_discriminator, build_generator  # noqa: E402


def _labelled(stages):
    return [i for i, s in enumerate(stages) if s.label]


@pytest.mark.parametrize("out_cbn", [True, False])
def test_projection_generator_stages(out_cbn):
    cfg = ModelConfig(g_width=8, out_cbn=out_cbn)
    stages = diagrams.generator_stages(cfg)
    G = build_generator(cfg).eval()
    blocks = G.blocks.blocks
    h = G.linear(torch.randn(1, cfg.z_dim)).view(1, G.seed_channels, 4, 4)
    expected = []
    for block in blocks:  # the real block outputs, one by one
        h = block(h, torch.zeros(1, dtype=torch.long))
        expected.append(tuple(h.shape[1:]))
    assert [s.shape for s in stages[2:2 + len(blocks)]] == expected
    assert stages[-1].shape == (3, 32, 32) and stages[0].shape == (cfg.z_dim,)
    assert _labelled(stages) == list(range(2, 2 + len(blocks) + out_cbn))  # every CBN, and only those


def test_a_class_input_generator_shows_the_embedding_at_the_input():
    cfg = ModelConfig(g_width=8, embed_dim=7, class_input=True)
    stages = diagrams.generator_stages(cfg)
    assert stages[1].label == "embed(y)" and stages[1].shape == (128 + 7,)
    assert stages[2].shape == (build_generator(cfg).seed_channels, 4, 4)
    assert len(diagrams.architecture_figure(ModelConfig(g_width=8, class_input=True, class_head=True)).axes) == 3


def test_classic_generator_takes_y_once_at_the_input():
    stages = diagrams.generator_stages(ModelConfig(arch="classic", g_width=8, embed_dim=7))
    assert _labelled(stages) == [1] and stages[1].shape == (128 + 7,)
    assert stages[-1].shape == (3, 32, 32)


def test_classic_discriminator_stacks_label_channels():
    stages = diagrams.discriminator_stages(ModelConfig(arch="classic", d_width=8, num_classes=12))
    assert _labelled(stages) == [1] and stages[1].shape == (3 + 12, 32, 32)
    assert [s.shape[1] for s in stages[2:-1]] == [16, 8, 4] and stages[-1].shape == (1,)


@pytest.mark.parametrize("backbone", ["dcgan", "resnet"])
def test_projection_discriminator_takes_y_in_the_head(backbone):
    cfg = ModelConfig(backbone=backbone, d_width=8)
    stages = diagrams.discriminator_stages(cfg)
    D = build_discriminator(cfg)
    assert _labelled(stages) == [len(stages) - 1]  # only the last stage sees y
    assert stages[-2].shape == (D.head.linear.in_features,)  # phi(x) feeds the head
    assert stages[-3].shape[1:] == ((4, 4) if backbone == "dcgan" else (8, 8))


def test_architecture_figure_has_three_panels_each_with_y():
    fig = diagrams.architecture_figure(ModelConfig(g_width=8, d_width=8))
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["G: conditional BatchNorm", "classic D: y as input channels", "projection D: y in the last layer"]
    for ax in fig.axes:
        assert "y" in [t.get_text() for t in ax.texts]
