"""Conditional generators and discriminators: the classic CGAN and the projection cGAN.

Every generator is called ``G(z, y)`` with ``z [B, z_dim]`` and ``y [B]`` (int64 class indices)
and returns images ``[B, 3, S, S]`` in [-1, 1]. Every discriminator is called ``D(x, y)`` and
returns one logit per image, ``[B]``. ``num_classes=0`` builds the unconditional version of the
same network (then ``y`` may be ``None``), so the course can compare like with like.

Two families:

1. ``arch="classic"``: Mirza & Osindero's CGAN on a DCGAN backbone, as most tutorials do it.
   G concatenates a label embedding to ``z``; D sees the label as ``num_classes`` one-hot input
   channels stacked on the image. Trained with the non-saturating BCE loss.
2. ``arch="projection"``: G with class-conditional BatchNorm (the label sets each BN's scale and
   shift), D with spectral normalisation and a projection head (Miyato & Koyama, 2018):
   ``D(x, y) = w^T phi(x) + embed(y)^T phi(x)``. Trained with the hinge loss. ``backbone="dcgan"``
   is a plain CNN that trains on a laptop CPU; ``backbone="resnet"`` is the SNGAN ResNet for GPUs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm

from .errors import CourseError
from .runtime import eval_mode
from .validate import check_fields, config_field

# Upper bounds of a model config: far above any model this course trains, far below one whose
# weights alone would take gigabytes (a typo such as --num-classes 10000000 is refused, not allocated).
MAX_CLASSES = 10_000
MAX_WIDTH = 512
MAX_Z_DIM = 4096


@dataclass
class ModelConfig:
    arch: str = config_field("projection", "'classic' (concat + BCE) or 'projection' (CBN + SN + projection, hinge)",
                             choices=("classic", "projection"))
    backbone: str = config_field("dcgan", "'dcgan' (CPU-friendly CNN) or 'resnet' (SNGAN ResNet; projection only)",
                                 choices=("dcgan", "resnet"))
    image_size: int = config_field(32, "32, 64 or 128 pixels", choices=(32, 64, 128))
    num_classes: int = config_field(10, "0 builds the unconditional model", lo=0, hi=MAX_CLASSES)
    z_dim: int = config_field(128, "latent size", lo=1, hi=MAX_Z_DIM)
    g_width: int = config_field(64, "generator base channel count (the widest layer has 4-8x this)", lo=1,
                                hi=MAX_WIDTH)
    d_width: int = config_field(64, "discriminator base channel count", lo=1, hi=MAX_WIDTH)
    embed_dim: int = config_field(50, "classic CGAN, and projection G with class_input: size of the label embedding "
                                      "concatenated to z", lo=1, hi=MAX_Z_DIM)
    out_cbn: bool = config_field(True, "projection G: the last BatchNorm (before the RGB conv) is class-conditional too")
    g_init: str = config_field("pytorch", "projection G weights: 'pytorch' (the layers' defaults) or 'xavier' (SNGAN/BigGAN)",
                               choices=("pytorch", "xavier"))
    class_head: bool = config_field(False, "projection D: also an auxiliary classifier of the image's class "
                                           "(AC-GAN), trained when the run's ac_weight > 0")
    class_input: bool = config_field(False, "projection G: the class also enters at the input, as a learned "
                                            "embedding (embed_dim) concatenated to z, as in BigGAN")

    def __post_init__(self):
        check_fields(self)  # types and ranges, declared on the fields above
        if self.arch == "classic" and self.backbone != "dcgan":
            raise CourseError("the classic CGAN exists only with backbone='dcgan'")
        if self.class_head and (self.arch != "projection" or self.num_classes == 0):
            raise CourseError("class_head needs arch='projection' and num_classes > 0 (it names the image's class); "
                              "pass class_head=False (and ac_weight=0) for the classic CGAN or an unconditional model")
        if self.class_input and (self.arch != "projection" or self.num_classes == 0):
            raise CourseError("class_input needs arch='projection' and num_classes > 0 (the classic CGAN always "
                              "feeds its label to the input); pass class_input=False")


def _num_upsamplings(image_size: int) -> int:
    return int(math.log2(image_size // 4))  # 4x4 seed -> image_size: 3, 4 or 5 doublings


def _describe(value: object) -> str:
    return f"{value.dtype} {list(value.shape)}" if isinstance(value, torch.Tensor) else type(value).__name__


def _check_labels(y: torch.Tensor | None, batch: int, num_classes: int) -> None:
    if num_classes == 0:
        return
    if not isinstance(y, torch.Tensor) or y.ndim != 1 or y.shape[0] != batch:
        raise CourseError(f"y must be [B]=[{batch}] class indices in a tensor, got "
                          f"{None if y is None else _describe(y)}: pass torch.tensor(y)")
    if y.dtype not in (torch.int64, torch.int32):
        raise CourseError(f"y must hold integer class indices, got dtype {y.dtype}")
    # The range check reads y's values: free on the CPU, where students meet this mistake, but on
    # an accelerator two device syncs per call, and under torch.compile a graph break. There an
    # out-of-range label fails inside the embedding lookup instead (on CUDA: a device-side assert).
    if y.device.type == "cpu" and not torch.compiler.is_compiling() and y.numel() and (
            int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise CourseError(f"y must lie in [0, {num_classes - 1}], got [{int(y.min())}, {int(y.max())}]")


def _check_dtype(name: str, x: torch.Tensor, weights: torch.dtype | None) -> None:
    # A float64 input into float32 weights fails deep inside the first layer. Autocast casts
    # fp32, fp16 and bf16 inputs (in training D gets G's bf16 output) but leaves float64 alone.
    if weights is not None and x.dtype != weights and (
            x.dtype == torch.float64 or not torch.is_autocast_enabled(x.device.type)):
        raise CourseError(f"{name} is {x.dtype} but the model's weights are {weights}: pass {name}.to({weights})")


def check_inputs(z: torch.Tensor, y: torch.Tensor | None, z_dim: int, num_classes: int,
                 weights: torch.dtype | None = None) -> None:
    """Shape, dtype and range checks at the generator's entry, with messages that say what was
    passed. ``weights``: the model's parameter dtype, which ``z`` must match outside autocast.
    The label range is checked for CPU labels in eager mode only (no device sync, no graph break)."""
    if not isinstance(z, torch.Tensor) or not z.is_floating_point():
        raise CourseError(f"z must be a float tensor [B, {z_dim}], got {_describe(z)}: draw it with "
                          f"torch.randn(B, {z_dim})")
    if z.ndim != 2 or z.shape[1] != z_dim:
        raise CourseError(f"z must be [B, {z_dim}], got {list(z.shape)}")
    _check_dtype("z", z, weights)
    _check_labels(y, z.shape[0], num_classes)


def check_images(x: torch.Tensor, y: torch.Tensor | None, image_size: int, num_classes: int,
                 weights: torch.dtype | None = None) -> None:
    """The same at the discriminator's entry: a batch of float RGB images in [-1, 1] of the size
    it was built for."""
    if not isinstance(x, torch.Tensor):
        raise CourseError(f"x must be a tensor of images [B, 3, {image_size}, {image_size}], got {_describe(x)}: "
                          "pass torch.as_tensor(x)")
    if x.ndim != 4 or tuple(x.shape[1:]) != (3, image_size, image_size):
        raise CourseError(f"x must be [B, 3, {image_size}, {image_size}] images, got {list(x.shape)}")
    if not x.is_floating_point():
        raise CourseError(f"x must be float images in [-1, 1], got {x.dtype}: convert 0..255 pixels with "
                          "x.float() / 127.5 - 1")
    _check_dtype("x", x, weights)
    _check_labels(y, x.shape[0], num_classes)


def _weights_dtype(module: nn.Module) -> torch.dtype:
    return next(module.parameters()).dtype


def dcgan_init(module: nn.Module) -> None:
    """DCGAN initialisation (Radford et al.): conv weights N(0, 0.02), BN scale N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d) and m.affine:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


