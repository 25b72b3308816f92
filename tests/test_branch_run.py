"""benchmarks/branch_run.py: an A/B arm continues its parent exactly, except for the class head's weight."""
import dataclasses
import sys
from pathlib import Path

import pytest
import torch

from cgan_course.checkpoints import load_checkpoint
from cgan_course.data import load_cifar10
from cgan_course.errors import CourseError
from cgan_course.files import sha256
from cgan_course.models import ModelConfig
from cgan_course.train import TrainConfig, train

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import branch_run  # noqa: E402

HEADED = ModelConfig(g_width=8, d_width=8, z_dim=16, class_head=True)


def cfg(out: Path, **kw) -> TrainConfig:
    base = dict(model=HEADED, ac_weight=1.0, batch_size=8, steps=3, out=str(out), log_every=1, sample_every=1000,
                ckpt_every=1000, progress=False, threads=1)
    return TrainConfig(**{**base, **kw})


def test_a_branch_continues_its_parent_exactly_but_for_the_weight(tmp_path, cli_error):
    sample = load_cifar10(source="sample")
    parent = tmp_path / "parent"
    train(cfg(parent), sample)
    before = sha256(parent / "checkpoint.pt")
    branch_run.branch(parent / "checkpoint.pt", tmp_path / "same", 1.0)  # the same weight: the same run
    branch_run.branch(parent / "checkpoint.pt", tmp_path / "heavy", 3.0)
    assert sha256(parent / "checkpoint.pt") == before  # the parent is never touched
    cont = train(cfg(parent, steps=6, resume=True), sample)
    same = train(cfg(tmp_path / "same", steps=6, resume=True), sample)
    heavy = train(cfg(tmp_path / "heavy", steps=6, resume=True, ac_weight=3.0), sample)
    assert all(torch.equal(a, b) for a, b in zip(cont.G.state_dict().values(), same.G.state_dict().values()))
    assert not all(torch.equal(a, b) for a, b in zip(cont.G.state_dict().values(), heavy.G.state_dict().values()))
    assert load_checkpoint(tmp_path / "heavy" / "checkpoint.pt")["config"]["ac_weight"] == 3.0
    with pytest.raises(CourseError, match="was trained with other settings: --ac-weight 1.0"):
        train(cfg(tmp_path / "heavy", steps=7, resume=True), sample)  # the branch keeps its own weight

    main = branch_run.main
    cli_error(main, [str(parent / "checkpoint.pt"), "--out", str(tmp_path / "heavy"), "--ac-weight", "3"],
              r"heavy already exists; a branch starts in a new run folder")
    cli_error(main, [str(parent / "checkpoint.pt"), "--out", str(tmp_path / "z"), "--ac-weight", "0"],
              r"--ac-weight must be a finite number in \(0, 100\]")
    cli_error(main, [str(tmp_path / "nope.pt"), "--out", str(tmp_path / "n"), "--ac-weight", "3"], r"no checkpoint at")
    plain = tmp_path / "plain"
    train(cfg(plain, model=dataclasses.replace(HEADED, class_head=False), ac_weight=0.0, steps=1), sample)
    cli_error(main, [str(plain / "checkpoint.pt"), "--out", str(tmp_path / "p"), "--ac-weight", "3"],
              r"has no class head")
    assert not any((tmp_path / name).exists() for name in ("z", "n", "p"))
