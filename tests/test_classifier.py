"""The course classifier: committed weights, hash check, accuracy floor, training/resume plumbing."""
import json
import shutil

import pytest
import torch

from cgan_course import classifier as C
from cgan_course.data import load_cifar10, to_unit_range
from cgan_course.pretrained import PretrainedMissing
from cgan_course.checkpoints import CheckpointError

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
    card = json.loads(C.CLASSIFIER_FILE.with_suffix(".json").read_text())
    assert card["sha256"] == C.sha256(C.CLASSIFIER_FILE)
    assert card["training"]["hardware"] == "2-core CPU" and card["training"]["torch"]
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
    assert card["sha256"] == C.sha256(out) and card["architecture"]["widths"] == [8, 16, 16]
    loaded = C.load_classifier(path=out)
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    assert torch.allclose(loaded(x), model(x), atol=2e-2)  # fp16 weights
