"""Shapes, ranges and input checks of every model family, size and class count."""
import dataclasses

import pytest
import torch

from cgan_course.errors import CourseError
from cgan_course.models import (ConditionalBatchNorm2d, ModelConfig, build_discriminator,
                                build_generator, check_inputs, count_parameters, trace_shapes)

FAMILIES = [("classic", "dcgan"), ("projection", "dcgan"), ("projection", "resnet")]


@pytest.mark.parametrize("arch,backbone", FAMILIES)
@pytest.mark.parametrize("image_size", [32, 64, 128])
@pytest.mark.parametrize("num_classes", [0, 1, 10])
def test_shapes_and_range(arch, backbone, image_size, num_classes):
    cfg = ModelConfig(arch=arch, backbone=backbone, image_size=image_size, num_classes=num_classes,
                      z_dim=16, g_width=8, d_width=8)
    G, D = build_generator(cfg), build_discriminator(cfg)
    assert (G.z_dim, G.num_classes) == (16, num_classes)
    z = torch.randn(2, 16)
    y = torch.randint(0, num_classes, (2,)) if num_classes else None
    x = G(z, y)
    assert x.shape == (2, 3, image_size, image_size)
    assert x.min() >= -1 and x.max() <= 1
    logits = D(x, y)
    assert logits.shape == (2,)
    logits.sum().backward()  # gradients flow back through D and G
    assert all(p.grad is not None for p in G.parameters() if p.requires_grad and p.ndim > 1)


@pytest.mark.parametrize("arch,backbone", FAMILIES)
def test_label_changes_output(arch, backbone):
    """A conditional G must actually use y: the same z with two labels gives two images."""
    torch.manual_seed(0)
    G = build_generator(ModelConfig(arch=arch, backbone=backbone, g_width=8, d_width=8)).eval()
    if arch == "projection":  # CBN starts as plain BN (gamma=1, beta=0); perturb as training would
        for m in G.modules():
            if isinstance(m, ConditionalBatchNorm2d):
                torch.nn.init.normal_(m.gamma.weight, 1.0, 0.1)
    z = torch.randn(1, 128).repeat(2, 1)
    x = G(z, torch.tensor([0, 1]))
    assert not torch.allclose(x[0], x[1])


def test_trace_shapes_leaves_the_model_untouched():
    G = build_generator(ModelConfig(g_width=8, d_width=8)).train()
    before = {k: v.clone() for k, v in G.state_dict().items()}
    rows = trace_shapes(G, torch.randn(2, 128), torch.tensor([0, 1]))
    assert rows[-1][2] == (2, 3, 32, 32) and G.training
    assert all(torch.equal(before[k], v) for k, v in G.state_dict().items())  # no BN statistics updated


@pytest.mark.parametrize("kwargs,match", [
    ({"arch": "wgan"}, "arch must be"),
    ({"backbone": "vit"}, "backbone must be"),
    ({"arch": "classic", "backbone": "resnet"}, "only with backbone='dcgan'"),
    ({"image_size": 48}, "image_size must be one of 32, 64, 128, got 48"),
    ({"num_classes": -1}, r"num_classes must be an integer in \[0, 10000\], got -1"),
    ({"arch": "classic", "class_head": True}, "class_head needs arch='projection'"),
    ({"num_classes": 0, "class_head": True}, "class_head needs .* num_classes > 0"),
])
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ModelConfig(**kwargs)


def test_parameter_counts_are_stable():
    """The numbers notebook 03 prints; a change here is a change to the course's models.
    Regenerate after a deliberate change with: python -c "from cgan_course.models import *;
    print([(count_parameters(build_generator(ModelConfig(arch=a, backbone=b))),
    count_parameters(build_discriminator(ModelConfig(arch=a, backbone=b)))) for a, b in
    [('classic', 'dcgan'), ('projection', 'dcgan'), ('projection', 'resnet')]])"."""
    counts = {(a, b): (count_parameters(build_generator(ModelConfig(arch=a, backbone=b))),
                       count_parameters(build_discriminator(ModelConfig(arch=a, backbone=b))))
              for a, b in FAMILIES}
    assert counts == {("classic", "dcgan"): (1_388_919, 673_601),
                      ("projection", "dcgan"): (3_830_659, 5_161_793),
                      ("projection", "resnet"): (4_308_995, 1_055_105)}


