"""The course classifier: committed weights, hash check, accuracy floor, training/resume plumbing."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cgan_course import classifier as C
from cgan_course.data import load_cifar10, to_unit_range
from cgan_course.models import count_parameters
from cgan_course.pretrained import PretrainedMissing
from cgan_course.checkpoints import CheckpointError, sha256

needs_classifier = pytest.mark.skipif(not C.CLASSIFIER_FILE.is_file(),
                                      reason="data/pretrained/classifier.pt is not committed yet")


@needs_classifier
def test_committed_classifier_loads_and_has_the_documented_interface():
    model = C.load_classifier()
    assert not model.training
    x = torch.rand(4, 3, 32, 32) * 2 - 1  # the generator's range
    assert model(x).shape == (4, 10)
    assert model.features(x).shape == (4, model.feature_dim) == (4, 256)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert list(model.classes)[0] == "airplane"


@needs_classifier
def test_committed_card_describes_the_file():
    """Each entry of the card agrees with the weights or with the training history it records."""
    card = json.loads(C.CLASSIFIER_FILE.with_suffix(".json").read_text())
    model = C.load_classifier()
    assert card["sha256"] == sha256(C.CLASSIFIER_FILE)
    assert card["architecture"] == C._cfg_dict(model.cfg) and card["parameters"] == count_parameters(model)
    training = card["training"]
    assert [h["epoch"] for h in training["history"]] == list(range(1, training["epochs"] + 1))
    assert training["history"][-1]["seconds"] == training["train_seconds"]
    assert training["train_minutes"] == round(training["train_seconds"] / 60, 1)
    assert f"--epochs {training['epochs']}" in training["command"]
    assert card["data"]["source"] == "cifar10-jpg mirror"
    assert card["test_accuracy_tta"] >= 0.88  # the course's target on the mirror's test split
    assert C.CLASSIFIER_FILE.stat().st_size < 5e6  # fp16, a few MB


@needs_classifier
def test_accuracy_on_the_committed_sample():
    images, labels = load_cifar10(train=False, source="sample")
    assert C.accuracy(C.load_classifier(), images, labels) > 0.80


@needs_classifier
def test_corrupted_copy_fails_the_hash_check(tmp_path):
    copy = tmp_path / "classifier.pt"
    shutil.copy(C.CLASSIFIER_FILE, copy)
    shutil.copy(C.CLASSIFIER_FILE.with_suffix(".json"), tmp_path / "classifier.json")
    C.load_classifier(path=copy)  # the intact copy loads
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0xFF
    copy.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match its card.*git checkout"):
        C.load_classifier(path=copy)


def test_missing_file_says_how_to_get_it(tmp_path):
    with pytest.raises(PretrainedMissing, match="git checkout -- data/pretrained.*classifier train"):
        C.load_classifier(path=tmp_path / "classifier.pt")


def test_forward_rejects_uint8_with_a_fix():
    model = C.Classifier(C.ClassifierConfig(widths=(8, 8, 8)))
    with pytest.raises(ValueError, match="to_unit_range"):
        model(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))


def test_augment_flips_and_shifts_whole_tensors():
    images = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    g = torch.Generator().manual_seed(0)
    flipped = C.augment(images, translate=0, generator=g)
    is_same = (flipped == images).flatten(1).all(1)
    is_mirror = (flipped == images.flip(3)).flatten(1).all(1)
    assert (is_same | is_mirror).all() and is_mirror.any() and is_same.any()
    shifted = C.augment(images, translate=2, generator=g)
    assert shifted.shape == images.shape and shifted.dtype == torch.uint8
    # the centre 28x28 of a shifted image is a window of the (possibly mirrored) original
    x, s = images[0], shifted[0]
    windows = [img[:, 2 + dy:30 + dy, 2 + dx:30 + dx] for img in (x, x.flip(2))
               for dy in range(-2, 3) for dx in range(-2, 3)]
    assert any(torch.equal(s[:, 2:30, 2:30], w) for w in windows)


def test_whitening_stem_decorrelates_patches():
    images, _ = load_cifar10(train=True, source="sample")
    model = C.Classifier(C.ClassifierConfig(widths=(8, 8, 8)))
    x = to_unit_range(images[:200])
    model.init_whitening(x)
    out = model.stem(x)[:, :12]  # the 12 whitened channels (the other 12 are their negatives)
    cov = torch.cov(out.permute(1, 0, 2, 3).reshape(12, -1)).detach()
    off_diagonal = cov - torch.diag(cov.diag())
    assert off_diagonal.abs().max() < 0.05  # decorrelated
    # unit variance, except the faintest directions, which eps deliberately damps
    assert torch.allclose(cov.diag()[:6], torch.ones(6), atol=0.05) and (cov.diag() <= 1.05).all()


def _tiny_run(tmp_path, log=print):
    images, labels = load_cifar10(train=True, source="sample")
    cfg = C.TrainClassifierConfig(epochs=2, batch_size=100, warmup_epochs=0.5)
    return C.train_classifier((images[:200], labels[:200]), cfg, C.ClassifierConfig(widths=(8, 16, 16)),
                              checkpoint=tmp_path / "ckpt.pt", log=log)


@pytest.fixture
def one_thread():
    """Bit-exact comparison across runs needs one thread; restore the count for later tests."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_training_resumes_exactly_after_an_interruption(tmp_path, one_thread):

    def crash_after_first_epoch(line):
        if line.startswith("epoch 1 "):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _tiny_run(tmp_path / "a", crash_after_first_epoch)
    resumed, summary = _tiny_run(tmp_path / "a")
    straight, _ = _tiny_run(tmp_path / "b")
    assert [h["epoch"] for h in summary["history"]] == [1, 2]
    for (name, p), q in zip(resumed.state_dict().items(), straight.state_dict().values()):
        assert torch.allclose(p.float(), q.float(), atol=1e-6), name


