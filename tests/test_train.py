"""The training engine: the step, its state, EMA, exact resume (also of the previous code's
checkpoints), NaN stop, checkpoint safety, Ctrl-C, DDP, CLI."""
import copy
import dataclasses
import io
import os
import signal
import subprocess
import sys
import tarfile
import textwrap
import time
from pathlib import Path

import pytest
import torch

import cgan_course.train as train_mod
import cgan_course.training.resume as resume_mod
import cgan_course.training.state as state_mod
from cgan_course.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from cgan_course.data import DeviceBatches, load_cifar10
from cgan_course.errors import CourseError
from cgan_course.losses import LOSSES, d_loss_hinge, g_loss_hinge
from cgan_course.models import ModelConfig
from cgan_course.train import (
    EMA,
    GANLoss,
    Placement,
    TrainConfig,
    TrainingDiverged,
    TrainState,
    config_from_args,
    gan_step,
    load_generator_from_checkpoint,
    train,
)
from cgan_course.runtime import uses_channels_last

REPO = Path(__file__).resolve().parent.parent
TINY = ModelConfig(g_width=8, d_width=8, z_dim=16)


@pytest.fixture(scope="module")
def sample():
    return load_cifar10(source="sample")


def tiny_cfg(tmp_path, **kw) -> TrainConfig:
    base = dict(model=TINY, batch_size=8, steps=6, out=str(tmp_path / "run"), log_every=1,
                sample_every=1000, ckpt_every=1000, progress=False, threads=1)
    base.update(kw)
    return TrainConfig(**base)


def states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_ema_matches_formula():
    model = torch.nn.Linear(2, 1)
    ema = EMA(model, decay=0.9, start=0)
    before = ema.model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model, step=100)  # past warm-up: decay is 0.9
    assert torch.allclose(ema.model.weight, 0.9 * before + 0.1 * model.weight)
    before = ema.model.weight.detach().clone()
    ema.update(model, step=0)  # warm-up: decay min(0.9, 1/10) = 0.1
    assert torch.allclose(ema.model.weight, 0.1 * before + 0.9 * model.weight)
    assert not ema.model.weight.requires_grad
    bn = torch.nn.BatchNorm1d(3)
    ema_bn = EMA(bn, decay=0.99)
    bn(torch.randn(8, 3))  # updates the running statistics
    ema_bn.update(bn, step=100)
    assert torch.equal(ema_bn.model.running_mean, bn.running_mean)  # buffers are copied, not averaged


def test_ema_sampling_uses_its_own_batchnorm_statistics():
    """The EMA generator's averaged weights need BN statistics of their own: after calibrated(),
    eval-mode samples match what the same weights give with batch statistics, while the buffers
    copied from the raw G (collected for other weights) give visibly different images."""
    from cgan_course.models import build_generator

    torch.manual_seed(0)
    G = build_generator(TINY)
    ema = EMA(G, decay=0.5)
    with torch.no_grad():  # G moves far from the average, as it does early in training
        for p in G.parameters():
            p.add_(torch.randn_like(p))
        G.train()(torch.randn(256, TINY.z_dim), torch.randint(0, 10, (256,)))  # G's own statistics
    ema.update(G, step=100)
    z, y = torch.randn(512, TINY.z_dim), torch.randint(0, 10, (512,))
    with torch.no_grad():
        stale = ema.model.eval()(z, y)
        batch_stats = ema.model.train()(z, y)  # the reference: BN with this batch's statistics
        calibrated = ema.calibrated()(z, y)
    assert not ema.model.training
    err_stale, err_calibrated = (stale - batch_stats).abs().mean(), (calibrated - batch_stats).abs().mean()
    assert err_calibrated < 0.05 and err_stale > 4 * err_calibrated, (err_stale, err_calibrated)


@pytest.mark.parametrize("arch", ["classic", "projection"])
def test_resume_is_exact(tmp_path, sample, arch):
    """N+M steps in one go == N steps, stop, resume for M: same weights, optimiser, EMA."""
    model = dataclasses.replace(TINY, arch=arch)
    full = train(tiny_cfg(tmp_path / "a", model=model, steps=6, diffaug="color,translation,cutout"), sample)
    train(tiny_cfg(tmp_path / "b", model=model, steps=3, diffaug="color,translation,cutout"), sample)
    resumed = train(tiny_cfg(tmp_path / "b", model=model, steps=6, resume=True, diffaug="color,translation,cutout"), sample)
    assert resumed.step == full.step == 6
    assert states_equal(full.G.state_dict(), resumed.G.state_dict())
    assert states_equal(full.D.state_dict(), resumed.D.state_dict())
    assert states_equal(full.G_ema.state_dict(), resumed.G_ema.state_dict())
    a = load_checkpoint(tmp_path / "a" / "run" / "checkpoint.pt")
    b = load_checkpoint(tmp_path / "b" / "run" / "checkpoint.pt")
    assert [r["loss_d"] for r in a["history"]] == [r["loss_d"] for r in b["history"]]
    assert states_equal(a["opt_g"]["state"][0], b["opt_g"]["state"][0])