def test_classic_discriminator_sees_label_at_input():
    """The label enters the classic D as extra input channels (3 + K), not at the last layer."""
    D = build_discriminator(ModelConfig(arch="classic", num_classes=10, d_width=8))
    assert D.net[0].in_channels == 13


def test_projection_embedding_starts_at_the_scale_of_the_linear_head():
    """Adam moves each weight by ~lr per step and spectral norm divides the scale away, so a
    class embedding left at nn.Embedding's N(0, 1) would learn ~30x slower than the head."""
    from cgan_course.models import ProjectionDiscriminator

    head = ProjectionDiscriminator(ModelConfig(d_width=32)).head
    embed_std = head.embed.parametrizations.weight.original.std().item()
    linear_std = head.linear.parametrizations.weight.original.std().item()
    assert embed_std < 3 * linear_std, (embed_std, linear_std)


def test_out_cbn_makes_the_last_batchnorm_class_conditional():
    """With ``out_cbn`` the class reaches the features right before the RGB conv: differing only
    there (every earlier CBN table identical across classes), two labels still give two images."""
    torch.manual_seed(0)
    G = build_generator(ModelConfig(g_width=8, out_cbn=True)).eval()
    assert isinstance(G.bn_out, ConditionalBatchNorm2d)
    with torch.no_grad():
        for m in G.modules():
            if isinstance(m, ConditionalBatchNorm2d):
                m.gamma.weight.fill_(1.0), m.beta.weight.zero_()
        z = torch.randn(1, 128).repeat(2, 1)
        same = G(z, torch.tensor([0, 1]))
        G.bn_out.beta.weight[1].fill_(0.5)  # class 1 only, last BN only
        differ = G(z, torch.tensor([0, 1]))
    assert torch.equal(same[0], same[1])
    assert not torch.allclose(differ[0], differ[1])
    assert isinstance(build_generator(ModelConfig(g_width=8, out_cbn=False)).bn_out, torch.nn.BatchNorm2d)


def test_class_input_feeds_the_class_to_the_first_layer_too():
    """``class_input``: [z, embed(y)] enters G's linear layer, so with every CBN table identical
    across classes the label still changes the image; older configs build G without it."""
    from cgan_course.checkpoints import model_config_from

    torch.manual_seed(0)
    cfg = ModelConfig(g_width=8, class_input=True, embed_dim=6)
    G = build_generator(cfg).eval()
    assert G.linear.in_features == 128 + 6 and [n for n, _ in G.named_parameters()][-1] == "class_input.weight"
    with torch.no_grad():
        for m in G.modules():
            if isinstance(m, ConditionalBatchNorm2d):
                m.gamma.weight.fill_(1.0), m.beta.weight.zero_()
        G.linear.weight[:, 128:].normal_(0, 0.1)  # as after training: the new input columns start at zero
        out = G(torch.randn(1, 128).repeat(2, 1), torch.tensor([0, 1]))
    assert out.shape == (2, 3, 32, 32) and not torch.allclose(out[0], out[1])
    for bad in (dict(arch="classic"), dict(num_classes=0)):
        with pytest.raises(CourseError, match="class_input needs arch='projection' and num_classes > 0"):
            ModelConfig(class_input=True, **bad)
    old = {k: v for k, v in dataclasses.asdict(ModelConfig(g_width=8)).items() if k != "class_input"}
    assert model_config_from(old, "old.pt").class_input is False
    for init in ("pytorch", "xavier"):  # at initialisation: the model without it, the new input at zero
        models = []
        for with_input in (False, True):
            torch.manual_seed(1)
            c = ModelConfig(g_width=8, g_init=init, class_input=with_input)
            models.append((build_generator(c), build_discriminator(c)))
        (G0, D0), (G1, D1) = models
        assert not G1.linear.weight[:, 128:].any() and torch.equal(G1.linear.weight[:, :128], G0.linear.weight)
        rest = lambda G: [p for n, p in G.named_parameters() if n not in ("linear.weight", "class_input.weight")]  # noqa: E731
        assert all(torch.equal(a, b) for a, b in zip(rest(G0) + list(D0.parameters()), rest(G1) + list(D1.parameters())))


