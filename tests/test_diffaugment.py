"""DiffAugment: '' is the identity, every op keeps the shape and passes gradients to G."""
import pytest
import torch

from cgan_course.diffaugment import POLICIES, diff_augment
from cgan_course.errors import CourseError

OPS = [*POLICIES, "color,translation,cutout"]


def images(dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """[4, 3, 8, 12]: not square, so a swapped height and width would show."""
    return torch.rand(4, 3, 8, 12, generator=torch.Generator().manual_seed(0), dtype=dtype) * 2 - 1


@pytest.mark.parametrize("policy", ["", " ", ",", " , "])
def test_empty_policy_is_the_identity(policy):
    x = images()
    assert torch.equal(diff_augment(x, policy), x)


@pytest.mark.parametrize("policy", OPS)
def test_shape_and_dtype_are_kept(policy):
    x = images()
    out = diff_augment(x, policy)
    assert out.shape == x.shape and out.dtype == x.dtype and out.is_contiguous()
    assert not torch.equal(out, x)  # the op did something


@pytest.mark.parametrize("policy", OPS)
def test_differentiable(policy):
    """The gradient G gets through D's augmentation is the true one (finite differences agree;
    the random draws are replayed from a fixed seed at every evaluation)."""
    def augment(x: torch.Tensor) -> torch.Tensor:
        torch.manual_seed(0)
        return diff_augment(x, policy)

    x = images(torch.float64)[:2, :, :4, :6].contiguous().requires_grad_()  # small: gradcheck perturbs each pixel
    assert torch.autograd.gradcheck(augment, (x,), fast_mode=True)
    (grad,) = torch.autograd.grad(augment(x).sum(), x)
    assert grad.abs().sum() > 0


def test_translation_and_cutout_only_move_or_blank_pixels():
    torch.manual_seed(1)
    x = images()
    shifted = diff_augment(x, "translation")
    assert set(shifted.unique().tolist()) <= set(x.unique().tolist()) | {0.0}  # moved pixels, zeros shifted in
    cut = diff_augment(x, "cutout")
    assert ((cut == x) | (cut == 0)).all()
    assert ((cut == 0).flatten(1).sum(1) > 0).all()  # every image lost a patch


def test_each_image_gets_its_own_draw():
    torch.manual_seed(0)
    x = images()[:1].expand(8, -1, -1, -1)
    for policy in POLICIES:
        out = diff_augment(x, policy)
        assert len({tuple(o.flatten().tolist()) for o in out}) > 1, policy


def test_unknown_op_is_refused():
    with pytest.raises(CourseError, match="unknown DiffAugment op 'flip'; choose from color, translation, cutout"):
        diff_augment(images(), "color,flip")