def test_training_learns_something(tmp_path, sample):
    """Smoke: losses finite, a sample grid and a log written, EMA differs from the raw G."""
    res = train(tiny_cfg(tmp_path, steps=20, sample_every=10, log_every=10), sample)
    assert len(res.history) == 2 and all(torch.isfinite(torch.tensor(r["loss_d"])) for r in res.history)
    assert (res.out / "samples" / "step_000020.png").is_file()
    assert (res.out / "log.csv").read_text().startswith("step,time_s,loss_d,loss_g,d_real,d_fake,images_per_s")
    assert not states_equal(res.G.state_dict(), res.G_ema.state_dict())


def test_nan_stops_and_keeps_last_good_checkpoint(tmp_path, sample, monkeypatch):
    calls = {"n": 0}

    def d_loss_nan_later(d_real, d_fake):
        calls["n"] += 1
        loss = d_loss_hinge(d_real, d_fake)
        return loss * float("nan") if calls["n"] > 5 else loss

    monkeypatch.setitem(LOSSES, "hinge", (d_loss_nan_later, g_loss_hinge))
    with pytest.raises(TrainingDiverged, match="NaN/inf.*last good checkpoint"):
        train(tiny_cfg(tmp_path, steps=20, ckpt_every=2, log_every=1000), sample)
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert state["step"] == 4  # step 6 diverged: its checkpoint was refused, step 4's is kept
    assert all(torch.isfinite(v).all() for v in state["G"].values() if v.is_floating_point())


def test_checkpoint_for_other_model_fails_clearly(tmp_path, sample):
    train(tiny_cfg(tmp_path, steps=2), sample)
    other = dataclasses.replace(TINY, g_width=16)
    with pytest.raises(CheckpointError, match=r"g_width: checkpoint 8 vs requested 16"):
        train(tiny_cfg(tmp_path, steps=4, resume=True, model=other), sample)
    G = load_generator_from_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert G(torch.randn(2, 16), torch.tensor([0, 9])).shape == (2, 3, 32, 32)


def test_wrong_kind_of_file_fails_clearly(tmp_path, sample):
    """A weights-only export (e.g. data/pretrained/generator.pt) where a training checkpoint belongs,
    or a checkpoint whose config this version does not know."""
    run = tmp_path / "run"
    save_checkpoint(run / "checkpoint.pt", {"model": dataclasses.asdict(TINY), "state_dict": {}})
    with pytest.raises(CheckpointError, match=r"is not a training checkpoint of this course \(it has no config"):
        train(tiny_cfg(tmp_path, steps=2, resume=True), sample)
    with pytest.raises(CheckpointError, match="is not a training checkpoint"):
        load_generator_from_checkpoint(run / "checkpoint.pt")
    train(tiny_cfg(tmp_path, out=str(tmp_path / "ok"), steps=1), sample)
    state = load_checkpoint(tmp_path / "ok" / "checkpoint.pt")
    state["config"]["model"]["attention"] = True  # a field from some other version
    save_checkpoint(tmp_path / "future.pt", state)
    with pytest.raises(CheckpointError, match="configuration this version of the course cannot build"):
        load_generator_from_checkpoint(tmp_path / "future.pt")


def test_checkpoint_loading_is_safe(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="not a readable course checkpoint"):
        load_checkpoint(tmp_path / "evil.pt")
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable course checkpoint"):
        load_checkpoint(tmp_path / "garbage.pt")
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "missing.pt")


def test_atomic_save_keeps_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "ck.pt"
    save_checkpoint(path, {"step": 1})

    def exploding_save(obj, f):
        Path(f).write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", exploding_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"step": 2})
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1


@pytest.mark.parametrize("kw,match", [
    ({"loss": "wasserstein"}, "loss must be one of 'auto', 'bce', 'hinge', got 'wasserstein'"),
    ({"precision": "fp8"}, "precision must be"),
    ({"steps": 0}, r"steps must be an integer in \[1, 1000000000\], got 0"),
    ({"ema_decay": 1.0}, r"ema_decay must be a finite number in \[0, 1\), got 1.0"),
    ({"diffaug": "rotate"}, "unknown DiffAugment op 'rotate'"),
])
def test_bad_config_is_rejected(kw, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kw)


