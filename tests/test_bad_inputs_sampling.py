"""The bad-input contract of sampling, the widgets and the models (issue 15, items 12, 16, 17).

Every mistake below gets a ``CourseError`` whose one line names the problem (and, where there is
one, the fix). Nothing is clamped, ignored, extrapolated or turned into NaN silently, and a
failed save writes nothing.
"""
import contextlib
import math

import numpy as np
import pytest
import torch

from cgan_course.errors import CourseError
from cgan_course.models import ModelConfig, build_discriminator, build_generator
from cgan_course.sampling import (generate, interpolate_classes, lerp, recalibrate_batchnorm, sample_grid,
                                  sample_latents, save_image_grid, slerp, to_image_grid)

SMALL = ModelConfig(g_width=8, d_width=8, z_dim=16)
FAMILIES = [("classic", "dcgan"), ("projection", "dcgan"), ("projection", "resnet")]


@contextlib.contextmanager
def course_error(pattern: str):
    """The block raises a one-line CourseError matching ``pattern``."""
    with pytest.raises(CourseError, match=pattern) as info:
        yield
    assert "\n" not in str(info.value), str(info.value)


@pytest.fixture(scope="module")
def G():
    return build_generator(SMALL).eval()


# ----------------------------------------------------------------------------------------------
# sampling (item 12: edge cases; item 17: wrong kinds of input)


@pytest.mark.parametrize("path", [lerp, slerp])
@pytest.mark.parametrize("t", [1.5, -0.1, [0.0, 2.0], math.nan, []])
def test_paths_refuse_t_outside_0_1(path, t):
    z0, z1 = sample_latents(2, 16, seed=0)
    with course_error(r"t must be one or more values in \[0, 1\].*runs past its ends"):
        path(z0, z1, torch.tensor(t))


def test_class_interpolation_refuses_t_outside_0_1(G):
    with course_error(r"t must be one or more values in \[0, 1\]"):
        interpolate_classes(G, torch.randn(16), 0, 1, torch.tensor([0.0, 1.2]))


@pytest.mark.parametrize("z0,z1,pattern", [
    (torch.randn(2, 16), torch.randn(2, 16),
     r"z0 must be one latent, a float tensor \[z_dim\]; got torch.float32 \[2, 16\]: pass z\[i\], not a batch"),
    (torch.randn(16), torch.arange(16), r"z1 must be one latent.*got torch.int64"),
    (torch.randn(16), torch.randn(8), "z0 and z1 must have the same size, got 16 and 8"),
    (torch.full((16,), math.nan), torch.randn(16), "z0 and z1 must be finite"),
])
def test_slerp_refuses_what_is_not_a_pair_of_latents(z0, z1, pattern):
    with course_error(pattern):
        slerp(z0, z1, torch.tensor([0.5]))


@pytest.mark.parametrize("truncation", [math.nan, 0.0, -1.0])
def test_truncation_must_be_positive(truncation):
    """NaN compared False against every coordinate and was ignored: untruncated latents."""
    with course_error(r"truncation must be a number > 0, or None for no truncation; got (nan|0.0|-1.0)"):
        sample_latents(4, 16, seed=0, truncation=truncation)


@pytest.mark.parametrize("per_class", [0, -2, 1.5])
def test_sample_grid_needs_a_sample_per_class(G, per_class):
    with course_error(rf"per_class must be an integer in \[1, 10000\], got {per_class}"):
        sample_grid(G, per_class=per_class)


def test_sample_grid_needs_a_class(G):
    with course_error("classes is empty"):
        sample_grid(G, per_class=2, classes=[])


def test_class_grid_figure_needs_a_sample_per_class(G):
    from cgan_course.figures import class_grid_figure

    with course_error(r"per_class must be an integer in \[1, 10000\], got 0"):
        class_grid_figure(G, per_class=0)


@pytest.mark.parametrize("y0,y1,pattern", [(0, 12, r"y1 must be a class index in 0\.\.9, got 12"),
                                           (-1, 3, r"y0 must be a class index in 0\.\.9, got -1"),
                                           ("cat", 3, r"y0 must be a class index in 0\.\.9, got 'cat'")])
def test_class_interpolation_needs_class_indices(G, y0, y1, pattern):
    with course_error(pattern):
        interpolate_classes(G, torch.randn(16), y0, y1, torch.tensor([0.0, 1.0]))


def test_class_interpolation_takes_numpy_indices(G):
    t = torch.tensor([0.0, 0.5, 1.0])
    z = torch.randn(16)
    assert torch.equal(interpolate_classes(G, z, np.int64(2), np.int64(5), t), interpolate_classes(G, z, 2, 5, t))