def test_configs_saved_before_out_cbn_build_the_old_generator():
    """Checkpoints written before ``out_cbn`` existed (the committed generator, old runs) hold a
    plain last BatchNorm; their configs must keep building exactly that."""
    from cgan_course.checkpoints import model_config_from

    old = {k: v for k, v in dataclasses.asdict(ModelConfig(g_width=8)).items() if k not in ("out_cbn", "g_init")}
    assert model_config_from(old, "old.pt").out_cbn is False and model_config_from(old, "old.pt").g_init == "xavier"
    assert model_config_from({**old, "out_cbn": True, "g_init": "pytorch"}, "new.pt").out_cbn is True


def test_default_generator_starts_unsaturated():
    """At initialisation the default projection G draws mid-grey noise (< 2% of pixels beyond
    +-0.9); Xavier init, which the conditioning ablation measured learning the class slower,
    puts 10-20% there."""
    torch.manual_seed(0)
    z, y = torch.randn(64, 128), torch.randint(0, 10, (64,))
    with torch.no_grad():
        x = build_generator(ModelConfig(g_width=32))(z, y)
        x_xavier = build_generator(ModelConfig(g_width=32, g_init="xavier"))(z, y)
    assert (x.abs() > 0.9).float().mean() < 0.02 < (x_xavier.abs() > 0.9).float().mean()


def test_resume_checks_ignore_what_cannot_differ():
    """A resume compares architectures: ``g_init`` only sets starting weights and ``out_cbn`` does
    nothing for the classic CGAN, so an old classic run resumes under the new defaults; an old
    projection run is refused with the flag that rebuilds it."""
    from cgan_course.checkpoints import CheckpointError, check_model_config
    from cgan_course.release import training_command

    def saved_before(cfg: ModelConfig) -> dict:
        return {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("out_cbn", "g_init")}

    check_model_config(saved_before(ModelConfig(arch="classic")), ModelConfig(arch="classic"), "old.pt")
    check_model_config(dataclasses.asdict(ModelConfig(g_init="xavier")), ModelConfig(), "new.pt")
    with pytest.raises(CheckpointError, match="out_cbn: checkpoint False vs requested True.*--no-out-cbn"):
        check_model_config(saved_before(ModelConfig()), ModelConfig(), "old.pt")
    from cgan_course.train import TrainConfig

    old = TrainConfig().to_dict()
    old["model"] = saved_before(ModelConfig(g_width=48))
    assert {"--g-width 48", "--no-out-cbn", "--g-init xavier"} <= set(
        training_command(old, steps=10).replace(" --", "\n--").splitlines())
    assert "out-cbn" not in training_command(TrainConfig().to_dict(), steps=10)


@pytest.mark.parametrize("arch,backbone", FAMILIES)
def test_int32_labels_work_in_every_family(arch, backbone):
    """The checks accept int32 class indices, so every model must (the classic D's one_hot took int64 only)."""
    cfg = ModelConfig(arch=arch, backbone=backbone, g_width=8, d_width=8)
    G, D = build_generator(cfg).eval(), build_discriminator(cfg).eval()
    z, y = torch.randn(2, 128), torch.tensor([3, 7])
    with torch.no_grad():
        x = G(z, y.int())
        assert torch.equal(x, G(z, y)) and torch.equal(D(x, y.int()), D(x, y))


def test_autocast_accepts_inputs_of_another_float_dtype():
    """In training D gets G's bf16 output while its weights stay fp32: autocast casts the inputs,
    so the dtype check lets it through. It leaves float64 alone, so float64 stays refused."""
    cfg = ModelConfig(g_width=8, d_width=8)
    G, D = build_generator(cfg).eval(), build_discriminator(cfg).eval()
    y = torch.tensor([3, 7])
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        x = G(torch.randn(2, 128, dtype=torch.float16), y)
        assert x.dtype == torch.bfloat16 and D(x, y).shape == (2,)
        with pytest.raises(CourseError, match="z is torch.float64 but the model's weights are torch.float32"):
            G(torch.randn(2, 128, dtype=torch.float64), y)