# ----------------------------------------------------------------------------------------------
# Classic CGAN: label concatenated to z (G) and to the image as channels (D)


class ClassicGenerator(nn.Module):
    """DCGAN generator; the label embedding is concatenated to z.

    (B, z_dim + embed_dim) -> (B, 8w, 4, 4) -> ... -> (B, w, S/2, S/2) -> (B, 3, S, S)
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.z_dim, self.num_classes, self.image_size = cfg.z_dim, cfg.num_classes, cfg.image_size
        self.embed = nn.Embedding(cfg.num_classes, cfg.embed_dim) if cfg.num_classes else None
        in_dim = cfg.z_dim + (cfg.embed_dim if cfg.num_classes else 0)
        n_up = _num_upsamplings(cfg.image_size)
        ch = cfg.g_width * 2 ** (n_up - 1)  # 32px: 4w at 4x4, then 2w, w
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(in_dim, ch, 4, 1, 0, bias=False),  # (B, in, 1, 1) -> (B, ch, 4, 4)
            nn.BatchNorm2d(ch), nn.ReLU(True)]
        for _ in range(n_up - 1):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False),  # (B, ch, s, s) -> (B, ch/2, 2s, 2s)
                       nn.BatchNorm2d(ch // 2), nn.ReLU(True)]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, 3, 4, 2, 1), nn.Tanh()]  # (B, w, S/2, S/2) -> (B, 3, S, S)
        self.net = nn.Sequential(*layers)
        dcgan_init(self)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        check_inputs(z, y, self.z_dim, self.num_classes, _weights_dtype(self))
        h = torch.cat([z, self.embed(y)], dim=1) if self.embed is not None else z  # (B, z_dim + e)
        return self.net(h[:, :, None, None])  # (B, in, 1, 1) -> (B, 3, S, S)


class ClassicDiscriminator(nn.Module):
    """DCGAN discriminator; the label enters as ``num_classes`` one-hot channels beside RGB.

    (B, 3 + K, S, S) -> (B, w, S/2, S/2) -> ... -> (B, 8w, 4, 4) -> (B,) logits
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.num_classes, self.image_size = cfg.num_classes, cfg.image_size
        n_down = _num_upsamplings(cfg.image_size)
        ch = cfg.d_width
        layers: list[nn.Module] = [nn.Conv2d(3 + cfg.num_classes, ch, 4, 2, 1),  # no BN on the input layer
                                   nn.LeakyReLU(0.2, True)]
        for _ in range(n_down - 1):
            layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=False),  # (B, ch, s, s) -> (B, 2ch, s/2, s/2)
                       nn.BatchNorm2d(ch * 2), nn.LeakyReLU(0.2, True)]
            ch *= 2
        layers += [nn.Conv2d(ch, 1, 4, 1, 0)]  # (B, ch, 4, 4) -> (B, 1, 1, 1)
        self.net = nn.Sequential(*layers)
        dcgan_init(self)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        check_images(x, y, self.image_size, self.num_classes, _weights_dtype(self))
        if self.num_classes:
            # (B,) -> (B, K, S, S): the label is visible at every pixel of the first layer
            onehot = F.one_hot(y.long(), self.num_classes).to(x.dtype)[:, :, None, None]  # one_hot takes int64 only
            x = torch.cat([x, onehot.expand(-1, -1, x.shape[2], x.shape[3])], dim=1)
        return self.net(x).flatten()  # (B, 1, 1, 1) -> (B,)