def test_class_interpolation_needs_a_conditional_generator():
    uncond = build_generator(ModelConfig(g_width=8, z_dim=16, num_classes=0)).eval()
    with course_error(r"needs a conditional generator \(num_classes > 0\)"):
        interpolate_classes(uncond, torch.randn(16), 0, 1, torch.tensor([0.5]))


def test_save_image_grid_with_no_images_writes_nothing(tmp_path):
    target = tmp_path / "grids" / "empty.png"
    with course_error(r"images must be a non-empty batch \[N, 3, S, S\], got \[0, 3, 32, 32\]"):
        save_image_grid(torch.zeros(0, 3, 32, 32), target, nrow=4)
    assert not (tmp_path / "grids").exists()


@pytest.mark.parametrize("images,nrow,pattern", [
    (torch.zeros(2, 3, 8, 8), 0, "nrow must be an integer >= 1, got 0"),
    ([torch.zeros(3, 8, 8)], 1, "images must be a non-empty batch.*got list"),
])
def test_image_grid_refuses_bad_layouts(images, nrow, pattern):
    with course_error(pattern):
        to_image_grid(images, nrow)


def test_generate_needs_a_latent(G):
    with course_error(r"generate needs at least one latent, got z of shape \[0, 16\]"):
        generate(G, torch.zeros(0, 16), torch.zeros(0, dtype=torch.long))
    with course_error("batch_size must be an integer >= 1, got 0"):
        generate(G, torch.zeros(2, 16), torch.zeros(2, dtype=torch.long), batch_size=0)


def test_recalibration_needs_a_batch_and_leaves_the_statistics_alone():
    G = build_generator(SMALL).eval()
    before = {k: v.clone() for k, v in G.state_dict().items()}
    with course_error("batches must be an integer >= 1, got 0"):
        recalibrate_batchnorm(G, batches=0)  # used to reset every running statistic to (0, 1)
    assert all(torch.equal(before[k], v) for k, v in G.state_dict().items())


# ----------------------------------------------------------------------------------------------
# models (item 17: wrong kinds of input; the checks on shapes and label range)


def test_generator_input_errors_name_the_problem():
    G = build_generator(ModelConfig(g_width=8, d_width=8))
    with course_error(r"z must be \[B, 128\], got \[4, 100\]"):
        G(torch.randn(4, 100), torch.zeros(4, dtype=torch.long))
    with course_error(r"y must be \[B\]=\[4\]"):
        G(torch.randn(4, 128), torch.zeros(3, dtype=torch.long))
    with course_error(r"y must lie in \[0, 9\], got \[0, 10\]"):
        G(torch.randn(2, 128), torch.tensor([0, 10]))
    with course_error("integer class indices"):
        G(torch.randn(2, 128), torch.tensor([0.0, 1.0]))


@pytest.mark.parametrize("arch,backbone", FAMILIES)
def test_discriminator_input_errors_name_the_problem(arch, backbone):
    D = build_discriminator(ModelConfig(arch=arch, backbone=backbone, g_width=8, d_width=8))
    with course_error(r"x must be \[B, 3, 32, 32\] images, got \[2, 3, 64, 64\]"):
        D(torch.randn(2, 3, 64, 64), torch.zeros(2, dtype=torch.long))
    with course_error(r"x must be \[B, 3, 32, 32\]"):
        D(torch.randn(3, 32, 32), torch.zeros(1, dtype=torch.long))  # a single image without its batch axis
    with course_error(r"y must lie in \[0, 9\], got \[-1, 0\]"):
        D(torch.randn(2, 3, 32, 32), torch.tensor([-1, 0]))


@pytest.mark.parametrize("arch,backbone", FAMILIES)
def test_labels_as_a_list_are_refused(arch, backbone):
    """A Python list is refused, not converted: the models take tensors like every torch layer."""
    cfg = ModelConfig(arch=arch, backbone=backbone, g_width=8, d_width=8)
    with course_error(r"y must be \[B\]=\[2\] class indices in a tensor, got list: pass torch.tensor\(y\)"):
        build_generator(cfg)(torch.randn(2, 128), [3, 7])
    with course_error(r"y must be \[B\]=\[2\] class indices in a tensor, got ndarray"):
        build_discriminator(cfg)(torch.zeros(2, 3, 32, 32), np.array([3, 7]))


