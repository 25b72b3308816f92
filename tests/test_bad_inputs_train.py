"""Issue 15's contract for the training command line: every mistake below gets one line naming the
problem and the fix (exit status 2), and no earlier run is lost or silently changed.

The CLI runs in-process (``main(argv)``) on the committed sample with tiny models.
"""
import hashlib
import re
from pathlib import Path

import pytest

import cgan_course.train as train_mod
from cgan_course.checkpoints import load_checkpoint
from cgan_course.losses import d_loss_hinge, g_loss_hinge
from cgan_course.train import main

TINY = ["--data-source", "sample", "--g-width", "8", "--d-width", "8", "--z-dim", "16", "--batch-size", "8",
        "--threads", "1", "--no-progress", "--log-every", "1", "--sample-every", "1000"]


def run(out: Path, *extra: str) -> None:
    main([*TINY, "--out", str(out), *extra])


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def logged_steps(out: Path) -> list[int]:
    return [int(line.split(",")[0]) for line in (out / "log.csv").read_text().splitlines()[1:]]


# item 2: a second run into the same --out


def test_a_second_run_into_the_same_out_is_refused(tmp_path, cli_error):
    out = tmp_path / "run"
    run(out, "--steps", "2")
    before = {f: digest(out / f) for f in ("checkpoint.pt", "log.csv")}
    cli_error(main, [*TINY, "--out", str(out), "--steps", "3"],
              rf"{re.escape(str(out))} already holds a training run; continue it with --resume, start it over "
              r"with --overwrite")
    assert {f: digest(out / f) for f in before} == before


def test_overwrite_starts_over_cleanly(tmp_path):
    out = tmp_path / "run"
    run(out, "--steps", "3", "--sample-every", "3")
    run(out, "--steps", "2", "--overwrite")
    assert logged_steps(out) == [1, 2]  # replaced, not appended to
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 2
    assert not (out / "samples" / "step_000003.png").exists()  # the old run's grids went with it


def test_resume_and_overwrite_together_are_refused(tmp_path, cli_error):
    cli_error(main, [*TINY, "--out", str(tmp_path), "--resume", "--overwrite"],
              r"pass --resume \(continue the run in --out\) or --overwrite \(start it over\), not both")


# item 7: --resume with other hyperparameters


def test_resume_with_changed_hyperparameters_is_refused_naming_them(tmp_path, cli_error):
    out = tmp_path / "run"
    run(out, "--steps", "2")
    before = digest(out / "checkpoint.pt")
    cli_error(main, [*TINY, "--out", str(out), "--steps", "4", "--resume", "--lr-g", "0.001", "--seed", "1"],
              r"was trained with other settings: --lr-g 0\.001 \(checkpoint: 0\.0002\), --seed 1 \(checkpoint: 0\)\. "
              r"A resumed run keeps its checkpoint's settings")
    assert digest(out / "checkpoint.pt") == before


def test_resume_may_change_length_logging_and_hardware_and_records_what_was_used(tmp_path):
    out = tmp_path / "run"
    run(out, "--steps", "2")
    run(out, "--steps", "4", "--resume", "--log-every", "2", "--ckpt-every", "100", "--device", "cpu",
        "--precision", "fp32", "--tf32", "--max-minutes", "60")
    saved = load_checkpoint(out / "checkpoint.pt")
    assert saved["step"] == 4 and saved["config"]["steps"] == 4 and saved["config"]["log_every"] == 2
    assert saved["config"]["lr_g"] == 2e-4 and saved["config"]["seed"] == 0  # the run's own maths


# item 11: tracebacks from the train CLI


@pytest.mark.parametrize("argv,match", [
    (["--device", "banana"], r"device 'banana' is not a device name; use auto, cpu, cuda, cuda:N or mps"),
    (["--threads", "-3"], r"threads must be >= 0 \(0 = all cores\), got -3"),
    (["--log-every", "-1"], r"log_every must be >= 0 \(0 = off\), got -1"),
    (["--ac-weight", "1"], r"ac_weight > 0 and model.class_head=True go together .* got ac_weight 1.0, class_head False"),
    (["--class-head"], r"ac_weight > 0 and model.class_head=True go together .* got ac_weight 0.0, class_head True"),
    (["--class-head", "--ac-weight", "-1"], r"got ac_weight -1.0, class_head True"),
])
def test_bad_option_values_are_one_line(tmp_path, cli_error, argv, match):
    cli_error(main, [*TINY, "--out", str(tmp_path / "run"), *argv], match)


def test_out_that_is_a_file_is_one_line(tmp_path, cli_error):
    path = tmp_path / "notes.txt"
    path.write_text("mine")
    cli_error(main, [*TINY, "--out", str(path)], r"--out .*notes\.txt is a file, not a folder")
    assert path.read_text() == "mine"


@pytest.mark.parametrize("resume", [[], ["--resume"]])
def test_checkpoint_that_is_a_folder_is_one_line(tmp_path, cli_error, resume):
    (tmp_path / "checkpoint.pt").mkdir()
    cli_error(main, [*TINY, "--out", str(tmp_path), *resume], r"checkpoint\.pt is not a file \(a folder\?\)")


# item 17: what the help promises, and the log after a crash


def test_help_says_which_data_the_cli_trains_on(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "your own class folders: --data-source folders --data-root PATH --num-classes N" in text


def test_log_rows_after_the_last_checkpoint_are_not_duplicated_on_resume(tmp_path, monkeypatch):
    """A crash after step 3 with the last checkpoint at step 2: the resumed run logs 3 again, once."""
    calls = []

    def crash_in_step_4(d_real, d_fake):
        calls.append(1)
        if len(calls) == 4:
            raise RuntimeError("simulated crash")
        return d_loss_hinge(d_real, d_fake)

    out = tmp_path / "run"
    with monkeypatch.context() as m:
        m.setitem(train_mod.LOSSES, "hinge", (crash_in_step_4, g_loss_hinge))
        with pytest.raises(RuntimeError, match="simulated crash"):
            run(out, "--steps", "10", "--ckpt-every", "2")
    assert logged_steps(out) == [1, 2, 3] and load_checkpoint(out / "checkpoint.pt")["step"] == 2
    run(out, "--steps", "5", "--ckpt-every", "2", "--resume")
    assert logged_steps(out) == [1, 2, 3, 4, 5]


# item 6 (second half): the CLI says which data it trains on


def test_the_cli_prints_the_data_source_it_chose(tmp_path, capsys):
    run(tmp_path / "run", "--steps", "1")
    assert "data: committed 1,000-image sample, 1,000 images" in capsys.readouterr().out
