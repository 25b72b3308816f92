"""Issue 15's contract for the released files (pretrained generator, classifier, checkpoints):
a bad input or a failing step is one clear error, and the committed files are never lost.

Tests only read ``data/pretrained``; anything they write goes to tmp_path.
"""
import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cgan_course import checkpoints, classifier, pretrained, release
from cgan_course.checkpoints import CheckpointError, card_path, load_checkpoint, save_checkpoint, sha256
from cgan_course.paths import REPO_ROOT

from test_checkpoints import tiny_checkpoint

COMMITTED = sorted(p for p in pretrained.PRETRAINED_DIR.iterdir() if p.is_file())


def committed_hashes() -> dict[str, str]:
    return {p.name: sha256(p) for p in COMMITTED}


@pytest.fixture
def committed_unchanged():
    """Fails the test if it changed any committed file in data/pretrained."""
    before = committed_hashes()
    yield
    assert committed_hashes() == before


@pytest.fixture
def fake_committed(tmp_path, monkeypatch):
    """A copy of data/pretrained that the code treats as the committed folder."""
    folder = tmp_path / "committed"
    folder.mkdir()
    for p in COMMITTED:
        shutil.copyfile(p, folder / p.name)
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", folder)
    monkeypatch.setattr(release, "PRETRAINED_DIR", folder)
    return folder


def hashes(folder: Path) -> dict[str, str]:
    return {p.name: sha256(p) for p in sorted(folder.iterdir())}


# ----------------------------------------------------------------------------------------------
# Item 1: a failing export loses nothing


@pytest.mark.slow
def test_failing_export_leaves_the_committed_generator_alone(tmp_path):
    """The issue's command, as documented (`python -m cgan_course.release export`): the metrics
    step fails on a wrong --data-root. It runs on a copy of the repository, so that a regression
    clobbers the copy's committed files, not these."""
    repo = tmp_path / "repo"
    shutil.copytree(REPO_ROOT / "cgan_course", repo / "cgan_course", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(pretrained.PRETRAINED_DIR, repo / "data" / "pretrained")
    before = hashes(repo / "data" / "pretrained")
    run = tmp_path / "run"
    run.mkdir()
    ckpt = tiny_checkpoint(run)
    proc = subprocess.run([sys.executable, "-m", "cgan_course.release", "export", str(ckpt), "--source", "folder",
                           "--data-root", "/nonexistent"], cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "/nonexistent" in proc.stderr, proc.stderr
    assert hashes(repo / "data" / "pretrained") == before
    assert sorted(p.name for p in repo.iterdir()) == ["cgan_course", "data"]  # no runs/export-*, no staging


@pytest.mark.slow
def test_export_replaces_the_committed_files_only_when_asked(tmp_path, cli_error, fake_committed):
    ckpt = tiny_checkpoint(tmp_path)
    before = hashes(fake_committed)
    cli_error(release.main, ["export", str(ckpt), "--out", str(fake_committed), "--source", "sample"],
              r"committed files .*--replace-committed")
    assert hashes(fake_committed) == before
    release.main(["export", str(ckpt), "--replace-committed", "--source", "sample", "--num-samples", "100"])
    after = hashes(fake_committed)
    assert {n for n in after if after[n] != before.get(n)} == set(release.RELEASE_FILES)  # the classifier stays
    assert pretrained.load_generator(path=fake_committed / "generator.pt").z_dim == 16


@pytest.mark.slow
def test_disk_full_during_an_export_into_the_committed_folder_changes_nothing(tmp_path, monkeypatch, cli_error,
                                                                            fake_committed):
    """Items 1 and 10: the card's write fails after the weights were made; nothing moves in."""
    ckpt = tiny_checkpoint(tmp_path)
    before = hashes(fake_committed)

    def disk_full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    with monkeypatch.context() as m:
        m.setattr(Path, "write_text", disk_full)
        cli_error(release.main, ["export", str(ckpt), "--replace-committed", "--source", "sample",
                                 "--num-samples", "100"], r"could not write .*generator\.json: the disk is full")
    assert hashes(fake_committed) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt", "committed", "log.csv"]  # no staging


# ----------------------------------------------------------------------------------------------
# Item 4: the classifier's training command


@pytest.mark.parametrize("epochs", ["0", "-3"])
def test_classifier_rejects_non_positive_epochs(epochs, tmp_path, cli_error, committed_unchanged):
    cli_error(classifier.main, ["train", "--source", "sample", "--epochs", epochs,
                                "--checkpoint", str(tmp_path / "ckpt.pt")], rf"epochs must be >= 1, got {epochs}")
    assert list(tmp_path.iterdir()) == []


def test_classifier_never_writes_the_committed_file_unasked(tmp_path, cli_error, committed_unchanged):
    cli_error(classifier.main, ["train", "--source", "sample", "--epochs", "1", "--checkpoint", str(tmp_path / "c.pt"),
                                "--out", str(classifier.CLASSIFIER_FILE)], r"--replace-committed")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_classifier_trains_into_its_run_folder(tmp_path, cli_error, capsys, committed_unchanged):
    """By default the weights go beside the checkpoint; a second run does not replace them."""
    run = tmp_path / "run"
    argv = ["train", "--source", "sample", "--epochs", "1", "--widths", "8,8,8", "--checkpoint", str(run / "ckpt.pt")]
    classifier.main(argv)
    assert sorted(p.name for p in run.iterdir()) == ["ckpt.pt", "classifier.json", "classifier.pt"]
    assert f"wrote {run / 'classifier.pt'}" in capsys.readouterr().out
    model = classifier.load_classifier(path=run / "classifier.pt")
    assert model.cfg.widths == (8, 8, 8)
    before = sha256(run / "classifier.pt")
    cli_error(classifier.main, argv, r"classifier\.pt exists \(an earlier run\?\)")
    assert sha256(run / "classifier.pt") == before


# ----------------------------------------------------------------------------------------------
# Item 10: a full disk while a checkpoint is written


@pytest.mark.parametrize("failure,cause", [
    (RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 2319040 vs 2318928"),
     "the write failed, most likely because the disk is full"),
    (OSError(errno.ENOSPC, "No space left on device"), "the disk is full"),
])
def test_full_disk_during_a_checkpoint_keeps_the_previous_one(failure, cause, tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"step": 1})

    def short_write(obj, f):
        Path(f).write_bytes(b"PK\x03\x04 half a zip")
        raise failure

    with monkeypatch.context() as m, pytest.raises(
            CheckpointError, match=rf"could not write {path}: {cause} .*MiB free there\)\. Free some space"):
        m.setattr(torch, "save", short_write)
        save_checkpoint(path, {"step": 2})
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # the partial temporary file is gone


# ----------------------------------------------------------------------------------------------
# Item 13: cards


def copy_generator(folder: Path) -> Path:
    weights = folder / "generator.pt"
    shutil.copyfile(pretrained.GENERATOR_FILE, weights)
    shutil.copyfile(card_path(pretrained.GENERATOR_FILE), card_path(weights))
    return weights


def test_invalid_json_card_names_the_file(tmp_path):
    weights = copy_generator(tmp_path)
    card_path(weights).write_text('{"sha256": "75941be9c1585f2f5f38e7f67d24801323f2f43fc726e9eaf4ca0133a2812ac1",')
    with pytest.raises(CheckpointError, match=rf"^{card_path(weights)} is not valid JSON \(.*line 1.*\): restore") as err:
        pretrained.load_generator(path=weights)
    assert "\n" not in str(err.value)
    clf = tmp_path / "classifier.pt"
    shutil.copyfile(classifier.CLASSIFIER_FILE, clf)
    card_path(clf).write_text("[1, 2]")
    with pytest.raises(CheckpointError, match=r"classifier\.json holds a JSON list, not a card"):
        classifier.load_classifier(path=clf)


def test_card_without_sha256_is_refused(tmp_path):
    weights = copy_generator(tmp_path)
    card = json.loads(card_path(weights).read_text())
    del card["sha256"]
    card_path(weights).write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match=r"generator\.json has no sha256, so generator\.pt cannot be checked"):
        pretrained.load_generator(path=weights)