@pytest.mark.parametrize("arch,backbone", FAMILIES)
def test_latents_of_the_wrong_kind_are_refused(arch, backbone):
    """float64 z (numpy's default) is refused outside autocast rather than cast: the fix is one call."""
    G = build_generator(ModelConfig(arch=arch, backbone=backbone, g_width=8, d_width=8))
    y = torch.tensor([3, 7])
    with course_error(r"z is torch.float64 but the model's weights are torch.float32: pass z.to\(torch.float32\)"):
        G(torch.randn(2, 128, dtype=torch.float64), y)
    with course_error(r"z must be a float tensor \[B, 128\], got torch.int64 \[2, 128\]: draw it with torch.randn"):
        G(torch.ones(2, 128, dtype=torch.long), y)
    with course_error(r"z must be a float tensor \[B, 128\], got ndarray"):
        G(np.zeros((2, 128), dtype=np.float32), y)


@pytest.mark.parametrize("arch,backbone", FAMILIES)
def test_images_of_the_wrong_kind_are_refused(arch, backbone):
    """uint8 pictures are refused, not converted: 0..255 -> [-1, 1] is a convention D cannot guess."""
    D = build_discriminator(ModelConfig(arch=arch, backbone=backbone, g_width=8, d_width=8))
    y = torch.tensor([3, 7])
    with course_error(r"x must be float images in \[-1, 1\], got torch.uint8: convert 0..255 pixels with "
                      r"x.float\(\) / 127.5 - 1"):
        D(torch.zeros(2, 3, 32, 32, dtype=torch.uint8), y)
    with course_error(r"x is torch.float64 but the model's weights are torch.float32"):
        D(torch.zeros(2, 3, 32, 32, dtype=torch.float64), y)
    with course_error(r"x must be a tensor of images \[B, 3, 32, 32\], got ndarray: pass torch.as_tensor\(x\)"):
        D(np.zeros((2, 3, 32, 32), dtype=np.float32), y)


# ----------------------------------------------------------------------------------------------
# widgets (item 16: the constructors refuse what their controls would clamp; numpy indices work)


@pytest.fixture(scope="module")
def stand_in():
    pytest.importorskip("ipywidgets")
    from cgan_course.widgets import stand_in_generator

    return stand_in_generator(SMALL, seed=0)


@pytest.mark.parametrize("kwargs,pattern", [
    ({"truncation": 5}, r"truncation must be in 0.2..2.0 \(the slider's range\) or None, got 5"),
    ({"truncation": 0.1}, "truncation must be in 0.2..2.0"),
    ({"truncation": math.nan}, "truncation must be in 0.2..2.0"),
    ({"seed": -1}, r"seed must be an integer in \[0, 2147483647\], got -1"),
    ({"seed": 2**31}, r"seed must be an integer in \[0, 2147483647\], got 2147483648"),
    ({"n": 65}, r"n must be an integer in \[1, 64\], got 65"),
    ({"n": 0}, r"n must be an integer in \[1, 64\], got 0"),
    ({"n": 4.5}, "n must be an integer in \\[1, 64\\], got 4.5"),
    ({"scale": 0}, r"scale must be an integer in \[1, 16\], got 0"),
    ({"class_name": "kitten"}, "unknown class 'kitten'"),
])
def test_class_sampler_refuses_what_its_controls_would_clamp(stand_in, kwargs, pattern):
    from cgan_course.widgets import ClassSampler

    with course_error(pattern):
        ClassSampler(stand_in, **{"n": 4, **kwargs})


@pytest.mark.parametrize("kwargs,pattern", [
    ({"seed_a": -1}, r"seed_a must be an integer in \[0, 2147483647\], got -1"),
    ({"seed_b": 2**31}, r"seed_b must be an integer in \[0, 2147483647\]"),
    ({"t": 1.5}, r"t must be in \[0, 1\], got 1.5"),
    ({"t": math.nan}, r"t must be in \[0, 1\], got nan"),
    ({"mode": "styles"}, "mode must be one of"),
    ({"class_a": "kitten"}, "unknown class 'kitten'"),
])
def test_interpolation_view_refuses_what_its_controls_would_clamp(stand_in, kwargs, pattern):
    from cgan_course.widgets import InterpolationView

    with course_error(pattern):
        InterpolationView(stand_in, **kwargs)


