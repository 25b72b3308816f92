"""The exercises' self-checks: every reference solution passes its check, wrong answers get the
specific feedback they need, and every notebook's exercise list names its checks."""
from __future__ import annotations

import dataclasses
import importlib.util
import math
import re
from pathlib import Path

import nbformat
import pytest
import torch

from cgan_course import exercises, models, pretrained, serve, toy
from cgan_course.errors import CourseError
from cgan_course.exercises import EXERCISES, NotYetRight
from cgan_course.models import ModelConfig, build_generator
from cgan_course.paths import SOLUTIONS_DIR

NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"


def _solution(notebook: str):
    path = SOLUTIONS_DIR / f"ex{notebook}.py"
    spec = importlib.util.spec_from_file_location(f"solutions_ex{notebook}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def G():
    return pretrained.load_generator("cpu")


@pytest.mark.parametrize("key", sorted(EXERCISES))
def test_reference_solution_passes_its_check(key, capsys):
    exercise = EXERCISES[key]
    kwargs = getattr(_solution(exercise.notebook), f"solve_{exercise.number}")(fast=True)
    capsys.readouterr()  # what the solution printed on its way (e.g. reference statistics computed, not cached)
    exercise.check(**kwargs)  # raises NotYetRight on a wrong answer
    out = capsys.readouterr().out
    assert out.startswith(f"Exercise {key}: right") and "✗" not in out, out


@pytest.mark.parametrize("notebook", sorted({e.notebook for e in EXERCISES.values()}))
def test_notebook_lists_each_exercise_with_its_check(notebook):
    path = next(NOTEBOOKS_DIR.glob(f"{notebook}_*.ipynb"))
    markdown = [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown"]
    text = markdown[-1].split("## Exercises", 1)[1]
    numbered = re.findall(r"^(\d+)\. ", text, flags=re.M)
    mine = [e for e in EXERCISES.values() if e.notebook == notebook]
    assert [int(n) for n in numbered] == [e.number for e in mine], f"{path.name}: exercises {numbered}"
    for e in mine:
        assert f"check_{e.check.__name__.removeprefix('check_')}(" in text, f"{path.name}: {e.key} names no check"


def test_a_wrong_answer_raises_an_assertion_and_a_course_error():
    assert issubclass(NotYetRight, AssertionError) and issubclass(NotYetRight, CourseError)


def test_show_lists_checks_and_solutions(capsys):
    exercises.show("03")
    out = capsys.readouterr().out
    assert "03.3" in out and "check_power_iteration(sigma_fn" in out and "solutions/ex03.py, solve_3()" in out
    with pytest.raises(CourseError, match=r"no exercises for notebook '09'.*choose one of"):
        exercises.show("09")


# ----------------------------------------------------------------------------------------------
# Wrong answers: each gets a message that names what to fix


def test_mixture_value_recognises_section_2s_generator():
    with pytest.raises(NotYetRight, match=r"section 2's generator N\(2, 0.8²\)"):
        exercises.check_mixture_value(-0.614226, 0.386034)


def test_mixture_value_needs_minus_log_4():
    v, jsd = exercises._mixture_value()
    with pytest.raises(NotYetRight, match="V = -log 4 \\+ 2 JSD|V\\(D\\*, G\\) should be"):
        exercises.check_mixture_value(2 * jsd, jsd)


def test_minimax_check_catches_logits_given_as_probabilities():
    solution = _solution("01").solve_2(fast=True)
    with torch.no_grad():
        mean_logit = solution["result"].D(solution["result"].frames[-1][1]).mean().item()
    with pytest.raises(NotYetRight, match="that is the mean logit"):
        exercises.check_minimax_toy(solution["result"], mean_logit)


def test_coverage_check_names_the_wrong_frame():
    solution = _solution("01").solve_1(fast=True)
    coverage = list(solution["coverage"])
    coverage[-1] += 1
    with pytest.raises(NotYetRight, match=r"at step 60 you have"):
        exercises.check_coverage_over_training(solution["result"], coverage, solution["ever_all_modes"])


def test_pair_conditioning_rejects_fine_labels():
    samples, labels = torch.zeros(80, 2), torch.arange(80) % 8
    with pytest.raises(NotYetRight, match=r"coarse classes 0..3 \(y // 2\)"):
        exercises.check_pair_conditioning(samples, labels, expected="a")


def test_pair_conditioning_rejects_samples_on_another_pair():
    centers = toy.ring_centers(8, 2.0)
    labels = torch.arange(40) % 4
    samples = centers[(2 * labels + 2) % 8]  # every class draws the next class's modes
    with pytest.raises(NotYetRight, match=r"class 0: only 0% of its samples"):
        exercises.check_pair_conditioning(samples, labels, expected="a")


def _on_their_modes() -> dict:
    labels = torch.arange(40) % 4
    return dict(samples=toy.ring_centers(8, 2.0)[2 * labels], labels=labels)  # class c on its mode 2c


PREDICTIONS = {  # check, the right letter's other arguments, the prediction's name
    "01.4": (lambda **kw: exercises.check_pair_conditioning(**kw), _on_their_modes, "expected"),
    "02.2": (lambda **kw: exercises.check_crop_padding(**kw),
             lambda: {k: v for k, v in _solution("02").solve_2(fast=True).items() if k != "artefact"}, "artefact"),
    "01.5": (lambda **kw: exercises.check_d_loss_dip(**kw), dict, "answer"),
    "02.1": (lambda **kw: exercises.check_channel_stats(**kw),
             lambda: {k: v for k, v in _solution("02").solve_1(fast=True).items() if k != "matters"}, "matters"),
    "03.2": (lambda **kw: exercises.check_bias_head(**kw), lambda: dict(head_cls=_solution("03").BiasHead), "detects"),
}


@pytest.mark.parametrize("key", sorted(PREDICTIONS))
def test_a_prediction_passes_only_with_the_right_letter(key):
    """The "why" questions are checked predictions: the stub (None), a non-letter and every wrong
    letter fail, each wrong letter with its reason; only the right letter passes."""
    check, others, name = PREDICTIONS[key]
    check(**others(), **{name: "a"})
    for answer in ("b", "c", "d", None, "", "e", 3):
        with pytest.raises(NotYetRight, match=rf"{name}: (not \([bcd]\): \w|answer with one letter)"):
            check(**others(), **{name: answer})


def test_the_shuffler_prediction_fails_on_every_wrong_letter():
    """06.2's prediction (why the plain FD cannot see shuffled labels), on a stand-in generator: the
    prediction is judged first, so a wrong letter is the first thing the learner reads."""
    G = build_generator(ModelConfig(g_width=8, d_width=8, z_dim=16)).eval()
    for why in ("b", "c", "d", None, ""):
        with pytest.raises(NotYetRight, match=r"exercise 06.2: why: (not \([bcd]\)|answer with one letter)"):
            exercises.check_label_shuffler(G, G, why, num_samples=20)


def test_d_loss_dip_explains_a_wrong_option():
    with pytest.raises(NotYetRight, match=r"not \(b\): at the optimum D's loss is log 4"):
        exercises.check_d_loss_dip("b")


def test_channel_stats_in_255_units():
    images = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    x = images.double()
    with pytest.raises(NotYetRight, match=r"\[0, 255\] units: divide the pixels by 255"):
        exercises.check_channel_stats(images, x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3)), "a")
    with pytest.raises(NotYetRight, match="one per channel"):
        exercises.check_channel_stats(images, x.mean(), x.std(), "a")


