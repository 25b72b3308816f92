"""Issue 15's contract for the training command line: every mistake below gets one line naming the
problem and the fix (exit status 2), and no earlier run is lost or silently changed.

The CLI runs in-process (``main(argv)``) on the committed sample with tiny models.
"""
import hashlib
import re
from pathlib import Path

import pytest

from cgan_course.checkpoints import load_checkpoint, save_checkpoint
from cgan_course.losses import LOSSES, d_loss_hinge, g_loss_hinge
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
    (["--threads", "-3"], r"threads must be an integer in \[0, 1024\], got -3"),
    (["--log-every", "-1"], r"log_every must be an integer in \[0, 1000000000\], got -1"),
    (["--ac-weight", "1"], r"ac_weight > 0 and model.class_head=True go together .* got ac_weight 1.0, class_head False"),
    (["--class-head"], r"ac_weight > 0 and model.class_head=True go together .* got ac_weight 0.0, class_head True"),
    (["--class-head", "--ac-weight", "-1"], r"ac_weight must be a finite number in \[0, 100\], got -1.0"),
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
        m.setitem(LOSSES, "hinge", (crash_in_step_4, g_loss_hinge))
        with pytest.raises(RuntimeError, match="simulated crash"):
            run(out, "--steps", "10", "--ckpt-every", "2")
    assert logged_steps(out) == [1, 2, 3] and load_checkpoint(out / "checkpoint.pt")["step"] == 2
    run(out, "--steps", "5", "--ckpt-every", "2", "--resume")
    assert logged_steps(out) == [1, 2, 3, 4, 5]


# item 6 (second half): the CLI says which data it trains on


def test_the_cli_prints_the_data_source_it_chose(tmp_path, capsys):
    run(tmp_path / "run", "--steps", "1")
    assert "data: committed 1,000-image sample, 1,000 images" in capsys.readouterr().out


# Issue 27: a run folder belongs to one run


def test_a_second_process_cannot_write_into_a_running_runs_folder(tmp_path, cli_error):
    import subprocess
    import sys

    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom cgan_course.runlock import run_folder_lock\n"
                               f"with run_folder_lock({str(out)!r}):\n    print('locked', flush=True)\n"
                               "    time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        for extra in ([], ["--resume"], ["--overwrite"]):
            cli_error(main, [*TINY, "--out", str(out), "--steps", "2", *extra],
                      rf"{re.escape(str(out))} is in use by another training run \(pid {holder.pid} on .*\); wait")
        assert not (out / "log.csv").exists() and not (out / "checkpoint.pt").exists()
    finally:
        holder.kill()
        holder.wait()
    run(out, "--steps", "2")  # the holder died: its lock went with it, and the note names it
    assert logged_steps(out) == [1, 2]


def test_a_lock_left_by_a_killed_run_is_taken_over_with_a_note(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / ".lock").write_text("pid 999999 on somewhere, started 2026-01-01 00:00:00")  # nobody holds it
    run(out, "--steps", "1")
    assert "held the lock of a run that ended without releasing it (pid 999999" in capsys.readouterr().out
    assert (out / ".lock").read_text() == ""  # released cleanly this time
    run(out, "--steps", "2", "--resume")
    assert "without releasing" not in capsys.readouterr().out


def test_the_run_folder_may_not_sit_inside_the_data(tmp_path, cli_error):
    data = tmp_path / "data"
    (data / "train" / "cat").mkdir(parents=True)  # the check comes before any image is read
    cli_error(main, [*TINY, "--data-source", "folder", "--data-root", str(data), "--out", str(data / "runs" / "x")],
              r"--out .* is inside the data root .*; put the run folder outside the data")


@pytest.mark.parametrize("argv,pattern", [
    (["--out", ""], "out must be a non-empty string, got ''"),
    (["--data-root", ""], "data_root must be a non-empty string, got ''"),
    (["--lr-g", "inf"], r"lr_g must be a finite number in \(0, 1\], got inf"),
    (["--lr-d", "nan"], r"lr_d must be a finite number in \(0, 1\], got nan"),
    (["--beta2", "1"], r"beta2 must be a finite number in \[0, 1\), got 1.0"),
    (["--max-minutes", "inf"], r"max_minutes must be a finite number in \[0, 1000000.0\], got inf"),
    (["--steps", "10000000000"], r"steps must be an integer in \[1, 1000000000\], got 10000000000"),
    (["--batch-size", "100000"], r"batch_size must be an integer in \[1, 4096\], got 100000"),
    (["--seed", "-1"], r"seed must be an integer in \[0, 2147483647\], got -1"),
    (["--num-classes", "10000000"], r"num_classes must be an integer in \[0, 10000\], got 10000000"),
    (["--g-width", "1000000"], r"g_width must be an integer in \[1, 512\], got 1000000"),
    (["--data-source", "imagenet"], "data_source must be one of 'auto', 'torchvision', 'folder', 'sample', 'folders'"),
])
def test_every_option_is_checked_by_one_layer(tmp_path, cli_error, argv, pattern):
    cli_error(main, [*TINY, "--out", str(tmp_path / "run"), *argv], pattern)
    assert not (tmp_path / "run").exists()  # refused before any work


@pytest.mark.parametrize("kwargs,pattern", [
    ({"steps": True}, "steps must be an integer"), ({"steps": 2.0}, "steps must be an integer"),
    ({"lr_g": "0.1"}, "lr_g must be a finite number"), ({"hflip": 1}, "hflip must be True or False"),
    ({"test_fraction": "0.1"}, "test_fraction must be a finite number"), ({"model": [1, 2]}, "model must be a ModelConfig"),
    ({"model": {"image_size": 64.0}}, "image_size must be one of 32, 64, 128, got 64.0"),
    ({"model": {"z_dim": True}}, "z_dim must be an integer"),
])
def test_the_api_gets_the_same_checks(kwargs, pattern):
    from cgan_course.errors import CourseError
    from cgan_course.train import TrainConfig

    with pytest.raises(CourseError, match=pattern):
        TrainConfig(**kwargs)