# ----------------------------------------------------------------------------------------------
# Projection cGAN building blocks


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm whose scale and shift are looked up from the class: gamma_y * x_hat + beta_y.

    With ``num_classes=0`` it is an ordinary affine BatchNorm.
    """

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        self.bn = nn.BatchNorm2d(channels, affine=num_classes == 0)
        if num_classes:
            self.gamma = nn.Embedding(num_classes, channels)
            self.beta = nn.Embedding(num_classes, channels)
            nn.init.ones_(self.gamma.weight)  # start as plain BN; classes diverge as training goes
            nn.init.zeros_(self.beta.weight)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        h = self.bn(x)
        if self.num_classes:
            h = self.gamma(y)[:, :, None, None] * h + self.beta(y)[:, :, None, None]
        return h


class ProjectionHead(nn.Module):
    """``logit = w^T phi + embed(y)^T phi``: the class enters D as an inner product, not an input."""

    def __init__(self, features: int, num_classes: int):
        super().__init__()
        self.linear = spectral_norm(nn.Linear(features, 1))
        self.embed = None
        if num_classes:
            # Xavier, as SNGAN's projection D: nn.Embedding's default N(0, 1) is ~30x larger than
            # the linear layer's weights, and since Adam moves every weight by ~lr per step while
            # spectral norm divides the scale away, the class term would learn ~30x slower
            embed = nn.Embedding(num_classes, features)
            nn.init.xavier_uniform_(embed.weight)
            self.embed = spectral_norm(embed)

    def forward(self, phi: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        out = self.linear(phi).flatten()  # (B, F) -> (B,)
        if self.embed is not None:
            out = out + (self.embed(y) * phi).sum(dim=1)  # (B, F) . (B, F) -> (B,)
        return out


class _CBNSequential(nn.Module):
    """Runs conditional BN blocks in order, passing ``y`` to each."""

    def __init__(self, *blocks: nn.Module):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)

    def forward(self, h: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        for block in self.blocks:
            h = block(h, y)
        return h


class DCGANUpBlock(nn.Module):
    """CBN -> ReLU -> 4x4 stride-2 transposed conv: (B, c_in, s, s) -> (B, c_out, 2s, 2s).

    SNGAN's "standard CNN" generator; a transposed conv costs 4 taps per output pixel where
    upsample + 3x3 conv costs 9, which matters on a CPU."""

    def __init__(self, c_in: int, c_out: int, num_classes: int):
        super().__init__()
        self.bn = ConditionalBatchNorm2d(c_in, num_classes)
        self.conv = nn.ConvTranspose2d(c_in, c_out, 4, 2, 1)

    def forward(self, h: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return self.conv(F.relu(self.bn(h, y)))


class ResGBlock(nn.Module):
    """SNGAN/BigGAN generator block, (B, c_in, s, s) -> (B, c_out, 2s, 2s), with CBN."""

    def __init__(self, c_in: int, c_out: int, num_classes: int):
        super().__init__()
        self.bn1 = ConditionalBatchNorm2d(c_in, num_classes)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, 1, 1)
        self.bn2 = ConditionalBatchNorm2d(c_out, num_classes)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.skip = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        h = F.interpolate(F.relu(self.bn1(x, y)), scale_factor=2.0)
        h = self.conv2(F.relu(self.bn2(self.conv1(h), y)))
        return h + self.skip(F.interpolate(x, scale_factor=2.0))


class ResDBlock(nn.Module):
    """SNGAN discriminator block; ``first`` skips the leading ReLU (it would clip the image)."""

    def __init__(self, c_in: int, c_out: int, downsample: bool, first: bool = False):
        super().__init__()
        self.first, self.downsample = first, downsample
        self.conv1 = spectral_norm(nn.Conv2d(c_in, c_out, 3, 1, 1))
        self.conv2 = spectral_norm(nn.Conv2d(c_out, c_out, 3, 1, 1))
        self.skip = spectral_norm(nn.Conv2d(c_in, c_out, 1)) if (c_in != c_out or downsample) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.first else F.relu(x)
        h = self.conv2(F.relu(self.conv1(h)))
        s = x
        if self.first:  # SNGAN's "optimized" first block: pool, then 1x1 conv
            s = self.skip(F.avg_pool2d(s, 2)) if self.downsample else self.skip(s)
        elif self.skip is not None:
            s = self.skip(s)
            s = F.avg_pool2d(s, 2) if self.downsample else s
        if self.downsample:
            h = F.avg_pool2d(h, 2)  # (B, c, s, s) -> (B, c, s/2, s/2)
        return h + s


# ----------------------------------------------------------------------------------------------
# Projection cGAN: generators and discriminators


class ProjectionGenerator(nn.Module):
    """Generator with class-conditional BatchNorm (DCGAN or ResNet body).

    z (B, z_dim) -> linear -> (B, c0, 4, 4) -> [up block] x log2(S/4) -> CBN, ReLU, conv -> tanh
    (B, 3, S, S). For S=32 and width w: dcgan 8w -> 4w -> 2w -> w channels; resnet 4w throughout.
    ``out_cbn=False`` puts a plain BN before the last conv (the first pretrained file has one).
    ``class_input=True`` feeds [z, embed(y)] (B, z_dim + embed_dim) to the linear layer, so the class
    shapes the 4x4 seed too (BigGAN), not only the BatchNorms' gains and biases.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.z_dim, self.num_classes, self.image_size = cfg.z_dim, cfg.num_classes, cfg.image_size
        n_up = _num_upsamplings(cfg.image_size)
        if cfg.backbone == "dcgan":
            # SNGAN's CNN: 8w channels at 4x4, halved at every doubling, w at full size
            chans = [cfg.g_width * min(2 ** (n_up - i), 8) for i in range(n_up + 1)]
            block = DCGANUpBlock
        else:
            chans = [cfg.g_width * 4] * (n_up + 1)  # SNGAN CIFAR ResNet: constant width
            block = ResGBlock
        self.seed_channels = chans[0]
        self.input_dim = cfg.z_dim  # + embed_dim with class_input (add_class_input)
        self.linear = nn.Linear(cfg.z_dim, 4 * 4 * chans[0])  # widened below for class_input
        self.blocks = _CBNSequential(*[block(chans[i], chans[i + 1], cfg.num_classes) for i in range(n_up)])
        self.out_cbn = cfg.out_cbn and cfg.num_classes > 0
        self.bn_out = ConditionalBatchNorm2d(chans[-1], cfg.num_classes) if self.out_cbn else nn.BatchNorm2d(chans[-1])
        self.conv_out = nn.Conv2d(chans[-1], 3, 3, 1, 1)
        # PyTorch's default init by default: with Xavier (first images: high-contrast noise) and
        # with a plain last BN the class was learned slower (benchmarks/conditioning_ablation.py)
        if cfg.g_init == "xavier":
            for m in self.modules():
                if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                    nn.init.xavier_uniform_(m.weight)
                    nn.init.zeros_(m.bias)
        self.class_input = None
        if cfg.class_input:
            self.add_class_input(cfg.embed_dim)

    def add_class_input(self, embed_dim: int) -> None:
        """The class at the input, grown onto the model without it: the embedding is registered last
        (same parameter order, one more optimiser entry) and drawn without consuming the global RNG,
        and the linear layer's new input columns start at zero. So at initialisation G is exactly the
        model without class_input (the same weights, and D's after it): an A/B of the two differs in
        one factor, and benchmarks/branch_run.py adds it to a trained run the same way."""
        if self.class_input is not None or not self.num_classes:
            raise CourseError("add_class_input: this generator already has a class input, or has no classes")
        with torch.random.fork_rng(devices=[]):
            self.class_input = nn.Embedding(self.num_classes, embed_dim)
        with torch.no_grad():
            w = self.linear.weight  # (4*4*c0, z_dim)
            self.linear.weight = nn.Parameter(torch.cat([w, w.new_zeros(w.shape[0], embed_dim)], dim=1))
        self.input_dim = self.linear.in_features = self.z_dim + embed_dim

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        check_inputs(z, y, self.z_dim, self.num_classes, _weights_dtype(self))
        if self.class_input is not None:
            z = torch.cat([z, self.class_input(y).to(z.dtype)], dim=1)  # (B, z_dim + embed_dim)
        h = self.linear(z).view(z.shape[0], self.seed_channels, 4, 4)  # (B, input_dim) -> (B, c0, 4, 4)
        h = self.blocks(h, y)  # (B, c0, 4, 4) -> (B, c_last, S, S)
        h = self.bn_out(h, y) if self.out_cbn else self.bn_out(h)
        return torch.tanh(self.conv_out(F.relu(h)))  # -> (B, 3, S, S)


