"""Issue 22: the build exercises. Every check passes on its reference solution, and fails on the
unfinished stub and on plausible wrong answers; ``build()`` hands later cells the learner's code
when it is right and the package's otherwise, saying so in one visible line."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from cgan_course import build as B
from cgan_course import losses, models
from cgan_course.exercises import NotYetRight
from cgan_course.paths import NOTEBOOKS_DIR


def stub(*args, **kwargs):
    raise NotImplementedError


class StubCBN(nn.Module):
    def __init__(self, channels, num_classes):
        super().__init__()
        raise NotImplementedError


# -- plausible wrong answers, per exercise -----------------------------------------------------

def _naive_d(r, f):  # log(sigmoid(.)): -inf once D is confident
    return -(torch.log(torch.sigmoid(r)).mean() + torch.log(1 - torch.sigmoid(f)).mean())


LOSSES_RIGHT = B.solution("01.A")
WRONG_LOSSES = {
    "log(sigmoid) underflows": (_naive_d, *LOSSES_RIGHT[1:]),
    "minimax and non-saturating swapped": (LOSSES_RIGHT[0], LOSSES_RIGHT[2], LOSSES_RIGHT[1]),
    "sum instead of mean": (lambda r, f: F.softplus(-r).sum() + F.softplus(f).sum(), *LOSSES_RIGHT[1:]),
    "minimax with the wrong sign": (LOSSES_RIGHT[0], lambda f: F.softplus(f).mean(), LOSSES_RIGHT[2]),
    "detached (no gradient)": (lambda r, f: LOSSES_RIGHT[0](r, f).detach(), *LOSSES_RIGHT[1:]),
    "log(sigmoid(-f)) for 1 - D": (lambda r, f: -(torch.log(torch.sigmoid(r)).mean() + torch.log(torch.sigmoid(-f)).mean()),
                                   *LOSSES_RIGHT[1:]),
    "naive non-saturating": (*LOSSES_RIGHT[:2], lambda f: -torch.log(torch.sigmoid(f)).mean()),
}


class BatchStatsInEval(models.ConditionalBatchNorm2d):  # uses the batch's statistics in eval mode too
    def forward(self, x, y):
        h = F.batch_norm(x, self.bn.running_mean, self.bn.running_var, training=True, momentum=0.1)
        return self.gamma(y)[:, :, None, None] * h + self.beta(y)[:, :, None, None]


class OnePlusGamma(models.ConditionalBatchNorm2d):  # (1 + gamma) with gamma initialised to 0
    def __init__(self, channels, num_classes):
        super().__init__(channels, num_classes)
        nn.init.zeros_(self.gamma.weight)

    def forward(self, x, y):
        return (1 + self.gamma(y))[:, :, None, None] * self.bn(x) + self.beta(y)[:, :, None, None]


class IgnoresY(models.ConditionalBatchNorm2d):  # one scale and shift for every class
    def forward(self, x, y):
        return self.gamma.weight[0][None, :, None, None] * self.bn(x) + self.beta.weight[0][None, :, None, None]


class GammaStartsRandom(models.ConditionalBatchNorm2d):  # nn.Embedding's default N(0, 1) left in place
    def __init__(self, channels, num_classes):
        super().__init__(channels, num_classes)
        nn.init.normal_(self.gamma.weight)


class DetachedTables(models.ConditionalBatchNorm2d):  # the class tables never get a gradient
    def forward(self, x, y):
        return self.gamma(y).detach()[:, :, None, None] * self.bn(x) + self.beta(y).detach()[:, :, None, None]


WRONG_CBN = {"batch statistics in eval mode": BatchStatsInEval, "(1 + gamma)": OnePlusGamma,
             "ignores y": IgnoresY, "gamma not initialised to 1": GammaStartsRandom, "detached tables": DetachedTables}

WRONG_PROJECTION = {
    "no psi term": lambda phi, y, lin, emb: (emb(y) * phi).sum(1),
    "keeps a [B, 1] column": lambda phi, y, lin, emb: lin(phi) + (emb(y) * phi).sum(1, keepdim=True),
    "every class against every sample": lambda phi, y, lin, emb: lin(phi).flatten() + (emb(y) @ phi.T).sum(1),
}


def _fd_parts(a, b):
    return a.mean(0), b.mean(0), np.cov(a, rowvar=False), np.cov(b, rowvar=False)


def _fd_no_sqrt(a, b):
    ma, mb, sa, sb = _fd_parts(a, b)
    return float(((ma - mb) ** 2).sum() + np.trace(sa + sb - 2 * sa @ sb))


def _fd_elementwise(a, b):
    ma, mb, sa, sb = _fd_parts(a, b)
    with np.errstate(invalid="ignore"):
        return float(((ma - mb) ** 2).sum() + np.trace(sa + sb) - 2 * np.sqrt(sa * sb).trace())


def _fd_biased(a, b):
    from scipy import linalg
    ma, mb = a.mean(0), b.mean(0)
    sa, sb = np.cov(a, rowvar=False, bias=True), np.cov(b, rowvar=False, bias=True)
    return float(((ma - mb) ** 2).sum() + np.trace(sa + sb - 2 * linalg.sqrtm(sa @ sb).real))


WRONG_FD = {"no square root of the product": _fd_no_sqrt, "element-wise square root": _fd_elementwise,
            "means only": lambda a, b: float(((a.mean(0) - b.mean(0)) ** 2).sum()), "biased covariances": _fd_biased}


def _nlerp(z0, z1, t):  # normalised lerp: the right norms, the wrong angles
    t = t[:, None]
    line = (1 - t) * z0 + t * z1
    return line / line.norm(dim=1, keepdim=True) * ((1 - t) * z0.norm() + t * z1.norm())


def _textbook_slerp(z0, z1, t):  # right on generic ends, NaN when the directions coincide
    n0, n1 = z0.norm(), z1.norm()
    omega = torch.arccos((z0 / n0 @ z1 / n1).clamp(-1, 1))
    t = t[:, None]
    return (torch.sin((1 - t) * omega) * z0 / n0 + torch.sin(t * omega) * z1 / n1) / torch.sin(omega) * ((1 - t) * n0 + t * n1)


WRONG_SLERP = {"normalised lerp": _nlerp, "no case for parallel ends": _textbook_slerp, "lerp": lambda z0, z1, t: (1 - t[:, None]) * z0 + t[:, None] * z1,
               "constant norm |z0|": lambda z0, z1, t: B.solution("05.A")[0](z0, z1 * z0.norm() / z1.norm(), t)}

def _ema_wrong_side(ema, params, d):
    with torch.no_grad():
        for e, p in zip(ema, params):
            e.mul_(1 - d).add_(p, alpha=d)


def _ema_new_tensors(ema, params, d):
    for i, (e, p) in enumerate(zip(ema, params)):
        ema[i] = d * e + (1 - d) * p  # a new tensor: the EMA model never sees it


def _ema_copy(ema, params, d):
    with torch.no_grad():
        for e, p in zip(ema, params):
            e.copy_(p)


WRONG_EMA = {"decay on the wrong side": _ema_wrong_side, "new tensors, not in place": _ema_new_tensors,
             "a copy, not an average": _ema_copy}

def _step(detach_g=False, zero_d=True, reuse=False, g_first=False, d_loss=None, two_passes=False):
    """A train_step with one plausible mistake switched on."""
    from cgan_course.train import discriminate

    def d_phase(G, D, opt_d, x_real, y_real, z, y):
        with torch.no_grad():
            x_fake = G(z, y)
        if two_passes:
            d_real, d_fake = D(x_real, y_real), D(x_fake, y)
        else:
            d_real, d_fake = discriminate(D, x_real, y_real, x_fake, y)
        loss_d = (d_loss or losses.d_loss_hinge)(d_real, d_fake)
        if zero_d:
            opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        return loss_d

    def g_phase(G, D, opt_g, z, y):
        x_fake = G(z, y)
        loss_g = losses.g_loss_hinge(D(x_fake.detach() if detach_g else x_fake, y))
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        return loss_g

    def train_step(G, D, opt_g, opt_d, x_real, y_real, z_d, y_d, z_g, y_g):
        z_g, y_g = (z_d, y_d) if reuse else (z_g, y_g)
        if g_first:
            loss_g = g_phase(G, D, opt_g, z_g, y_g)
            return d_phase(G, D, opt_d, x_real, y_real, z_d, y_d), loss_g
        return d_phase(G, D, opt_d, x_real, y_real, z_d, y_d), g_phase(G, D, opt_g, z_g, y_g)
    return train_step


WRONG_STEP = {"G phase on detached fakes": _step(detach_g=True), "no zero_grad for D": _step(zero_d=False),
              "G scored on D's fakes": _step(reuse=True), "G before D": _step(g_first=True),
              "the BCE loss": _step(d_loss=losses.d_loss_bce), "D called twice": _step(two_passes=True)}

WRONG = {"01.A": WRONG_LOSSES, "04.A": {k: (v,) for k, v in WRONG_EMA.items()}, "04.B": {k: (v,) for k, v in WRONG_STEP.items()}, "03.A": {k: (v,) for k, v in WRONG_CBN.items()},
         "03.B": {k: (v,) for k, v in WRONG_PROJECTION.items()}, "06.A": {k: (v,) for k, v in WRONG_FD.items()},
         "05.A": {k: (v,) for k, v in WRONG_SLERP.items()}}
STUBS = {"01.A": (stub, stub, stub), "04.A": (stub,), "04.B": (stub,), "03.A": (StubCBN,), "03.B": (stub,), "06.A": (stub,), "05.A": (stub,)}


def test_every_build_has_a_stub_and_at_least_two_wrong_answers_here():
    assert set(WRONG) == set(STUBS) == set(B.BUILDS)
    assert all(len(w) >= 2 for w in WRONG.values())
    assert len(B.BUILDS) >= 6 and len({b.notebook for b in B.BUILDS.values()}) >= 4


@pytest.mark.parametrize("key", sorted(B.BUILDS))
def test_the_reference_solution_passes_and_is_used(key, capsys):
    solution = B.solution(key)
    capsys.readouterr()  # anything printed on the way (e.g. statistics computed, not cached)
    B.BUILDS[key].check(*solution)
    out = capsys.readouterr().out
    assert out.startswith(f"Exercise {key}: right") and "✗" not in out, out
    mine = B.solution(key)
    assert B.build(key, *mine) == mine and B.RESULTS[key] == ("passed", "")


@pytest.mark.parametrize("key", sorted(B.BUILDS))
def test_the_stub_falls_back_to_the_reference_and_says_so(key, capsys):
    with pytest.raises(NotImplementedError):
        B.BUILDS[key].check(*STUBS[key])
    used = B.build(key, *STUBS[key])
    assert used == B.BUILDS[key].reference() and B.RESULTS[key][0] == "not finished"
    assert "using the reference" in capsys.readouterr().out


@pytest.mark.parametrize("key,wrong", [(k, w) for k in sorted(WRONG) for w in WRONG[k]])
def test_a_plausible_wrong_answer_fails_its_check(key, wrong, capsys):
    with pytest.raises(NotYetRight):
        B.BUILDS[key].check(*WRONG[key][wrong])
    assert "✗" in capsys.readouterr().out
    used = B.build(key, *WRONG[key][wrong])
    assert used == B.BUILDS[key].reference() and B.RESULTS[key][0] == "failed"
    assert "using the reference" in capsys.readouterr().out


def test_solutions_mode_swaps_in_the_reference_solutions(monkeypatch, capsys):
    monkeypatch.setenv(B.SOLUTIONS_ENV, "1")
    used = B.build("05.A", stub)
    assert used[0] is not stub and B.RESULTS["05.A"] == ("passed", "")
    assert "CGAN_COURSE_SOLUTIONS is set" in capsys.readouterr().out


def test_a_wrong_number_of_functions_or_an_unknown_key_is_one_clear_error():
    from cgan_course.errors import CourseError

    with pytest.raises(CourseError, match=r"build 01.A takes 3 function\(s\), d_loss, g_loss_minimax"):
        B.build("01.A", stub)
    with pytest.raises(CourseError, match="no build exercise '09.Z'"):
        B.build("09.Z", stub)


@pytest.mark.slow
def test_the_build_notebooks_run_with_the_solutions_put_in(tmp_path, monkeypatch):
    """CI's second way through the notebooks: as committed they run on the stubs (nbval, with the
    reference fallback shown); here with every build exercise solved, each check passing in place."""
    import nbformat

    from cgan_course.course import run_course

    monkeypatch.setenv(B.SOLUTIONS_ENV, "1")
    # each chapter with a build exercise, up to the end of the section that builds the learner's
    # function (and uses it: no later section calls what the learner built, only the package's own
    # code, which nbval's run of the whole notebooks covers); the sections one after another in
    # one notebook, so one kernel (its start and imports were half of this test's time). A section
    # that used a name only an earlier chapter defines would pass here and fail in nbval's run of
    # its own notebook, which executes the same cells. In a folder of its own, so its run folders
    # are not the ones nbval's run writes, perhaps at the same time on another worker.
    copies = tmp_path / "notebooks"
    copies.mkdir()
    sections = None
    for number in sorted({key[:2] for key in B.BUILDS}):
        path = next(NOTEBOOKS_DIR.glob(f"{number}_*.ipynb"))
        nb = nbformat.read(path, as_version=4)
        last = max(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and 'build("' in c.source)
        stop = next((i for i, c in enumerate(nb.cells)
                     if i > last and c.cell_type == "markdown" and c.source.startswith("## ")), len(nb.cells))
        # the cut loses nothing: no later cell names what the learner built (an attribute such as
        # losses.d_loss, or a key such as "d_loss", is not the name; an object made from it in the
        # build section and used later would escape this check: none is, today)
        built = {name.strip() for c in nb.cells if c.cell_type == "code"
                 for lhs in re.findall(r"^([\w, ]+?),?\s*=\s*build\(", c.source, re.M) for name in lhs.split(",")}
        later = "\n".join(c.source for c in nb.cells[stop:] if c.cell_type == "code")
        assert built and not [n for n in built if re.search(rf"(?<![\w.\"']){n}\b(?![\"'])", later)], (number, built)
        for cell in nb.cells[:stop]:
            cell.id = f"{number}-{cell.id}"  # ids stay unique across chapters
        if sections is None:
            sections, nb.cells = nb, nb.cells[:stop]
        else:
            sections.cells += nb.cells[:stop]
    nbformat.write(sections, copies / "00_build_sections.ipynb")
    results = run_course("smoke", out=tmp_path / "executed", notebooks_dir=copies, log=lambda *_: None)
    assert [r.ok for r in results] == [True], [(r.notebook, r.error) for r in results]
    text = "".join(o.get("text", "") for r in results for c in nbformat.read(r.output, as_version=4).cells
                   if c.cell_type == "code" for o in c.get("outputs", []))
    for key in B.BUILDS:  # every build exercise of the course, each checked where it stands
        assert f"Exercise {key}: right" in text, key
    assert "using the reference" not in text
