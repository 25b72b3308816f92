"""Checkpoint and release files: atomic writes, all-or-nothing folders, the export -> load round trip."""
import dataclasses
import json

import pytest
import torch

from cgan_course import release
from cgan_course.checkpoints import (atomic_write, load_checkpoint, read_card, save_checkpoint, sha256, staging_folder,
                                     write_card)
from cgan_course.data import CLASSES
from cgan_course.metrics import ClassifierFeatures, class_morph_curve
from cgan_course.models import ModelConfig, build_discriminator, build_generator
from cgan_course.pretrained import load_generator
from cgan_course.train import TrainConfig, config_from_args

TINY = ModelConfig(z_dim=16, g_width=8, d_width=8)


def tiny_checkpoint(folder, model: ModelConfig = TINY, steps: int = 7):
    """A training checkpoint (and log.csv of two resumed segments) of an untrained tiny generator."""
    torch.manual_seed(0)
    G, D = build_generator(model), build_discriminator(model)
    cfg = TrainConfig(model=model, steps=steps, batch_size=8, d_steps=2, lr_g=1e-4, beta1=0.5)
    path = folder / "checkpoint.pt"
    adam = lambda m: torch.optim.Adam(m.parameters()).state_dict()  # noqa: E731
    save_checkpoint(path, {"format": 1, "config": cfg.to_dict(), "step": steps, "G": G.state_dict(),
                           "D": D.state_dict(), "G_ema": G.state_dict(), "opt_g": adam(G), "opt_d": adam(D),
                           "scaler_g": {}, "scaler_d": {}, "batches": {}, "history": [],
                           "rng": [{"cpu": torch.get_rng_state()}]})
    (folder / "log.csv").write_text("step,time_s\n2,30.0\n4,60.0\n6,15.0\n")  # a resume restarted the clock at step 5
    return path


def test_atomic_write_survives_a_crash_mid_write(tmp_path):
    path = tmp_path / "card.json"
    atomic_write(path, lambda tmp: tmp.write_text("old"))

    def crash(tmp):
        tmp.write_text("half of the new")
        raise KeyboardInterrupt  # or a kill: the rename never happens

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, crash)
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["card.json"]  # no temporary file left


def test_staging_folder_publishes_all_files_or_none(tmp_path):
    dest = tmp_path / "run"
    with pytest.raises(RuntimeError, match="step 2 failed"):
        with staging_folder(dest) as staging:
            (staging / "a.pt").write_bytes(b"a")
            raise RuntimeError("step 2 failed")
    assert list(tmp_path.iterdir()) == []  # neither the destination nor the staging folder
    dest.mkdir()
    (dest / "old_log.csv").write_text("stale")
    (dest / "keep.txt").write_text("unrelated")
    with staging_folder(dest, replaces=("a.pt", "old_log.csv")) as staging:
        (staging / "a.pt").write_bytes(b"a")
    assert sorted(p.name for p in dest.iterdir()) == ["a.pt", "keep.txt"]  # the stale log described other weights
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_card_heads_with_the_weights_hash(tmp_path):
    weights = tmp_path / "w.pt"
    save_checkpoint(weights, {"x": torch.arange(3)})
    write_card(weights, {"sha256": "stale", "note": "n"})
    card = read_card(weights)
    assert list(card)[:2] == ["file", "sha256"] and card["sha256"] == sha256(weights) and card["note"] == "n"


def test_export_then_load_gives_the_same_generator(tmp_path):
    ckpt = tiny_checkpoint(tmp_path)
    out = release.export_generator(ckpt, tmp_path / "export" / "generator.pt", {"note": "t"}, recalibrate=False)
    G = load_generator(path=out)
    state = load_checkpoint(ckpt)
    G_ema = build_generator(TINY)
    G_ema.load_state_dict(state["G_ema"])
    z, y = torch.randn(4, TINY.z_dim), torch.tensor([0, 1, 8, 9])
    with torch.no_grad():
        assert torch.allclose(G(z, y), G_ema.eval()(z, y), atol=2e-2)  # fp16 weights
    card = read_card(out)
    assert card["model"] == dataclasses.asdict(TINY) and card["note"] == "t" and G.classes == list(CLASSES)


def test_unconditional_export_has_no_class_names(tmp_path):
    model = dataclasses.replace(TINY, num_classes=0)
    out = release.export_generator(tiny_checkpoint(tmp_path, model), tmp_path / "g.pt", recalibrate=False)
    G = load_generator(path=out)
    assert G.num_classes == 0 and G.classes is None


def test_training_command_reproduces_the_config():
    cfg = TrainConfig(model=TINY, steps=50, batch_size=8, lr_g=1e-4, hflip=False, diffaug="translation")
    command = release.training_command(cfg.to_dict(), steps=40, out="runs/x")
    assert command.startswith("python -m cgan_course.train ")
    again = config_from_args(command.split()[3:])
    assert again == dataclasses.replace(cfg, steps=40, out="runs/x")


@pytest.mark.slow
def test_export_command_writes_a_new_folder_that_loads(tmp_path, capsys, cli_error):
    """End to end on the committed sample: 4 files in --out, the card's numbers are the loaded
    generator's, and a second export into the same folder is refused."""
    ckpt = tiny_checkpoint(tmp_path)
    out = tmp_path / "export"
    release.main(["export", str(ckpt), "--out", str(out), "--source", "sample", "--num-samples", "100"])
    assert f"to {out}" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == sorted(release.RELEASE_FILES)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt", "export", "log.csv"]
    card = read_card(out / "generator.pt")
    training = card["training"]
    assert training["steps"] == 7 and training["images_seen"] == 7 * 8 * 2
    assert training["wall_time_min"] == round((60.0 + 15.0) / 60, 1)
    assert config_from_args(training["command"].split()[3:]).model == TINY
    assert card["metrics"]["label_accuracy"]["num_samples"] == 100
    morphs = card["metrics"]["class_morphs"]  # notebook 05's routes, on 100 // 100 -> 2 latents here
    assert morphs["num_latents"] == 2 and set(morphs) >= {"airplane -> frog", "horse -> ship", "cat -> dog"}
    G, clf = load_generator(path=out / "generator.pt"), ClassifierFeatures()
    again = class_morph_curve(G, clf, CLASSES.index("horse"), CLASSES.index("ship"), num_latents=2)
    assert morphs["horse -> ship"]["end"] == round(again["p_end"][-1], 3)  # calibrated, as the card says
    assert morphs["temperature"] == clf.model.temperature != 1.0
    assert (out / "train_log.csv").read_text() == (tmp_path / "log.csv").read_text()
    assert load_generator(path=out / "generator.pt").z_dim == TINY.z_dim
    before = sha256(out / "generator.pt")
    cli_error(release.main, ["export", str(ckpt), "--out", str(out), "--source", "sample"],
              r"generator\.pt exists \(an earlier run\?\).*new --out")
    assert sha256(out / "generator.pt") == before
    assert json.loads((out / "generator.json").read_text()) == card


def test_training_command_names_the_readers_cifar10_copy():
    cfg = TrainConfig(model=TINY, data_source="folder", data_root="/var/tmp/cifar10-jpg", steps=50)
    assert "--data-source folder --data-root $CGAN_COURSE_CIFAR10 " in release.training_command(cfg.to_dict())
    own = TrainConfig(model=TINY, data_source="folders", data_root="my_photos", steps=50)
    assert "--data-root my_photos" in release.training_command(own.to_dict())  # your own data keeps its path