def test_export_round_trip_in_fp16(tmp_path):
    model = C.Classifier(C.ClassifierConfig(widths=(8, 16, 16))).eval()
    out = C.export_classifier(model, tmp_path / "clf.pt", {"note": "test"})
    card = json.loads((tmp_path / "clf.json").read_text())
    assert card["sha256"] == sha256(out) and card["architecture"]["widths"] == [8, 16, 16]
    loaded = C.load_classifier(path=out)
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    assert torch.allclose(loaded(x), model(x), atol=2e-2)  # fp16 weights


@pytest.mark.slow
def test_training_command_records_this_machine(tmp_path, one_thread):
    """The card of a fresh run names this machine's core count and CPU, and the threads used."""
    C.main(["train", "--source", "sample", "--epochs", "1", "--widths", "8,8,8", "--threads", "1",
            "--checkpoint", str(tmp_path / "ckpt.pt")])
    training = json.loads((tmp_path / "classifier.json").read_text())["training"]
    assert training["hardware"].endswith(f", {os.cpu_count()} cores") and training["threads"] == 1
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file() and "model name" in cpuinfo.read_text():
        model_name = next(ln for ln in cpuinfo.read_text().splitlines() if ln.startswith("model name"))
        assert training["hardware"].startswith(model_name.split(":", 1)[1].strip())


def test_importing_the_classifier_does_not_import_the_training_loop():
    code = "import sys, cgan_course.classifier; print(' '.join(m for m in sys.modules if m.startswith('cgan_course')))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": str(Path(C.__file__).parent.parent)}).stdout.split()
    assert "cgan_course.classifier" in loaded
    assert "cgan_course.train" not in loaded, loaded


# ----------------------------------------------------------------------------------------------
# Calibration (temperature scaling)