def test_crop_check_rejects_a_flip():
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with pytest.raises(NotYetRight, match="is not a padded crop"):
        exercises.check_crop_padding(x, x.flip(3), artefact="a")


def test_unit_range_check_catches_a_missing_clamp_and_in_place_work():
    def to_unit(x):
        return x.float() / 127.5 - 1

    def from_unit_no_clamp(x):
        return ((x + 1) * 127.5).round().to(torch.uint8)

    with pytest.raises(NotYetRight, match=r"clamp to \[0, 255\] before the cast"):
        exercises.check_unit_range(to_unit, from_unit_no_clamp)

    def to_unit_in_place(x):
        return x.clamp_(1, 255).float() / 127.5 - 1  # overwrites the caller's level 0

    with pytest.raises(NotYetRight, match="to_unit changed its input tensor"):
        exercises.check_unit_range(to_unit_in_place, _solution("02").from_unit)


def test_upsampling_blocks_32px_count():
    solution = _solution("03").solve_1()
    with pytest.raises(NotYetRight, match="32-pixel generator's count"):
        exercises.check_upsampling_blocks(3, solution["extra_params"])


def test_bias_head_rejects_a_projection():
    with pytest.raises(NotYetRight, match="not a per-class bias"):
        exercises.check_bias_head(models.ProjectionHead, "a")