class ProjectionDiscriminator(nn.Module):
    """Spectrally normalised discriminator with a projection head (DCGAN or ResNet body).

    dcgan (SNGAN's "standard CNN"): per stage a 3x3 conv then a 4x4 stride-2 conv, LeakyReLU 0.1,
    (B, 3, S, S) -> (B, 8w, 4, 4) -> 3x3 conv -> sum over pixels -> (B, 8w) -> projection (B,).
    resnet: ResBlocks with average-pool downsampling to 4x4 (32px: 8x8 then two non-down blocks
    as in SNGAN), ReLU, sum over pixels, projection.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.num_classes, self.backbone, self.image_size = cfg.num_classes, cfg.backbone, cfg.image_size
        n_down = _num_upsamplings(cfg.image_size)
        w = cfg.d_width
        if cfg.backbone == "dcgan":
            layers: list[nn.Module] = []
            c_in = 3
            for i in range(n_down):
                c = w * 2 ** min(i, 3)
                layers += [spectral_norm(nn.Conv2d(c_in, c, 3, 1, 1)), nn.LeakyReLU(0.1, True),
                           spectral_norm(nn.Conv2d(c, c * 2 if i == n_down - 1 else c, 4, 2, 1)),  # (s) -> (s/2)
                           nn.LeakyReLU(0.1, True)]
                c_in = c * 2 if i == n_down - 1 else c
            layers += [spectral_norm(nn.Conv2d(c_in, c_in, 3, 1, 1)), nn.LeakyReLU(0.1, True)]
            self.body = nn.Sequential(*layers)
            features = c_in
        else:
            c = w * 2  # SNGAN CIFAR: 128 channels for w=64
            blocks = [ResDBlock(3, c, downsample=True, first=True)]
            blocks += [ResDBlock(c, c, downsample=True) for _ in range(n_down - 2)]
            blocks += [ResDBlock(c, c, downsample=False), ResDBlock(c, c, downsample=False)]
            self.body = nn.Sequential(*blocks, nn.ReLU())
            features = c
        self.head = ProjectionHead(features, cfg.num_classes)
        # AC-GAN's auxiliary classifier on the same features: not spectrally normalised, since it is
        # trained by cross-entropy on real labels, not by the adversarial game
        self.class_head = nn.Linear(features, cfg.num_classes) if cfg.class_head else None

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None, class_logits: bool = False) -> torch.Tensor:
        """(B, 3, S, S) -> realness logits (B,); with ``class_logits``, (B, 1 + K): the realness
        logit, then the class head's K logits for the same images (one pass through the body)."""
        check_images(x, y, self.image_size, self.num_classes, _weights_dtype(self))
        phi = self.body(x).sum(dim=(2, 3))  # (B, F, s, s) -> (B, F): sum pooling as in SNGAN
        out = self.head(phi, y)  # (B,)
        if not class_logits:
            return out
        if self.class_head is None:
            raise CourseError("this discriminator has no class head: build it with ModelConfig(class_head=True)")
        return torch.cat([out[:, None], self.class_head(phi)], dim=1)  # (B, 1 + K)