def _sampled(temperature: float, n: int = 20_000, seed: int = 0):
    """Logits and labels drawn from softmax(logits / temperature): calibrated at exactly that T."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, 10, generator=g) * 2
    labels = torch.multinomial(torch.softmax(logits / temperature, 1), 1, generator=g).squeeze(1)
    return logits, labels


def test_fit_temperature_recovers_the_true_temperature():
    for true_t in (0.5, 1.0, 2.0):
        logits, labels = _sampled(true_t)
        assert C.fit_temperature(logits, labels) == pytest.approx(true_t, rel=0.05)
    with pytest.raises(ValueError, match="at least 100"):
        C.fit_temperature(logits[:10], labels[:10])


def test_calibration_error_tells_calibrated_from_underconfident():
    logits, labels = _sampled(0.5)
    assert C.calibration_error(logits, labels, temperature=0.5) < 0.02  # sampled from this very softmax
    # at T = 1 the softmax is flatter than the truth: confidence below accuracy
    assert C.calibration_error(logits, labels) > 0.1
    confident = torch.tensor([[10.0, 0.0], [10.0, 0.0]])
    assert C.calibration_error(confident, torch.tensor([1, 1])) == pytest.approx(1.0, abs=1e-3)  # sure and wrong


@needs_classifier
def test_committed_classifier_is_calibrated_on_held_out_images():
    """Label smoothing leaves the classifier underconfident (T < 1); the card's temperature, fitted on
    half of the test split, lowers the calibration error on the other half, and the loader uses it."""
    cal = json.loads(C.CLASSIFIER_FILE.with_suffix(".json").read_text())["calibration"]
    assert 0.3 < cal["temperature"] < 1 and cal["ece"]["calibrated"] < cal["ece"]["T=1"] / 3
    assert cal["nll"]["calibrated"] < cal["nll"]["T=1"]
    model = C.load_classifier()
    assert model.temperature == cal["temperature"]
    # measured again, not read: the committed sample keeps the mirror's file order (100 per class), so
    # its odd indices are test images the temperature was not fitted on
    images, labels = load_cifar10(train=False, source="sample")
    logits = C.predict_logits(model, images[1::2], tta=False)
    assert C.calibration_error(logits, labels[1::2], model.temperature) < C.calibration_error(logits, labels[1::2]) / 3
    logits = torch.tensor([[2.0, 0.0] + [0.0] * 8])
    assert C.probabilities(model, logits)[0, 0] > torch.softmax(logits, 1)[0, 0]  # sharper than the raw softmax


@needs_classifier
@pytest.mark.parametrize("calibration", [{"temperature": -1}, {"temperature": 0}, {"temperature": True},
                                         {"temperature": "hot"}, {"temperature": None}, {"temperature": 1e9},
                                         {}, [0.5], 0.5])
def test_a_card_with_a_bad_temperature_is_refused(tmp_path, calibration):
    """A temperature that is not a sane positive number, a block without one, or a block that is not an
    object: refused with the command that refits it (which itself ignores the bad value)."""
    copy = tmp_path / "classifier.pt"
    shutil.copy(C.CLASSIFIER_FILE, copy)
    card = {**json.loads(C.CLASSIFIER_FILE.with_suffix(".json").read_text()), "calibration": calibration}
    (tmp_path / "classifier.json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match=r"invalid calibration .*classifier calibrate --weights .*git checkout"):
        C.load_classifier(path=copy)
    assert C.load_classifier(path=copy, calibrated=False).temperature == 1.0


@needs_classifier
def test_a_card_that_was_never_calibrated_gives_the_raw_softmax(tmp_path):
    copy = tmp_path / "classifier.pt"
    shutil.copy(C.CLASSIFIER_FILE, copy)
    card = json.loads(C.CLASSIFIER_FILE.with_suffix(".json").read_text())
    del card["calibration"]
    (tmp_path / "classifier.json").write_text(json.dumps(card))
    assert C.load_classifier(path=copy).temperature == 1.0


def test_calibrate_writes_the_card_of_a_copy_and_never_the_committed_one_unasked(tmp_path, capsys):
    model = C.Classifier(C.ClassifierConfig(widths=(8, 8, 8))).eval()
    out = C.export_classifier(model, tmp_path / "clf.pt")
    with pytest.raises(SystemExit):
        C.main(["calibrate", "--source", "sample"])  # the committed card needs --replace-committed
    assert "--replace-committed" in capsys.readouterr().err
    C.main(["calibrate", "--source", "sample", "--weights", str(out)])
    cal = json.loads((tmp_path / "clf.json").read_text())["calibration"]
    assert C.load_classifier(path=out).temperature == cal["temperature"] > 0
    assert json.loads((tmp_path / "clf.json").read_text())["sha256"] == sha256(out)  # the weights are untouched