def test_power_iteration_names_frobenius_and_squared():
    with pytest.raises(NotYetRight, match="Frobenius norm"):
        exercises.check_power_iteration(lambda W, k: torch.linalg.matrix_norm(W, "fro").item())
    with pytest.raises(NotYetRight, match="sigma squared"):
        exercises.check_power_iteration(lambda W, k: torch.linalg.matrix_norm(W, 2).item() ** 2)


def test_power_iteration_must_iterate(capsys):
    """Issue 22: an exact SVD used to pass; now one step must fall short of sigma."""
    with pytest.raises(NotYetRight, match="power iteration approaches sigma from below, step by step"):
        exercises.check_power_iteration(lambda W, k: torch.linalg.svdvals(W)[0].item())
    with pytest.raises(NotYetRight, match=r"raised TypeError"):  # the old one-argument signature
        exercises.check_power_iteration(lambda W: torch.linalg.svdvals(W)[0].item())
    assert "✗" in capsys.readouterr().out


def test_minimax_check_needs_the_minimax_run():
    """Issue 22: the default (non-saturating) run used to pass 01.2."""
    from cgan_course import toy

    default = toy.train_toy(toy.ToyConfig(steps=60))
    with torch.no_grad():
        d_fake = torch.sigmoid(default.D(default.frames[-1][1])).mean().item()
    with pytest.raises(NotYetRight, match=r"trained with the nonsaturating generator loss|trained with the .* loss"):
        exercises.check_minimax_toy(default, d_fake)


def test_conditioning_params_hints():
    with pytest.raises(NotYetRight, match="that is for 10 classes"):
        exercises.check_conditioning_params(_ten_class_answer())


def _ten_class_answer() -> int:
    from cgan_course.models import ModelConfig, build_generator, count_parameters
    return (count_parameters(build_generator(ModelConfig(num_classes=10)))
            - count_parameters(build_generator(ModelConfig(num_classes=0))))


def test_ema_half_life_is_not_the_time_constant():
    with pytest.raises(NotYetRight, match="time constant"):
        exercises.check_ema_half_life(1000)


def test_hinge_check_explains_bce_thinking():
    with pytest.raises(NotYetRight, match="BCE loss never has a zero gradient"):
        exercises.check_hinge_zero_gradient([], [0])


def test_latent_shell_rejects_the_wrong_midpoint():
    m8, s8 = exercises.chi_mean_std(8)
    m512, s512 = exercises.chi_mean_std(512)
    with pytest.raises(NotYetRight, match=r"z_dim 512: the midpoints .* norm about 15.99"):
        exercises.check_latent_shell({8: (m8, s8, m8 / math.sqrt(2)), 512: (m512, s512, m512)}, n=1000)


def test_truncated_norms_catch_untruncated_latents():
    with pytest.raises(NotYetRight, match="untruncated shell: pass truncation=0.5"):
        exercises.check_truncated_norms({0.5: exercises.chi_mean_std(128)[0]})


def test_fd_extrapolation_needs_an_intercept():
    ns, fds = [100, 200, 400], [12.0, 7.0, 4.5]
    with pytest.raises(NotYetRight, match="fit an intercept too"):
        exercises.check_fd_extrapolation(ns, fds, 0.0, 1000.0)


def test_label_shuffler_must_expose_z_dim(G):
    class Bare(torch.nn.Module):
        def __init__(self, G):
            super().__init__()
            self.G = G

        def forward(self, z, y):
            return self.G(z, y)

    with pytest.raises(NotYetRight, match=r"set self.z_dim = G.z_dim"):
        exercises.check_label_shuffler(Bare(G), G, "a")


def test_label_shuffler_must_shuffle(G):
    class Identity(torch.nn.Module):
        def __init__(self, G):
            super().__init__()
            self.G, self.z_dim, self.num_classes = G, G.z_dim, G.num_classes

        def forward(self, z, y):
            return self.G(z, y)

    with pytest.raises(NotYetRight, match=r"labels permuted"):
        exercises.check_label_shuffler(Identity(G), G, "a", num_samples=20)