def test_class_names_must_match_the_generator(tmp_path):
    weights = tmp_path / "generator.pt"
    state = torch.load(pretrained.GENERATOR_FILE, weights_only=True)
    state["classes"] = ["cat", "dog"]
    torch.save(state, weights)
    card = json.loads(card_path(pretrained.GENERATOR_FILE).read_text())
    card_path(weights).write_text(json.dumps({**card, "sha256": sha256(weights)}))
    with pytest.raises(CheckpointError, match=r"generator\.pt names 2 classes but its model has 10"):
        pretrained.load_generator(path=weights)


# Issue 27: an own-data checkpoint used to reach an IndexError in the intra-class FD


def test_release_export_refuses_an_own_data_checkpoint(tmp_path, cli_error, committed_unchanged):
    ckpt = tmp_path / "run" / "checkpoint.pt"
    ckpt.parent.mkdir()
    save_checkpoint(ckpt, {"config": {"model": {"num_classes": 2, "image_size": 64}}, "step": 3, "G_ema": {},
                           "classes": ["cats", "dogs"]})
    cli_error(release.main, ["export", str(ckpt), "--out", str(tmp_path / "out")],
              r"is not a CIFAR-10 generator \(2 classes: cats, dogs, 64 px\); release export measures against CIFAR-10")
    assert not (tmp_path / "out").exists()


def _exported(tmp_path, **fields) -> Path:
    """An exported-generator file with its card, built from the committed one with ``fields`` changed."""
    state = {**load_checkpoint(pretrained.GENERATOR_FILE), **fields}
    path = tmp_path / "generator.pt"
    save_checkpoint(path, state)
    checkpoints.write_card(path, {})
    return path


@pytest.mark.parametrize("fields,pattern", [
    ({"state_dict": "weights"}, "'state_dict' must map parameter names to tensors"),
    ({"state_dict": {"w": [1.0]}}, "'state_dict' must map parameter names to tensors"),
    ({"model": {"num_classes": 10**7}}, r"num_classes must be an integer in \[0, 10000\], got 10000000"),
    ({"model": {"g_width": 10**6}}, r"g_width must be an integer in \[1, 512\], got 1000000"),
    ({"model": [1, 2]}, "holds a model configuration this version of the course cannot build"),
])
def test_an_edited_exported_generator_is_refused_before_anything_is_built(tmp_path, fields, pattern):
    with pytest.raises(CheckpointError, match=pattern):
        pretrained.load_generator(path=_exported(tmp_path, **fields))


def test_a_generator_whose_classes_are_not_distinct_is_not_served(tmp_path, cli_error):
    from cgan_course import serve

    path = _exported(tmp_path, classes=["cat"] * 10)
    cli_error(serve.main, ["--generator", str(path)], r"G.classes must be 10 different non-empty names.*repeated: \['cat'\]")
