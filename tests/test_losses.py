"""Each loss against values computed by hand."""
import functools
import math

import pytest
import torch

from cgan_course.losses import (LOSSES, d_loss_bce, d_loss_hinge, g_loss_hinge, g_loss_minimax,
                                g_loss_nonsaturating)


def sigmoid(t):
    return 1 / (1 + math.exp(-t))


def test_bce_matches_formula():
    d_real, d_fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0])
    expected = (-(math.log(sigmoid(2.0)) + math.log(sigmoid(-1.0))) / 2
                - (math.log(1 - sigmoid(0.5)) + math.log(1 - sigmoid(-3.0))) / 2)
    assert math.isclose(d_loss_bce(d_real, d_fake).item(), expected, rel_tol=1e-6)


def test_bce_at_chance_is_2_log_2():
    """D(x) = 1/2 everywhere (logit 0): the loss is 2 log 2, the value at the game's equilibrium."""
    zero = torch.zeros(4)
    assert math.isclose(d_loss_bce(zero, zero).item(), 2 * math.log(2), rel_tol=1e-6)


def test_generator_losses():
    d_fake = torch.tensor([1.0, -2.0])
    ns = -(math.log(sigmoid(1.0)) + math.log(sigmoid(-2.0))) / 2
    mm = (math.log(1 - sigmoid(1.0)) + math.log(1 - sigmoid(-2.0))) / 2
    assert math.isclose(g_loss_nonsaturating(d_fake).item(), ns, rel_tol=1e-6)
    assert math.isclose(g_loss_minimax(d_fake).item(), mm, rel_tol=1e-6)
    assert math.isclose(g_loss_hinge(d_fake).item(), 0.5, rel_tol=1e-6)


def test_hinge_margin():
    # real logits above 1 and fake logits below -1 cost nothing: D stops pushing them
    assert d_loss_hinge(torch.tensor([1.5, 3.0]), torch.tensor([-1.0, -4.0])).item() == 0.0
    assert math.isclose(d_loss_hinge(torch.tensor([0.0]), torch.tensor([0.5])).item(), 1.0 + 1.5)


def test_stable_for_confident_discriminator():
    """Written on logits: no log(0) = -inf when D is very sure."""
    big = torch.tensor([100.0])
    assert torch.isfinite(d_loss_bce(big, -big)) and torch.isfinite(g_loss_nonsaturating(-big))
    assert math.isclose(g_loss_nonsaturating(-big).item(), 100.0, rel_tol=1e-6)


def test_nonsaturating_gradient_does_not_vanish():
    """When D rejects fakes (logit -8), d/dlogit of log(1 - D) is ~0 but of -log D is ~-1."""
    t = torch.tensor([-8.0], requires_grad=True)
    (g_mm,) = torch.autograd.grad(g_loss_minimax(t), t)
    (g_ns,) = torch.autograd.grad(g_loss_nonsaturating(t), t)
    assert abs(g_mm.item()) < 1e-3 and abs(g_ns.item()) > 0.99


def test_registry():
    """Each name trains with the losses it promises: the registered functions' values against the
    formulas (a swapped or wrong entry fails; a new entry needs its row here)."""
    d_real, d_fake = [2.0, -1.0], [0.5, -3.0]

    def mean(values: list[float]) -> float:
        return sum(values) / len(values)

    expected = {  # name -> (D loss, G loss)
        "bce": (mean([-math.log(sigmoid(t)) for t in d_real]) + mean([-math.log(1 - sigmoid(t)) for t in d_fake]),
                mean([-math.log(sigmoid(t)) for t in d_fake])),  # the non-saturating G loss
        "hinge": (mean([max(0.0, 1 - t) for t in d_real]) + mean([max(0.0, 1 + t) for t in d_fake]),  # 1.75
                  mean([-t for t in d_fake])),  # 1.25
    }
    assert set(LOSSES) == set(expected)
    for name, (d_loss, g_loss) in LOSSES.items():
        assert math.isclose(d_loss(torch.tensor(d_real), torch.tensor(d_fake)).item(), expected[name][0], rel_tol=1e-6)
        assert math.isclose(g_loss(torch.tensor(d_fake)).item(), expected[name][1], rel_tol=1e-6)