def build_generator(cfg: ModelConfig) -> nn.Module:
    return ClassicGenerator(cfg) if cfg.arch == "classic" else ProjectionGenerator(cfg)


def build_discriminator(cfg: ModelConfig) -> nn.Module:
    return ClassicDiscriminator(cfg) if cfg.arch == "classic" else ProjectionDiscriminator(cfg)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def forward_with_hooks(model: nn.Module, hooks: list[tuple[nn.Module, Callable]], *inputs) -> None:
    """One forward pass of ``model`` on ``inputs`` with each ``(module, hook)`` attached as a forward
    hook. It runs in eval mode without gradients and restores the mode and removes the hooks
    afterwards, so looking inside leaves BatchNorm statistics and spectral-norm iterations untouched."""
    handles = [m.register_forward_hook(h) for m, h in hooks]
    try:
        with torch.no_grad(), eval_mode(model):
            model(*inputs)
    finally:
        for h in handles:
            h.remove()


def trace_shapes(model: nn.Module, *inputs) -> list[tuple[str, str, tuple[int, ...]]]:
    """Run one forward pass and return ``(name, layer type, output shape)`` for every layer.

    Layers are the leaf modules (a spectrally normalised conv counts as one layer). Notebook 03
    uses it to trace a batch through each network (``forward_with_hooks``: eval mode, nothing changed).
    """
    rows: list[tuple[str, str, tuple[int, ...]]] = []
    hooks = []
    for name, m in model.named_modules():
        children = [n for n, _ in m.named_children() if n != "parametrizations"]
        if children or ".parametrizations" in name or name == "":
            continue

        def hook(mod, args, out, name=name):
            if isinstance(out, torch.Tensor):
                rows.append((name, type(mod).__name__, tuple(out.shape)))

        hooks.append((m, hook))
    forward_with_hooks(model, hooks, *inputs)
    return rows


def operator_norm(layer: nn.Module, in_shape: tuple[int, ...], iters: int = 100, seed: int = 0) -> float:
    """The largest singular value of the linear map ``x -> layer(x) - layer(0)`` on inputs of shape
    ``in_shape`` (e.g. ``(C, H, W)`` for a convolution), by power iteration on ``W^T W`` with
    autograd: the most the layer can stretch an input *of that size*. For a convolution this is not
    the spectral norm of its kernel reshaped to a matrix (what ``spectral_norm`` normalises): it
    depends on the kernel's spatial structure, the stride, the padding and the input size."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, *in_shape, generator=g)
    zero = torch.zeros_like(x)
    with torch.enable_grad():
        for _ in range(iters):
            x = (x / x.norm()).requires_grad_(True)
            y = layer(x) - layer(zero)
            (x,) = torch.autograd.grad(y, x, y)  # W^T W x
    x = (x / x.norm()).detach()
    with torch.no_grad():
        return (layer(x) - layer(zero)).norm().item()
