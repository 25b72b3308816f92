"""The class sampler and interpolation view, driven headless: set widget values, click buttons,
and check that the displayed PNG changes and is exactly what the pure render function draws."""
import pytest
import torch

pytest.importorskip("ipywidgets")

from cgan_course.data import CLASSES
from cgan_course.models import ModelConfig, build_generator
from cgan_course.sampling import sample_images
from cgan_course.widgets import (ClassSampler, InterpolationView, interpolate, render_interpolation,
                                 render_samples, stand_in_generator)

SMALL = ModelConfig(g_width=8, d_width=8, z_dim=16)


@pytest.fixture(scope="module")
def G():
    return stand_in_generator(SMALL, seed=0)


def expected(G, values: dict) -> bytes:
    return render_samples(G, **values)


def test_every_class_in_the_dropdown_redraws_with_the_pure_function(G):
    sampler = ClassSampler(G, n=4)
    assert list(sampler.class_dropdown.options) == list(CLASSES)
    seen = {sampler.image.value}
    for name in reversed(CLASSES):  # starts on "airplane"; visit every class, the first one last
        sampler.class_dropdown.value = name
        assert sampler.values()["class_name"] == name
        assert sampler.image.value == render_samples(G, name, seed=0, n=4, truncation=None, scale=2)
        seen.add(sampler.image.value)
    assert len(seen) == len(CLASSES)  # every class draws a different picture


def test_seed_count_truncation_and_new_seed_button(G):
    sampler = ClassSampler(G, class_name="cat", n=4)
    before = sampler.image.value
    sampler.seed.value = 7
    assert sampler.image.value != before
    assert sampler.image.value == render_samples(G, "cat", seed=7, n=4)

    sampler.n.value = 9
    assert sampler.image.value == render_samples(G, "cat", seed=7, n=9)

    assert sampler.truncation.disabled  # no truncation until the box is ticked
    before = sampler.image.value
    sampler.truncate.value = True
    assert not sampler.truncation.disabled
    sampler.truncation.value = 0.5
    assert sampler.image.value != before
    assert sampler.image.value == render_samples(G, "cat", seed=7, n=9, truncation=0.5)

    before_seed, before = sampler.seed.value, sampler.image.value
    sampler.new_seed_button.click()
    assert sampler.seed.value != before_seed
    assert sampler.image.value != before
    assert sampler.image.value == expected(G, sampler.values())
    assert sampler.values()["seed"] == sampler.seed.value and sampler.values()["truncation"] == 0.5


def test_render_is_deterministic_and_leaves_the_generator_alone():
    G = build_generator(SMALL).train()  # train mode: BatchNorm would update its statistics
    stats = {k: v.clone() for k, v in G.state_dict().items()}
    a = render_samples(G, "dog", seed=3, n=5)
    assert a == render_samples(G, "dog", seed=3, n=5) and a[:8] == b"\x89PNG\r\n\x1a\n"
    assert G.training
    assert all(torch.equal(stats[k], v) for k, v in G.state_dict().items())


def test_interpolation_slider_and_modes(G):
    view = InterpolationView(G, class_a="horse", class_b="ship", seed_a=1, seed_b=2, t=0.0)
    assert view.class_b.disabled and not view.seed_b.disabled  # seed walk: class B unused
    seen = set()
    for t in (0.25, 0.5, 1.0):
        view.t.value = t
        assert view.image.value == render_interpolation(G, t, "seeds", "horse", "ship", 1, 2)
        seen.add(view.image.value)
    assert len(seen) == 3

    view.mode.value = "classes"
    assert not view.class_b.disabled and view.seed_b.disabled
    assert view.image.value == render_interpolation(G, 1.0, "classes", "horse", "ship", 1, 2)
    before = view.image.value
    view.class_b.value = "truck"
    assert view.image.value != before
    assert view.image.value == render_interpolation(G, 1.0, "classes", "horse", "truck", 1, 2)

    before = view.image.value
    view.new_seeds_button.click()
    assert view.image.value != before
    assert view.image.value == render_interpolation(G, **view.values())


def test_interpolation_endpoints_are_the_plain_samples(G):
    # seed walk: start = seed A's sample, end = seed B's sample, both of class A
    imgs = interpolate(G, torch.tensor([0.0, 0.3, 1.0]), "seeds", "bird", "cat", seed_a=4, seed_b=5)
    assert torch.allclose(imgs[0], sample_images(G, "bird", seed=4, n=1)[0], atol=1e-5)
    assert torch.allclose(imgs[2], sample_images(G, "bird", seed=5, n=1)[0], atol=1e-4)
    # class walk: the same z drawn as class A, then as class B; the middle is neither
    imgs = interpolate(G, torch.tensor([0.0, 0.5, 1.0]), "classes", "bird", "cat", seed_a=4)
    bird, cat = sample_images(G, "bird", seed=4, n=1)[0], sample_images(G, "cat", seed=4, n=1)[0]
    assert torch.allclose(imgs[0], bird, atol=1e-5) and torch.allclose(imgs[2], cat, atol=1e-5)
    assert not torch.allclose(imgs[1], bird, atol=1e-3) and not torch.allclose(imgs[1], cat, atol=1e-3)


def test_class_walk_leaves_the_generator_unchanged(G):
    z, y = torch.randn(2, SMALL.z_dim), torch.tensor([0, 0])
    plain = G(z, y)
    interpolate(G, torch.tensor([0.0, 1.0]), "classes", 0, 3)  # hooks the embeddings while it runs
    assert torch.equal(G(z, y), plain)


def test_class_index_zero_is_a_class(G):
    """Index 0 is falsy but a class: the view must not fall back to its default."""
    assert InterpolationView(G, class_a=2, class_b=0).values()["class_b"] == "airplane"


# The widgets' bad-input contract (refused starting values, numpy indices) is in test_bad_inputs_sampling.py.