class _Linear(torch.nn.Module):
    """D(x, y) = slope * sum(x * w) with ||w|| = 1: its gradient has norm ``slope`` everywhere."""

    def __init__(self, slope: float, shape=(3, 4, 4)):
        super().__init__()
        w = torch.randn(shape, generator=torch.Generator().manual_seed(0))
        self.w, self.slope = w / w.norm(), slope

    def forward(self, x, y=None):
        return self.slope * (x * self.w).flatten(1).sum(1)


@pytest.mark.parametrize("slope", [0.5, 1.0, 3.0])
def test_gradient_penalties_against_their_closed_forms(slope):
    """For a linear D with gradient norm s: WGAN-GP = weight (s - 1)^2, R1 = gamma / 2 s^2."""
    from cgan_course.losses import gradient_penalty, r1_penalty

    x_real, x_fake = torch.randn(8, 3, 4, 4), torch.randn(8, 3, 4, 4)
    D = _Linear(slope)
    assert gradient_penalty(D, x_real, None, x_fake).item() == pytest.approx(10 * (slope - 1) ** 2, abs=1e-5)
    assert r1_penalty(D, x_real, None).item() == pytest.approx(5 * slope ** 2, rel=1e-5)


def test_a_penalty_teaches_d_and_plugs_into_the_loss_object():
    """The penalty's graph reaches D's weights (D is trained on it), and GANLoss adds exactly the
    penalty to D's adversarial loss."""
    from cgan_course.losses import gradient_penalty
    from cgan_course.training.step import GANLoss

    class Critic(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 1))

        def forward(self, x, y=None):
            return self.net(x).squeeze(1)

    D, x_real, x_fake = Critic(), torch.randn(4, 3, 2, 2), torch.randn(4, 3, 2, 2)
    gradient_penalty(D, x_real, None, x_fake).backward()
    assert D.net[1].weight.grad.abs().sum() > 0
    penalised = GANLoss(*LOSSES["hinge"], penalty=functools.partial(gradient_penalty, weight=1.0))
    torch.manual_seed(0)
    with_penalty = penalised.discriminator(D, x_real, None, x_fake, None)[1]
    torch.manual_seed(0)
    alone = gradient_penalty(D, x_real, None, x_fake, weight=1.0)
    without = GANLoss.named("hinge").discriminator(D, x_real, None, x_fake, None)[1]
    assert with_penalty.item() == pytest.approx(without.item() + alone.item(), rel=1e-6) and alone.item() > 0


def test_penalties_are_taken_where_they_should_be_and_train_d():
    """A critic whose gradient depends on where it is taken, D(x) = s/2 ||x - c||^2 (gradient
    s (x - c)): WGAN-GP must be evaluated on the interpolates eps x_real + (1 - eps) x_fake (one eps
    per image), R1 on the reals; and both keep the graph, so D's parameters get gradients."""
    from cgan_course.losses import gradient_penalty, r1_penalty

    class Quadratic(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c, self.s = torch.nn.Parameter(torch.randn(3, 4, 4)), torch.nn.Parameter(torch.tensor(0.7))

        def forward(self, x, y=None):
            return self.s / 2 * (x - self.c).flatten(1).square().sum(1)

    D, x_real, x_fake = Quadratic(), torch.randn(6, 3, 4, 4), torch.randn(6, 3, 4, 4) + 2
    torch.manual_seed(0)
    gp = gradient_penalty(D, x_real, None, x_fake)
    torch.manual_seed(0)
    eps = torch.rand(6, 1, 1, 1)
    x_hat = eps * x_real + (1 - eps) * x_fake
    with torch.no_grad():
        want_gp = 10 * ((D.s * (x_hat - D.c)).flatten(1).norm(dim=1) - 1).square().mean()
        want_r1 = 5 * (D.s * (x_real - D.c)).flatten(1).square().sum(1).mean()
    r1 = r1_penalty(D, x_real, None)
    assert gp.item() == pytest.approx(want_gp.item(), rel=1e-5) and r1.item() == pytest.approx(want_r1.item(), rel=1e-5)
    (gp + r1).backward()
    assert D.s.grad.abs() > 0 and D.c.grad.abs().sum() > 0


def test_penalties_refuse_a_batchnorm_critic():
    from cgan_course.errors import CourseError
    from cgan_course.losses import gradient_penalty, r1_penalty

    D = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(), torch.nn.LazyLinear(1))
    x = torch.randn(4, 3, 8, 8)
    for penalty in (lambda: gradient_penalty(D, x, None, x), lambda: r1_penalty(D, x, None)):
        with pytest.raises(CourseError, match="without BatchNorm"):
            penalty()