def test_cli_errors_are_one_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "cgan_course.train", "--data-source", "folder",
                          "--data-root", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r")],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode != 0
    assert "error:" in out.stderr and "does not exist" in out.stderr and "Traceback" not in out.stderr


def test_ctrl_c_saves_and_resumes(tmp_path):
    """SIGINT finishes the step, writes the checkpoint, exits 130; --resume continues from there."""
    run = tmp_path / "run"
    args = [sys.executable, "-m", "cgan_course.train", "--data-source", "sample", "--g-width", "8",
            "--d-width", "8", "--batch-size", "8", "--steps", "100000", "--log-every", "1",
            "--threads", "1", "--no-progress", "--out", str(run)]
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 120
        while not (run / "log.csv").is_file() or len((run / "log.csv").read_text().splitlines()) < 4:
            assert time.time() < deadline and proc.poll() is None, "training did not start"
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, out
    assert "interrupted: checkpoint saved at step" in out
    step = load_checkpoint(run / "checkpoint.pt")["step"]
    assert step >= 3
    resumed = subprocess.run(args[:args.index("--steps") + 1] + [str(step + 2)] + args[args.index("--steps") + 2:]
                             + ["--resume"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed from {run / 'checkpoint.pt'} at step {step}" in resumed.stdout
    assert load_checkpoint(run / "checkpoint.pt")["step"] == step + 2


DDP_SCRIPT = textwrap.dedent("""
    import sys, torch, torch.distributed as dist
    from cgan_course.data import load_cifar10
    from cgan_course.models import ModelConfig
    from cgan_course.train import TrainConfig, train
    out = sys.argv[1]
    cfg = TrainConfig(model=ModelConfig(g_width=8, d_width=8, z_dim=16), batch_size=8, steps=4,
                      out=out, progress=False, threads=1, log_every=2, device="cpu")
    res = train(cfg, load_cifar10(source="sample"))
    rank = dist.get_rank()
    torch.save({"G": res.G.state_dict(), "D": res.D.state_dict(), "world": dist.get_world_size()},
               f"{out}/rank{rank}.pt")
    dist.destroy_process_group()
""")


def test_ddp_two_processes_gloo_hold_identical_weights(tmp_path):
    script = tmp_path / "ddp_train.py"
    script.write_text(DDP_SCRIPT)
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          str(script), str(tmp_path)],
                         cwd=REPO, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert r0["world"] == r1["world"] == 2
    assert states_equal(r0["G"], r1["G"]) and states_equal(r0["D"], r1["D"])
    start = train(TrainConfig(model=ModelConfig(g_width=8, d_width=8, z_dim=16), steps=1, batch_size=8,
                              out=str(tmp_path / "single"), progress=False, threads=1),
                  load_cifar10(source="sample"))
    assert not states_equal(start.G.state_dict(), r0["G"])  # training really moved the weights


def test_time_limited_run_ends_with_a_sample_grid(tmp_path, sample):
    """A run stopped by max_minutes (or Ctrl-C) before its first sample_every still draws a grid."""
    res = train(tiny_cfg(tmp_path, steps=1000, max_minutes=1e-9, sample_every=1000), sample)
    assert res.step == 1
    assert (res.out / "samples" / "step_000001.png").is_file()


def test_channels_last_auto_is_on_for_cuda_and_cpu_not_mps(tmp_path, sample):
    """'auto' = channels-last on CUDA (Tensor Cores) and the CPU (measured faster by
    benchmarks/train_throughput.py), not on MPS;
    'on'/'off' are obeyed everywhere, and train() really puts the weights in NHWC."""
    assert [uses_channels_last("auto", torch.device(d)) for d in ("cpu", "cuda", "mps")] == [True, True, False]
    assert uses_channels_last("on", torch.device("mps")) and not uses_channels_last("off", torch.device("cpu"))
    res = {cl: train(tiny_cfg(tmp_path / cl, steps=1, device="cpu", channels_last=cl), sample) for cl in ("auto", "off")}
    conv = {cl: next(p for p in r.D.parameters() if p.ndim == 4) for cl, r in res.items()}  # [8, 3, 3, 3]
    assert conv["auto"].is_contiguous(memory_format=torch.channels_last) and not conv["auto"].is_contiguous()
    assert conv["off"].is_contiguous()


@pytest.mark.parametrize("fake_labels,reuse", [("uniform", False), ("uniform", True), ("real", True)])
def test_fake_labels_and_reuse(tmp_path, sample, monkeypatch, fake_labels, reuse):
    """``fake_labels="real"``: the D step's fakes carry the real batch's labels (the same class
    mix on both sides of D). ``reuse_fakes``: the G step draws those same (z, y) again."""
    calls = []  # (grad enabled, z, y) per generator call
    original = state_mod.build_generator

    def recording_generator(cfg):
        G = original(cfg)
        G.register_forward_pre_hook(lambda m, args: calls.append((torch.is_grad_enabled(), *args)))
        return G

    reals = []
    original_next = DeviceBatches.__next__
    monkeypatch.setattr(state_mod, "build_generator", recording_generator)  # where TrainState.new builds G
    monkeypatch.setattr(DeviceBatches, "__next__", lambda self: reals.append(original_next(self)) or reals[-1])
    train(tiny_cfg(tmp_path, steps=3, fake_labels=fake_labels, reuse_fakes=reuse), sample)
    calls = calls[:6]  # the final sample grid calls G too
    d_calls, g_calls = calls[0::2], calls[1::2]
    assert [c[0] for c in d_calls] == [False] * 3 and [c[0] for c in g_calls] == [True] * 3
    for (_, z_d, y_d), (_, z_g, y_g), (_, y_real) in zip(d_calls, g_calls, reals):
        assert torch.equal(y_d, y_real) == (fake_labels == "real")
        assert torch.equal(z_d, z_g) == reuse and torch.equal(y_d, y_g) == reuse


# ----------------------------------------------------------------------------------------------
# gan_step, TrainState and what train() takes in


CPU = Placement(torch.device("cpu"))


def r1_penalty(D, x_real, y_real, x_fake, y_fake, gamma: float = 10.0) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): gamma/2 E||grad_x D(x)||^2 on real images, written as a new
    function and passed in, as a student would."""
    x = x_real.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x, y_real).sum(), x, create_graph=True)  # [B, 3, H, W]
    return gamma / 2 * grad.square().sum(dim=[1, 2, 3]).mean()


def test_gan_step_makes_d_steps_updates_of_d_then_one_of_g(tmp_path, sample):
    cfg = tiny_cfg(tmp_path, d_steps=3)
    seen = []
    batches = (seen.append(b) or b for b in DeviceBatches(*sample, cfg.batch_size))
    state = TrainState.new(cfg, batches, CPU)
    stats = gan_step(state, GANLoss.named("hinge"), cfg)
    assert len(seen) == 3 and state.step == 1
    assert int(state.opt_d.state_dict()["state"][0]["step"]) == 3
    assert int(state.opt_g.state_dict()["state"][0]["step"]) == 1
    assert stats.shape == (4,) and torch.isfinite(stats).all() and not stats.requires_grad


def test_a_penalty_is_a_new_function_not_an_edit(tmp_path, sample):
    """GANLoss(penalty=...) adds e.g. R1 to D's loss; the same step without it is reproducible, so
    the difference is the penalty's."""
    cfg = tiny_cfg(tmp_path)
    shapes = []

    def recorded_r1(D, x_real, y_real, x_fake, y_fake):
        shapes.append((tuple(x_real.shape), tuple(y_real.shape), tuple(x_fake.shape)))
        return r1_penalty(D, x_real, y_real, x_fake, y_fake)

    def one_step(loss: GANLoss) -> TrainState:
        state = TrainState.new(cfg, DeviceBatches(*sample, cfg.batch_size), CPU)
        gan_step(state, loss, cfg)
        return state

    plain, again = one_step(GANLoss(d_loss_hinge, g_loss_hinge)), one_step(GANLoss(d_loss_hinge, g_loss_hinge))
    with_r1 = one_step(GANLoss(d_loss_hinge, g_loss_hinge, penalty=recorded_r1))
    assert shapes == [((8, 3, 32, 32), (8,), (8, 3, 32, 32))]
    assert states_equal(plain.D.state_dict(), again.D.state_dict())
    assert not states_equal(plain.D.state_dict(), with_r1.D.state_dict())