# Issue 27: an edited checkpoint is one clear error, and a resume never changes the data silently


@pytest.mark.parametrize("field,value,pattern", [
    ("step", -5, r"'step' must be in \[0, 1000000000\], got -5"),
    ("step", "5", "'step' must be an integer, got '5'"),
    ("format", "1", "'format' must be an integer, got '1'"),
    ("config", "lr=1", "'config' must be a dict, got 'lr=1'"),
    ("history", "rows", "'history' must be a list, got 'rows'"),
    ("rng", [], "'rng' must be a non-empty list of RNG states, got \\[\\]"),
    ("opt_d", {"state": {}}, r"'opt_d' must be an optimiser state \(state, param_groups\)"),
    ("batches", {"order": "x"}, "holds training state this run cannot load"),
    ("opt_g", {"state": {}, "param_groups": []}, "holds training state this run cannot load"),
])
def test_an_edited_checkpoint_is_refused_in_one_line(tmp_path, cli_error, field, value, pattern):
    out = tmp_path / "run"
    run(out, "--steps", "2")
    state = load_checkpoint(out / "checkpoint.pt")
    state[field] = value
    save_checkpoint(out / "checkpoint.pt", state)
    cli_error(main, [*TINY, "--out", str(out), "--steps", "3", "--resume"], pattern)


def test_a_model_config_that_is_a_list_is_refused(tmp_path, cli_error):
    out = tmp_path / "run"
    run(out, "--steps", "1")
    state = load_checkpoint(out / "checkpoint.pt")
    state["config"]["model"] = [1, 2]
    save_checkpoint(out / "checkpoint.pt", state)
    cli_error(main, [*TINY, "--out", str(out), "--steps", "2", "--resume"],
              "'config' must be a dict with the model's config under 'model'")


def test_resume_on_other_images_with_the_same_classes_is_refused(tmp_path, capsys):
    import shutil

    from cgan_course.data import SAMPLE_ROOT

    data, out = tmp_path / "data", tmp_path / "run"
    shutil.copytree(SAMPLE_ROOT, data)
    folder = ["--data-source", "folder", "--data-root", str(data)]
    run(out, *folder, "--steps", "1")
    assert len(load_checkpoint(out / "checkpoint.pt")["data_fingerprint"]) == 16
    cat = sorted((data / "train" / "cat").iterdir())
    dog = sorted((data / "train" / "dog").iterdir())
    shutil.copy(dog[0], cat[0])  # one dog now sits among the cats: same class names, other data
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main([*TINY, *folder, "--out", str(out), "--steps", "2", "--resume"])
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after the decoding progress bar
    assert exit_.value.code == 2 and re.search(
        r"error: .* was trained on other images than the data now loaded \(its data fingerprint \w+ vs \w+\)", last), last
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 1


def test_a_deleted_log_is_rebuilt_and_a_foreign_one_refused(tmp_path, cli_error, capsys):
    out = tmp_path / "run"
    run(out, "--steps", "2")
    (out / "log.csv").unlink()
    run(out, "--steps", "3", "--resume")
    assert "log.csv was missing; rebuilt from the checkpoint's 2 logged rows" in capsys.readouterr().out
    assert logged_steps(out) == [1, 2, 3]
    (out / "log.csv").write_text("epoch,accuracy\n1,0.5\n")
    cli_error(main, [*TINY, "--out", str(out), "--steps", "4", "--resume"], r"log.csv is not this run's training log")
    (out / "log.csv").unlink()
    (out / "log.csv").mkdir()
    cli_error(main, [*TINY, "--out", str(out), "--steps", "4", "--resume"], r"log.csv is not a file; move it away")


def test_divergence_before_any_checkpoint_says_none_is_kept(tmp_path, cli_error, monkeypatch):
    """It used to say "the last good checkpoint is kept" when none existed."""
    monkeypatch.setitem(LOSSES, "hinge", (lambda r, f: d_loss_hinge(r, f) * float("nan"), g_loss_hinge))
    out = tmp_path / "run"
    cli_error(main, [*TINY, "--out", str(out), "--steps", "3", "--ckpt-every", "0"],
              r"loss became NaN/inf between steps 0 and 1 .*No checkpoint was written yet \(lower --ckpt-every")
    assert not (out / "checkpoint.pt").exists()


def test_a_run_without_a_log_resumes_without_inventing_one(tmp_path, capsys):
    out = tmp_path / "run"
    run(out, "--steps", "2", "--log-every", "0")
    run(out, "--steps", "3", "--log-every", "0", "--resume")
    assert not (out / "log.csv").exists() and "rebuilt" not in capsys.readouterr().out


def test_resume_continues_with_the_runs_own_settings(tmp_path, cli_error):
    """A run started with --recipe (or any options) resumes with --resume alone; an option given
    explicitly that changes the run is still refused."""
    out = tmp_path / "run"
    run(out, "--recipe", "pretrained", "--g-width", "8", "--d-width", "8", "--steps", "1")
    run(out, "--steps", "2", "--resume")  # no --recipe, no widths: the checkpoint's settings
    assert load_checkpoint(out / "checkpoint.pt")["config"]["ac_weight"] == 1.0
    assert logged_steps(out) == [1, 2]
    cli_error(main, [*TINY, "--out", str(out), "--steps", "3", "--resume", "--beta2", "0.5"],
              r"was trained with other settings: --beta2 0.5 \(checkpoint: 0.9\)")