def test_inception_score_without_the_marginal():
    def entropy_score(logits):  # forgets p(y): exp(-E H(p(y|x)))
        p = torch.softmax(logits.double(), dim=1)
        return torch.exp((p * torch.log(p + 1e-12)).sum(1).mean()).item()

    with pytest.raises(NotYetRight, match=r"random logits: IS should be"):
        exercises.check_inception_score(entropy_score)


def test_midpoint_norms_slerp_is_not_projected():
    za, zb = torch.randn(128), torch.randn(128)
    with pytest.raises(NotYetRight, match="does not project onto sqrt\\(z_dim\\)"):
        exercises.check_midpoint_norms(za, zb, (0.5 * (za + zb)).norm().item(), math.sqrt(128))


def test_morph_comparison_reads_the_intervals():
    flat = {"p_end": [0.1, 0.12], "ci95": [0.05, 0.05]}
    steep = {"p_end": [0.1, 0.8], "ci95": [0.05, 0.05]}
    with pytest.raises(NotYetRight, match=r"the answer is 'distant', not 'near'"):
        exercises.check_morph_comparison(flat, steep, "near")
    with pytest.raises(NotYetRight, match=r"the answer is 'no difference'"):
        exercises.check_morph_comparison(flat, flat, "near")


def test_render_all_classes_wants_png_of_the_grid(G):
    with pytest.raises(NotYetRight, match="return PNG bytes"):
        exercises.check_render_all_classes(lambda G, seed, per_class: b"not a png", G)
    other_seed = _solution("07").render_all_classes
    with pytest.raises(NotYetRight, match="is not sample_grid"):
        exercises.check_render_all_classes(lambda G, seed, per_class: other_seed(G, seed + 1, per_class), G)


def test_split_rule_needs_another_seed():
    a = ["frog/1.png", "ship/2.png"]
    with pytest.raises(NotYetRight, match="files_other_seed is the same split: load it with another seed"):
        exercises.check_split_rule(a, list(a), list(reversed(a)))
    with pytest.raises(NotYetRight, match="files_a must be the non-empty .files list"):
        exercises.check_split_rule(None, a, a)


def test_judge_ceiling_rejects_a_generators_score():
    solution = _solution("08").solve_2(fast=True)
    wrong = dataclasses.replace(solution["score"], value=solution["score"].value + 0.25)
    with pytest.raises(NotYetRight, match=r"is not the judge's accuracy on these images"):
        exercises.check_judge_ceiling(**{**solution, "score": wrong})


@pytest.mark.slow
def test_client_must_raise_on_a_4xx():
    solution = _solution("08").solve_3(fast=True)

    def lenient(url, class_name, seed):  # returns the error body instead of raising
        return serve.call(url + "/generate", {"class": class_name, "n": 4, "seed": seed}).body

    with pytest.raises(NotYetRight, match="an unknown class returned bytes instead of raising"):
        exercises.check_client(lenient, solution["checkpoint"])


def test_resumed_run_needs_a_resume():
    solution = _solution("04").solve_4(fast=True)
    folder = solution["run_folder"]
    rows = (folder / "log.csv").read_text().splitlines()
    (folder / "log.csv").write_text("\n".join(rows[:5]) + "\n")  # the header and steps 1-4: one segment
    with pytest.raises(NotYetRight, match="the log shows one uninterrupted run"):
        exercises.check_resumed_run(folder)


def test_variant_must_change_what_the_exercise_asks():
    solution = _solution("04").solve_2(fast=True)  # a DiffAugment variant, passed as the classic one
    with pytest.raises(NotYetRight, match=r"the variant was trained with arch = 'projection'"):
        exercises.check_classic_vs_projection(solution["baseline"], solution["variant"], "no difference", 200)
    wrong = {"better": "worse", "worse": "better", "no difference": "better"}[solution["answer"]]
    with pytest.raises(NotYetRight, match=r"the answer is"):
        exercises.check_diffaug_effect(solution["baseline"], solution["variant"], wrong, "a", 200)
    # the prediction of why augmenting fakes is safe: every other letter, and no answer, fail; the
    # runs are still compared, so a wrong "why" does not hide a wrong measurement verdict
    for why in ("b", "c", "d", None, "", "x?"):
        with pytest.raises(NotYetRight, match=r"why: (not \([bcd]\)|answer with one letter)"):
            exercises.check_diffaug_effect(solution["baseline"], solution["variant"], solution["answer"], why, 200)