def test_ac_gan_term_teaches_the_class_head_and_g(tmp_path):
    """AC-GAN (``ac_weight``): D's class head learns the classes of the real images, and the term
    makes G draw the requested class far sooner. Data where the class is the colour, judged by
    the nearest class colour of each sample's mean: after 60 steps the plain projection cGAN is
    still at chance (1/K, measured 0.25), the same run with the term well above it (measured 0.74)."""
    K, per_class = 4, 48
    colours = torch.tensor([[230, 20, 20], [20, 230, 20], [20, 20, 230], [230, 230, 20]], dtype=torch.uint8)
    labels = torch.arange(K).repeat_interleave(per_class)
    images = colours[labels][:, :, None, None].expand(-1, 3, 32, 32).contiguous()  # (N, 3, 32, 32) uint8
    y = torch.arange(K).repeat(25)

    def run(ac_weight: float):
        model = dataclasses.replace(TINY, num_classes=K, class_head=ac_weight > 0)
        cfg = tiny_cfg(tmp_path / str(ac_weight), model=model, ac_weight=ac_weight, steps=60, batch_size=16,
                       lr_g=1e-3, lr_d=1e-3, log_every=0, precision="fp32")  # measured in fp32
        result = train(cfg, (images, labels))
        with torch.no_grad():
            mean_colour = (result.G_ema(torch.randn(len(y), TINY.z_dim), y).mean(dim=(2, 3)) + 1) * 127.5  # (N, 3)
        fidelity = (torch.cdist(mean_colour, colours.float()).argmin(1) == y).float().mean().item()
        return result, fidelity

    (_, plain_fidelity), (ac, ac_fidelity) = run(0.0), run(3.0)
    with torch.no_grad():
        named = ac.D.eval()(images.float() / 127.5 - 1, labels, class_logits=True)[:, 1:].argmax(1)
    assert (named == labels).all(), "D's class head did not learn the real images' classes"
    assert ac_fidelity > max(0.6, plain_fidelity + 0.2), (plain_fidelity, ac_fidelity)