@pytest.mark.parametrize("arch,backbone", FAMILIES)
def test_label_range_check_reads_no_values_off_the_cpu(arch, backbone):
    """On an accelerator, reading y's min and max costs two device syncs per call. The meta device
    stands in for one: it has shapes but no values, so any read of y fails. The shape checks stay."""
    cfg = ModelConfig(arch=arch, backbone=backbone, g_width=8, d_width=8)
    G, D = build_generator(cfg).to("meta"), build_discriminator(cfg).to("meta")
    y = torch.tensor([0, 9], device="meta")
    x = G(torch.randn(2, 128, device="meta"), y)
    assert x.shape == (2, 3, 32, 32) and D(x, y).shape == (2,)
    with pytest.raises(CourseError, match=r"y must be \[B\]=\[2\]"):
        G(torch.randn(2, 128, device="meta"), torch.zeros(3, dtype=torch.long, device="meta"))
    with pytest.raises(CourseError, match=r"x must be \[B, 3, 32, 32\]"):
        D(torch.randn(2, 3, 16, 16, device="meta"), y)


def test_label_range_check_is_skipped_while_compiling(monkeypatch):
    """Under torch.compile the range check would be a graph break; the shape checks remain."""
    y = torch.tensor([0, 10])
    with pytest.raises(CourseError, match=r"y must lie in \[0, 9\], got \[0, 10\]"):
        check_inputs(torch.randn(2, 16), y, 16, 10)  # eager, on the CPU: checked
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    check_inputs(torch.randn(2, 16), y, 16, 10)
    with pytest.raises(CourseError, match=r"y must be \[B\]=\[2\]"):
        check_inputs(torch.randn(2, 16), y[:1], 16, 10)


def test_models_compile_as_one_graph():
    """fullgraph=True turns any graph break, such as int(y.min()), into an error; the compiled
    models give the eager outputs."""
    torch._dynamo.reset()
    cfg = ModelConfig(g_width=8, d_width=8)
    G, D = build_generator(cfg).eval(), build_discriminator(cfg).eval()
    z, y = torch.randn(2, 128), torch.tensor([3, 7])
    with torch.no_grad():
        x = torch.compile(G, fullgraph=True, backend="eager")(z, y)
        assert torch.equal(x, G(z, y))
        assert torch.equal(torch.compile(D, fullgraph=True, backend="eager")(x, y), D(x, y))


def test_class_head_names_classes_in_the_same_pass():
    """With ``class_head`` D returns, on request, its realness logit and K class logits from one
    pass: column 0 is exactly what the plain call returns."""
    D = build_discriminator(ModelConfig(d_width=8, class_head=True)).eval()
    x, y = torch.randn(3, 3, 32, 32), torch.tensor([0, 4, 9])
    both = D(x, y, class_logits=True)
    assert both.shape == (3, 11)
    assert torch.allclose(both[:, 0], D(x, y))
    with pytest.raises(ValueError, match="no class head: build it with ModelConfig\\(class_head=True\\)"):
        build_discriminator(ModelConfig(d_width=8))(x, y, class_logits=True)
    # configs saved before the option existed build a D without the head
    from cgan_course.checkpoints import check_model_config, model_config_from
    old = {k: v for k, v in dataclasses.asdict(ModelConfig(d_width=8)).items() if k != "class_head"}
    assert model_config_from(old, "old.pt").class_head is False
    check_model_config(old, ModelConfig(d_width=8), "old.pt")  # resumes as the same architecture


def test_operator_norm_is_the_largest_singular_value_of_the_layers_map():
    """Notebook 03 teaches that a conv kernel's spectral norm is a proxy: this is the exact quantity."""
    import torch.nn as nn

    from cgan_course.models import operator_norm

    torch.manual_seed(0)
    lin = nn.Linear(7, 5)
    assert abs(operator_norm(lin, (7,)) - torch.linalg.matrix_norm(lin.weight, 2).item()) < 1e-4
    conv = nn.Conv2d(2, 3, 3, stride=2, padding=1)
    shape = (2, 5, 5)
    basis = torch.eye(2 * 5 * 5).reshape(-1, *shape)  # every input pixel once
    with torch.no_grad():
        matrix = (conv(basis) - conv(torch.zeros(1, *shape))).flatten(1).T  # (outputs, inputs): the conv as a matrix
    exact = torch.linalg.matrix_norm(matrix, 2).item()
    assert abs(operator_norm(conv, shape, iters=300) - exact) < 1e-3 * exact
    kernel = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), 2).item()
    assert abs(kernel - exact) > 0.01 * exact  # the reshaped kernel's norm is another number
