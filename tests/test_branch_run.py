"""benchmarks/branch_run.py: an A/B arm continues its parent exactly, except for the one factor it changes."""
import dataclasses
import sys
from pathlib import Path

import pytest
import torch

from cgan_course.checkpoints import load_checkpoint
from cgan_course.data import load_cifar10
from cgan_course.errors import CourseError
from cgan_course.files import sha256
from cgan_course.models import ModelConfig, build_generator
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
    branch_run.branch(parent / "checkpoint.pt", tmp_path / "same", ac_weight=1.0)  # the same weight: the same run
    branch_run.branch(parent / "checkpoint.pt", tmp_path / "heavy", ac_weight=3.0)
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
    cli_error(main, [str(parent / "checkpoint.pt"), "--out", str(tmp_path / "z"), "--ac-weight", "3", "--class-input"],
              r"change exactly one factor")
    cli_error(main, [str(parent / "checkpoint.pt"), "--out", str(tmp_path / "z")], r"change exactly one factor")
    cli_error(main, [str(tmp_path / "nope.pt"), "--out", str(tmp_path / "n"), "--ac-weight", "3"], r"no checkpoint at")
    plain = tmp_path / "plain"
    train(cfg(plain, model=dataclasses.replace(HEADED, class_head=False), ac_weight=0.0, steps=1), sample)
    cli_error(main, [str(plain / "checkpoint.pt"), "--out", str(tmp_path / "p"), "--ac-weight", "3"],
              r"has no class head")
    assert not any((tmp_path / name).exists() for name in ("z", "n", "p"))


def test_a_class_input_branch_starts_as_its_parent_and_then_learns_the_input(tmp_path):
    sample = load_cifar10(source="sample")
    parent = tmp_path / "parent"
    train(cfg(parent), sample)
    branch_run.branch(parent / "checkpoint.pt", tmp_path / "input", class_input=True)
    saved = load_checkpoint(tmp_path / "input" / "checkpoint.pt")
    with_input = dataclasses.replace(HEADED, class_input=True)
    assert saved["config"]["model"] == dataclasses.asdict(with_input)
    G0 = build_generator(HEADED).eval()
    G0.load_state_dict(load_checkpoint(parent / "checkpoint.pt")["G_ema"])
    G1 = build_generator(with_input).eval()
    G1.load_state_dict(saved["G_ema"])  # strict: every new weight is there
    z, y = torch.randn(8, HEADED.z_dim), torch.arange(8) % 10
    with torch.no_grad():
        assert torch.allclose(G0(z, y), G1(z, y), atol=1e-6)  # the same function at the branch point
    # Adam: the grown weight keeps the parent's step count, so its new columns start with their row's
    # typical second moment of the old columns, not zero (a ~30x first step)
    before, after = (load_checkpoint(parent / "checkpoint.pt")["opt_g"]["state"][0], saved["opt_g"]["state"][0])
    assert torch.equal(after["exp_avg_sq"][:, :HEADED.z_dim], before["exp_avg_sq"])
    assert torch.allclose(after["exp_avg_sq"][:, HEADED.z_dim:], before["exp_avg_sq"].mean(1, keepdim=True).expand(-1, 50))
    assert not after["exp_avg"][:, HEADED.z_dim:].any() and torch.equal(after["step"], before["step"])
    res = train(cfg(tmp_path / "input", model=with_input, steps=6, resume=True), sample)
    new_columns = res.G.linear.weight[:, HEADED.z_dim:]
    assert new_columns.abs().sum() > 0 and not torch.equal(res.G.class_input.weight, saved["G"]["class_input.weight"])
    with pytest.raises(CourseError, match="trained with a different model .*class_input"):
        train(cfg(tmp_path / "input", steps=7, resume=True), sample)  # the branch keeps its own model
    with pytest.raises(CourseError, match="--class-input needs a conditional projection G that does not have it"):
        branch_run.branch(tmp_path / "input" / "checkpoint.pt", tmp_path / "again", class_input=True)