def test_ac_gan_terms_use_real_labels_for_d_and_requested_labels_for_g(tmp_path, sample):
    """D's class term scores the class head on the *real* batch against its labels; G's scores it on
    G's samples against the labels G was asked for; a custom loss passed to train() gets the
    config's weight."""
    model = dataclasses.replace(TINY, class_head=True)
    cfg = tiny_cfg(tmp_path, model=model, ac_weight=2.0)
    calls = []

    class Spy(GANLoss):
        def class_term(self, logits, y):
            calls.append((logits.detach().clone(), y.clone()))
            return super().class_term(logits, y)

    seen = []
    state = TrainState.new(cfg, (seen.append(b) or b for b in DeviceBatches(*sample, cfg.batch_size)), CPU)
    D_before = copy.deepcopy(state.D)
    gan_step(state, Spy(d_loss_hinge, g_loss_hinge, ac_weight=2.0), cfg)
    (x_real, y_real), = seen
    (d_logits, d_y), (g_logits, g_y) = calls
    assert torch.equal(d_y, y_real)
    assert torch.allclose(d_logits, D_before(x_real, y_real, class_logits=True)[:, 1:], atol=1e-5)
    assert g_logits.shape == (cfg.batch_size, model.num_classes) and not torch.equal(g_y, y_real)
    assert torch.isclose(Spy(d_loss_hinge, g_loss_hinge, ac_weight=2.0).class_term(d_logits, d_y),
                         2.0 * torch.nn.functional.cross_entropy(d_logits, d_y))

    calls.clear()
    train(dataclasses.replace(cfg, steps=1), sample, loss=Spy(d_loss_hinge, g_loss_hinge))  # ac_weight 0 here
    assert len(calls) == 2  # the config's ac_weight (2.0) was used, so both class terms ran


def test_train_state_load_is_the_inverse_of_save(tmp_path, sample):
    """A state loaded from another's saved state_dict holds equal tensors and takes the same next step."""
    cfg, loss = tiny_cfg(tmp_path), GANLoss.named("hinge")
    a = TrainState.new(cfg, DeviceBatches(*sample, cfg.batch_size, seed=0), CPU)
    for _ in range(2):
        a.history.append({"step": a.step + 1, "loss_d": gan_step(a, loss, cfg)[0].item()})
    other = dataclasses.replace(cfg, seed=1)
    b = TrainState.new(other, DeviceBatches(*sample, cfg.batch_size, seed=1), CPU)
    file = io.BytesIO()  # through a file, as a checkpoint goes: loading shares no tensor with `a`
    torch.save(a.state_dict(), file)
    b.load_state_dict(torch.load(io.BytesIO(file.getvalue()), weights_only=True))
    sa, sb = a.state_dict(), b.state_dict()
    assert set(sa) == set(sb) == set(train_mod.TRAINING_KEYS) - {"config", "rng"}
    assert all(states_equal(sa[k], sb[k]) for k in ("G", "D", "G_ema"))
    assert (sb["step"], sb["history"], sb["batches"]) == (2, sa["history"], sa["batches"])
    assert states_equal(sa["opt_d"]["state"][0], sb["opt_d"]["state"][0])
    torch.manual_seed(5)
    next_a = gan_step(a, loss, cfg)
    torch.manual_seed(5)
    assert torch.equal(next_a, gan_step(b, loss, cfg))