def test_render_functions_apply_the_same_rules(stand_in):
    from cgan_course.widgets import render_interpolation, render_samples

    with course_error("unknown class 'kitten'.*airplane"):
        render_samples(stand_in, "kitten")
    with course_error(r"class index must be an integer in \[0, 9\], got 10"):
        render_samples(stand_in, 10)
    with course_error(r"n must be an integer in \[1, 64\], got 65"):
        render_samples(stand_in, "cat", n=65)
    with course_error(r"seed must be an integer in \[0, 2147483647\], got -1"):
        render_samples(stand_in, "cat", seed=-1)
    with course_error(r"seed_a must be an integer in \[0, 2147483647\], got -1"):  # torch accepted -1 silently
        render_interpolation(stand_in, 0.5, seed_a=-1)
    with course_error(r"t must be in \[0, 1\]"):
        render_interpolation(stand_in, 1.5)
    with course_error(r"t must be in \[0, 1\]"):  # NaN passed the old min/max test
        render_interpolation(stand_in, math.nan)


def test_numpy_class_indices_work(stand_in):
    """Indices from numpy (np.argmax, an array of labels) are indices, not unknown class names."""
    from cgan_course.widgets import ClassSampler, InterpolationView, render_samples

    assert render_samples(stand_in, np.int64(3), n=4) == render_samples(stand_in, "cat", n=4)
    from_numpy = render_samples(stand_in, torch.tensor(3), n=np.int64(4), seed=np.int64(0))
    assert from_numpy == render_samples(stand_in, 3, n=4)
    assert ClassSampler(stand_in, class_name=np.int64(3), n=4).class_dropdown.value == "cat"
    view = InterpolationView(stand_in, class_a=np.int64(2), class_b=np.int32(0), seed_a=np.int64(5))
    assert (view.class_a.value, view.class_b.value, view.seed_a.value) == ("bird", "airplane", 5)
    with course_error("class index must be an integer in"):
        render_samples(stand_in, torch.tensor(3.0))


def test_class_walks_need_an_embedding_and_a_conditional_generator(stand_in):
    from cgan_course.toy import MLPGenerator  # one-hot conditioning: no embedding to blend
    from cgan_course.sampling import class_names
    from cgan_course.widgets import interpolate

    with course_error("nn.Embedding"):
        interpolate(MLPGenerator(z_dim=4, num_classes=10), torch.tensor([0.5]), "classes", 0, 1)
    with course_error("unconditional"):
        class_names(build_generator(ModelConfig(g_width=8, d_width=8, z_dim=16, num_classes=0)))


# Issue 27: tracebacks and silent garbage from the sampling API


def test_sampling_api_refuses_what_used_to_crash_or_draw_garbage(stand_in):
    from cgan_course import metrics
    from cgan_course.sampling import generate, sample_grid

    with course_error(r"class index must be an integer in \[0, 9\], got 'cat'"):
        sample_grid(stand_in, classes=["cat"])
    with course_error("classes must be a list of class indices"):
        sample_grid(stand_in, classes=3)
    with course_error(r"per_class must be an integer in \[1, 10000\], got 10000000"):  # a 5 GB allocation before
        sample_grid(stand_in, per_class=10**7)
    with course_error(r"a grid of 10 rows x 1001 is over MAX_GRID_SAMPLES=10000"):
        sample_grid(stand_in, per_class=1001)
    with course_error("z holds NaN or inf values"):  # NaN images drawn as a black grid before
        generate(stand_in, torch.full((2, stand_in.z_dim), float("nan")), torch.tensor([0, 1]))
    with course_error("reference must be FeatureStats"):
        metrics.fid(stand_in, reference=None)


def test_interpolation_points_are_capped(stand_in):
    from cgan_course.widgets import MAX_POINTS, interpolate

    with course_error(rf"ts must hold 1 to MAX_POINTS={MAX_POINTS} points of the walk, got 1000000"):
        interpolate(stand_in, torch.linspace(0, 1, 10**6))


def test_folders_named_by_numbers_cannot_make_a_request_ambiguous(stand_in):
    from cgan_course.sampling import class_index

    stand_in.classes = ["0", "1", "10", "11", "2", "3", "4", "5", "6", "7"]  # string order of folders 0..11 (some)
    try:
        with course_error(r"class index 2 is ambiguous: class 2 is named '10' while class 4 is named '2'"):
            class_index(stand_in, 2)
        assert class_index(stand_in, "2") == 4 and class_index(stand_in, 0) == 0  # by name; an index naming itself
        stand_in.classes = [str(i) for i in range(1, 11)]  # 1-based folders: still servable, by name
        assert class_index(stand_in, "3") == 2
        with course_error(r"class index 3 is ambiguous"):
            class_index(stand_in, 3)
        stand_in.classes = [str(i) for i in range(10)]  # numeric order: name and index agree
        assert class_index(stand_in, "3") == class_index(stand_in, 3) == 3
    finally:
        stand_in.classes = None
