"""The committed pretrained generator: loads offline and safely, and still draws its classes."""
import json
import shutil

import pytest
import torch

from cgan_course import metrics, pretrained
from cgan_course.data import CLASSES
from cgan_course.checkpoints import CheckpointError

LABEL_ACCURACY_FLOOR = 0.35  # well below the card's 10k-sample value (57.1%): a broken checkpoint fails


def test_committed_generator_draws_the_requested_classes():
    G = pretrained.load_generator()
    assert not G.training and G.z_dim == 128 and G.num_classes == 10 and G.classes == list(CLASSES)
    x = G(torch.randn(4, 128), torch.tensor([0, 3, 6, 9]))
    assert x.shape == (4, 3, 32, 32) and x.min() >= -1 and x.max() <= 1
    score = metrics.label_fidelity(G, num_samples=300, seed=123)
    assert score.value > LABEL_ACCURACY_FLOOR, str(score)
    card = pretrained.read_card()
    # the card's number was measured on 10,000 samples; 300 samples land within a few points
    assert abs(score.value - card["metrics"]["label_accuracy"]["value"]) < 0.1


def test_card_describes_the_run():
    card = pretrained.read_card()
    for key in ("config", "command", "data_source", "steps", "images_seen", "wall_time_min", "hardware"):
        assert card["training"][key], key
    assert card["sha256"] == pretrained.sha256(pretrained.GENERATOR_FILE)
    assert pretrained.GENERATOR_FILE.stat().st_size < 10 * 2**20
    assert (pretrained.PRETRAINED_DIR / "generator_grid.png").is_file()


def test_corrupt_or_missing_file_fails_clearly(tmp_path):
    bad = tmp_path / "generator.pt"
    shutil.copyfile(pretrained.GENERATOR_FILE, bad)
    shutil.copyfile(pretrained.card_path(pretrained.GENERATOR_FILE), pretrained.card_path(bad))
    with open(bad, "r+b") as f:
        f.seek(1000)
        f.write(b"\x00" * 16)
    with pytest.raises(CheckpointError, match="does not match its card"):
        pretrained.load_generator(path=bad)
    with pytest.raises(pretrained.PretrainedMissing, match="git checkout -- data/pretrained"):
        pretrained.load_generator(path=tmp_path / "nothing.pt")


def test_weights_of_another_architecture_are_refused(tmp_path):
    state = torch.load(pretrained.GENERATOR_FILE, weights_only=True)
    state["model"]["g_width"] += 16
    other = tmp_path / "generator.pt"
    torch.save(state, other)
    card = json.loads(pretrained.card_path(pretrained.GENERATOR_FILE).read_text())
    card["sha256"] = pretrained.sha256(other)
    pretrained.card_path(other).write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="weights do not fit this model"):
        pretrained.load_generator(path=other)


# Along a morph of two visibly distant classes with z fixed, the classifier's probability of the
# target class must climb from below START_CEILING to above END_FLOOR (mean over 50 latents).
# The committed generator measures 0.04 -> 0.49 (airplane -> frog, 100 latents, notebook 05).
MORPH_START_CEILING, MORPH_END_FLOOR = 0.2, 0.35


def test_class_morph_moves_the_class():
    G = pretrained.load_generator()
    clf = metrics.ClassifierFeatures()
    curve = metrics.class_morph_curve(G, clf, CLASSES.index("airplane"), CLASSES.index("frog"), num_latents=50)
    p = curve["p_end"]
    assert p[0] < MORPH_START_CEILING and p[-1] > MORPH_END_FLOOR, p
    same = metrics.class_morph_curve(G, clf, 3, 3, num_latents=2, steps=3)["p_end"]
    assert max(same) - min(same) < 1e-5  # no class change, no image change
    with pytest.raises(ValueError, match="class indices"):
        metrics.class_morph_curve(G, clf, 0, 12)