def test_batches_argument_replaces_the_input_pipeline(tmp_path, sample):
    """train(batches=...) takes the (x, y) it is given and loads no data (the configured folder
    does not exist)."""
    x, y = next(DeviceBatches(*sample, 8))
    fed = []

    def batches():
        while True:
            fed.append(1)
            yield x, y

    cfg = tiny_cfg(tmp_path, steps=3, d_steps=2, data_source="folder", data_root=str(tmp_path / "nowhere"))
    res = train(cfg, batches=batches())
    assert res.step == 3 and len(fed) == 6


def test_zero_turns_log_sample_and_checkpoint_intervals_off(tmp_path, sample, monkeypatch):
    """0 = off: no log rows, no grids, and a checkpoint only at the end of the run."""
    saved_at = []
    monkeypatch.setattr(resume_mod, "save_checkpoint", lambda path, state: saved_at.append(state["step"]))
    res = train(tiny_cfg(tmp_path, steps=4, log_every=0, sample_every=0, ckpt_every=0), sample)
    assert res.history == [] and not (res.out / "log.csv").exists() and not (res.out / "samples").exists()
    assert saved_at == [4]
    saved_at.clear()
    train(tiny_cfg(tmp_path / "b", steps=4, ckpt_every=2), sample)
    assert saved_at == [2, 4]


def test_ema_start_copies_g_until_then():
    model = torch.nn.Linear(2, 1)
    ema = EMA(model, decay=0.9, start=5)
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model, step=4)  # before start: the average is G itself
    assert torch.equal(ema.model.weight, model.weight)
    before = ema.model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model, step=5)  # at start the warm-up begins: decay min(0.9, 1/10)
    assert torch.allclose(ema.model.weight, 0.1 * before + 0.9 * model.weight)
    assert not torch.equal(ema.model.weight, model.weight)


def test_ema_start_in_training(tmp_path, sample):
    """With ema_start after the last step the EMA generator has G's weights; with 0 it does not."""
    late = train(tiny_cfg(tmp_path / "late", steps=3, ema_start=10), sample)
    early = train(tiny_cfg(tmp_path / "early", steps=3, ema_start=0), sample)
    params = lambda m: dict(m.named_parameters())  # noqa: E731  (BN buffers are recomputed for sampling)
    assert states_equal(params(late.G), params(late.G_ema))
    assert not states_equal(params(early.G), params(early.G_ema))


def test_tf32_is_an_explicit_option_set_only_while_training(tmp_path, sample):
    seen = []

    def d_loss(d_real, d_fake):
        seen.append((torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32))
        return d_loss_hinge(d_real, d_fake)

    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    train(tiny_cfg(tmp_path / "on", steps=1, tf32=True), sample, loss=GANLoss(d_loss, g_loss_hinge))
    train(tiny_cfg(tmp_path / "off", steps=1), sample, loss=GANLoss(d_loss, g_loss_hinge))
    assert seen == [(True, True), (False, False)]  # the default is off: --precision fp32 means fp32
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before


def test_every_option_has_help_from_its_field(capsys):
    with pytest.raises(SystemExit):
        config_from_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for f in dataclasses.fields(TrainConfig):
        if f.name != "model":
            assert f.metadata.get("help"), f.name
            assert f"--{f.name.replace('_', '-')}" in text
    assert "generator updates (default: 2000)" in text and "0 = no log" in text


# ----------------------------------------------------------------------------------------------
# Checkpoints written by the code before TrainState (the format of the runs in flight then)


OLD_COMMIT = "cb6743c"
OLD_RUNS = textwrap.dedent("""
    import sys, torch, cgan_course
    from cgan_course.models import ModelConfig
    from cgan_course.train import TrainConfig, train
    data, root = torch.load(sys.argv[1]), sys.argv[2]
    print(cgan_course.__file__)
    for arch in ("classic", "projection"):
        for steps in (3, 6):
            cfg = TrainConfig(model=ModelConfig(g_width=8, d_width=8, z_dim=16, arch=arch), batch_size=8,
                              steps=steps, out=f"{root}/{arch}-{steps}", log_every=1, sample_every=1000,
                              ckpt_every=1000, progress=False, threads=1, diffaug="color,translation,cutout")
            res = train(cfg, data)
            torch.save({"G": res.G.state_dict(), "D": res.D.state_dict(), "G_ema": res.G_ema.state_dict()},
                       f"{root}/{arch}-{steps}/result.pt")
""")


def test_checkpoints_of_the_previous_code_resume_bit_exactly(tmp_path, sample):
    """The code at OLD_COMMIT (its whole package, from git) trains 3 steps and, separately, 6;
    this code resumes the 3-step checkpoint to 6 and also trains 6 from scratch. All three
    6-step results are bit-identical: the old file loads, and the new loop is the old one."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", OLD_COMMIT, "cgan_course"], capture_output=True)
    if archive.returncode != 0:
        pytest.skip(f"needs the repository's git history (commit {OLD_COMMIT})")
    old = tmp_path / "old"
    tarfile.open(fileobj=io.BytesIO(archive.stdout)).extractall(old, filter="data")
    torch.save(sample, tmp_path / "sample.pt")
    (tmp_path / "old_runs.py").write_text(OLD_RUNS)
    ran = subprocess.run([sys.executable, str(tmp_path / "old_runs.py"), str(tmp_path / "sample.pt"), str(tmp_path)],
                         cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(old)}, capture_output=True, text=True,
                         timeout=300)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert ran.stdout.startswith(str(old)), ran.stdout  # the old package ran, not this one
    for arch in ("classic", "projection"):
        old_full = torch.load(tmp_path / f"{arch}-6" / "result.pt", weights_only=True)
        cfg = tiny_cfg(tmp_path, model=dataclasses.replace(TINY, arch=arch), steps=6,
                       diffaug="color,translation,cutout")
        resumed = train(dataclasses.replace(cfg, out=str(tmp_path / f"{arch}-3"), resume=True), sample)
        fresh = train(dataclasses.replace(cfg, out=str(tmp_path / f"new-{arch}")), sample)
        for res in (resumed, fresh):
            assert res.step == 6
            assert all(states_equal(old_full[k], getattr(res, k).state_dict()) for k in ("G", "D", "G_ema")), arch
        a = load_checkpoint(tmp_path / f"{arch}-6" / "checkpoint.pt")
        b = load_checkpoint(tmp_path / f"{arch}-3" / "checkpoint.pt")
        assert [r["loss_d"] for r in a["history"]] == [r["loss_d"] for r in b["history"]]
        assert states_equal(a["opt_d"]["state"][0], b["opt_d"]["state"][0])
        assert set(a) <= set(b) <= set(a) | {"data_fingerprint"}  # same keys, and the data fingerprint since issue 27
        assert set(a["config"]) <= set(b["config"])  # new config fields only added
        log = (tmp_path / f"{arch}-3" / "log.csv").read_text().splitlines()
        assert [int(row.split(",")[0]) for row in log[1:]] == [1, 2, 3, 4, 5, 6]


def test_fp16_trains_with_a_grad_scaler_and_resumes_exactly(tmp_path, sample):
    """The GPU-without-native-bf16 path (fp16 autocast + GradScaler), run on the CPU: the scaler is
    on, saved and restored; a run that started in fp32 (disabled scaler, saved as {}) may resume in fp16."""
    full = train(tiny_cfg(tmp_path / "a", steps=2, precision="fp16", sample_every=0), sample)
    train(tiny_cfg(tmp_path / "b", steps=1, precision="fp16", sample_every=0), sample)
    resumed = train(tiny_cfg(tmp_path / "b", steps=2, precision="fp16", sample_every=0, resume=True), sample)
    assert states_equal(full.G.state_dict(), resumed.G.state_dict())
    saved = load_checkpoint(tmp_path / "b" / "run" / "checkpoint.pt")
    assert "scale" in saved["scaler_g"] and "scale" in saved["scaler_d"]  # enabled scalers ({} when off)
    train(tiny_cfg(tmp_path / "c", steps=1, precision="fp32", sample_every=0), sample)
    assert load_checkpoint(tmp_path / "c" / "run" / "checkpoint.pt")["scaler_g"] == {}
    assert train(tiny_cfg(tmp_path / "c", steps=2, precision="fp16", sample_every=0, resume=True), sample).step == 2


def test_calibrated_checkpoint_generator_is_the_runs_g_ema(tmp_path, sample):
    """The service loads a checkpoint with calibrate=True: it must draw exactly what train() returned."""
    result = train(tiny_cfg(tmp_path, steps=3, sample_every=0), sample)  # no grids: the saved EMA keeps G's BN statistics
    z, y = torch.randn(6, 16, generator=torch.Generator().manual_seed(1)), torch.arange(6)
    with torch.no_grad():
        expected = result.G_ema(z, y)
        loaded = load_generator_from_checkpoint(tmp_path / "run" / "checkpoint.pt", calibrate=True)
        # equal up to float round-off (the run's copy is channels-last, the loaded one is not)
        assert (loaded(z, y) - expected).abs().max() < 1e-4
        uncalibrated = load_generator_from_checkpoint(tmp_path / "run" / "checkpoint.pt")
        assert (uncalibrated(z, y) - expected).abs().max() > 1e-2  # the raw G's statistics draw other pictures


def test_resume_refuses_a_new_option_the_checkpoint_predates(tmp_path, sample):
    train(tiny_cfg(tmp_path, steps=2), sample)
    ckpt = tmp_path / "run" / "checkpoint.pt"
    state = load_checkpoint(ckpt)
    del state["config"]["reuse_fakes"]  # as a run saved before the option existed
    save_checkpoint(ckpt, state)
    with pytest.raises(CheckpointError, match=r"--reuse-fakes True \(checkpoint: False, made before the option existed\)"):
        train(tiny_cfg(tmp_path, steps=4, resume=True, reuse_fakes=True), sample)
    assert train(tiny_cfg(tmp_path, steps=4, resume=True), sample).step == 4  # its default: the same run


# ----------------------------------------------------------------------------------------------
# Issue 24: the compact training state a fine-tune starts from


def test_a_run_starts_from_a_compact_training_state(tmp_path, sample):
    from cgan_course.train import load_train_state, save_train_state

    first = train(tiny_cfg(tmp_path, steps=3, out=str(tmp_path / "first")), sample)
    path = save_train_state(first.out / "checkpoint.pt", tmp_path / "train_state.pt")
    saved = load_train_state(path)
    assert saved["step"] == 3 and all(v.dtype == torch.float16 for v in saved["G"].values() if v.is_floating_point())
    assert path.stat().st_size < (first.out / "checkpoint.pt").stat().st_size / 2  # no optimiser moments
    cfg = tiny_cfg(tmp_path, steps=3, out=str(tmp_path / "second"), init_from=str(path))
    with pytest.raises(CourseError, match=r"--steps 3 is not beyond the training state's step 3: --steps counts from"):
        train(cfg, sample)  # it used to return at once, silently
    from cgan_course.train import init_from_train_state

    fresh = TrainState.new(cfg, iter(()), CPU)
    init_from_train_state(fresh, dataclasses.replace(cfg, steps=5), None)  # what train() does before its loop
    assert fresh.step == 3
    loaded = {k: v.half() for k, v in fresh.G.state_dict().items() if v.is_floating_point()}
    assert all(torch.equal(loaded[k], v) for k, v in saved["G"].items() if v.is_floating_point())
    longer = train(dataclasses.replace(cfg, out=str(tmp_path / "third"), steps=5, log_every=1), sample)
    assert longer.step == 5 and [r["step"] for r in longer.history] == [4, 5]


def test_a_class_head_may_be_added_to_a_state_without_one(tmp_path, sample):
    from cgan_course.train import save_train_state

    plain = train(tiny_cfg(tmp_path, steps=2, out=str(tmp_path / "plain")), sample)
    path = save_train_state(plain.out / "checkpoint.pt", tmp_path / "state.pt")
    headed = dataclasses.replace(TINY, class_head=True)
    res = train(tiny_cfg(tmp_path, steps=4, out=str(tmp_path / "ac"), model=headed, ac_weight=1.0, init_from=str(path),
                         log_every=1), sample)
    assert res.step == 4 and [r["step"] for r in res.history] == [3, 4]
    other = dataclasses.replace(TINY, g_width=TINY.g_width * 2)
    with pytest.raises(CheckpointError, match="was trained with a different model"):
        train(tiny_cfg(tmp_path, out=str(tmp_path / "wide"), model=other, init_from=str(path)), sample)
    with pytest.raises(CheckpointError, match=r"is not a compact training state \(train_state.pt\)"):
        train(tiny_cfg(tmp_path, out=str(tmp_path / "bad"), init_from=str(plain.out / "checkpoint.pt")), sample)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA only: torch.cuda.set_sync_debug_mode")
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_training_step_never_waits_for_the_gpu(sample, precision):
    """No host-device sync inside gan_step (fp16 is left out: its GradScaler must read the inf check):
    batches are indexed and flipped on the device, D's BatchNorm lookup is cached, the EMA is one
    foreach kernel, and the losses stay on the device until a log row reads them."""
    from cgan_course.data import DeviceBatches
    from cgan_course.runtime import autocast, autocast_dtype

    device = torch.device("cuda")
    cfg = TrainConfig(model=TINY, batch_size=16, precision=precision, d_steps=2)
    place = Placement(device, autocast_dtype(precision, device), channels_last=True)
    state = TrainState.new(cfg, DeviceBatches(*sample, cfg.batch_size, device, seed=0), place)
    loss, amp = GANLoss.named("hinge", cfg.ac_weight), autocast(device, place.amp_dtype)
    gan_step(state, loss, cfg, amp)  # the first call allocates; what matters is every later step
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(100):  # past an epoch boundary of the 1,000-image sample (62 batches)
            stats = gan_step(state, loss, cfg, amp)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(stats.cpu()).all()
