"""What a training run is told: ``TrainConfig`` (its fields generate the CLI's options and are
checked by the validation layer), which fields a resume may change, and the loss a config means.
``recipes.py`` declares the course's recipes as TrainConfigs; ``loop.py`` runs them."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch

from ..diffaugment import diff_augment
from ..errors import CourseError
from ..losses import LOSSES
from ..models import ModelConfig
from ..runtime import PRECISIONS
from ..validate import MAX_SEED, check_fields, config_field

MAX_STEPS = 10**9  # bounds of the step counters and the batch: far beyond any run, far below an overflow
MAX_BATCH = 4096


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    # data
    data_source: str = config_field("auto", "CIFAR-10: auto | torchvision | folder | sample; any class folders "
                                            "(your own data, resized to --image-size): folders",
                                    choices=("auto", "torchvision", "folder", "sample", "folders"))
    data_root: str | None = config_field(None, "folder or .tar.gz; None: the repository's data/ (or $CGAN_COURSE_CIFAR10)",
                                         nonempty=True)
    test_fraction: float = config_field(0.1, "folders without a test/ split: the share of each class held out",
                                        lo=0, hi=1, hi_open=True)
    skip_unreadable: bool = config_field(False, "folders: leave out files that cannot be decoded (counted) "
                                                "instead of stopping with their list")
    hflip: bool = config_field(True, "random horizontal flips of the real images")
    # optimisation
    steps: int = config_field(2000, "generator updates", lo=1, hi=MAX_STEPS)
    batch_size: int = config_field(64, "images per batch", lo=1, hi=MAX_BATCH)
    d_steps: int = config_field(1, "discriminator updates per generator update", lo=1, hi=100)
    lr_g: float = config_field(2e-4, "generator learning rate (Adam)", lo=0, lo_open=True, hi=1)
    lr_d: float = config_field(2e-4, "discriminator learning rate (Adam)", lo=0, lo_open=True, hi=1)
    beta1: float = config_field(0.0, "Adam beta1: 0.0 for hinge/SN models (SNGAN, BigGAN), 0.5 for DCGAN", lo=0, hi=1, hi_open=True)
    beta2: float = config_field(0.999, "Adam beta2", lo=0, hi=1, hi_open=True)
    loss: str = config_field("auto", "bce | hinge; auto: bce for classic, hinge for projection", choices=("auto", *LOSSES))
    ema_decay: float = config_field(0.999, "EMA of G's weights, used for sampling; 0 turns it off", lo=0, hi=1,
                                    hi_open=True)
    ema_start: int = config_field(0, "step at which averaging starts (before it the EMA copies G)", lo=0, hi=MAX_STEPS)
    fake_labels: str = config_field("uniform", "labels of the D step's fakes: 'uniform' random or 'real' (the real batch's)",
                                    choices=("uniform", "real"))
    reuse_fakes: bool = config_field(False, "the G step reuses the last D step's z and labels instead of drawing new ones")
    diffaug: str = config_field("", "DiffAugment ops, e.g. 'color,translation,cutout'; '' = off")
    ac_weight: float = config_field(0.0, "AC-GAN: weight of the class head's cross-entropy (D names the class of real "
                                         "images, G makes D's head name the requested one); needs --class-head",
                                  lo=0, hi=100)
    # run
    seed: int = config_field(0, "seed of the initial weights, the noise and the data order", lo=0, hi=MAX_SEED)
    device: str = config_field("auto", "auto | cpu | cuda | cuda:1 | mps", nonempty=True)
    precision: str = config_field("auto", "auto | fp32 | bf16 | fp16 (auto: bf16 where the GPU or CPU computes it "
                                  "natively, fp16 with loss scaling on other GPUs, fp32 on other CPUs and MPS)",
                                  choices=PRECISIONS)
    tf32: bool = config_field(False, "let CUDA run fp32 matmuls and convolutions as TF32 (faster on Ampere and newer, "
                             "10-bit mantissa); off so that --precision fp32 means fp32")
    channels_last: str = config_field("auto", "auto | on | off (auto: on for CUDA and CPU, off for MPS)",
                                      choices=("auto", "on", "off"))
    compile: bool = config_field(False, "torch.compile G and D (CUDA; slow to start)")
    threads: int = config_field(0, "CPU threads for torch; 0 = all cores", lo=0, hi=1024)
    max_minutes: float = config_field(0.0, "stop (and checkpoint) after this wall time; 0 = no limit", lo=0, hi=1e6)
    out: str = config_field("runs/cgan", "run folder: checkpoint.pt, log.csv, samples/", nonempty=True)
    log_every: int = config_field(50, "steps per row of log.csv (and at the last step); 0 = no log", lo=0, hi=MAX_STEPS)
    sample_every: int = config_field(500, "steps per sample grid in samples/ (and at the end); 0 = no grids", lo=0,
                                     hi=MAX_STEPS)
    ckpt_every: int = config_field(500, "steps per checkpoint; 0 = only at the end (and on Ctrl-C or --max-minutes)",
                                   lo=0, hi=MAX_STEPS)
    progress: bool = config_field(True, "tqdm progress bar")
    resume: bool = config_field(False, "continue from <out>/checkpoint.pt (starts afresh if there is none)")
    overwrite: bool = config_field(False, "start over in an --out that holds a run: deletes its checkpoint, log and samples")
    init_from: str | None = config_field(None, "start a new run from a compact training state (e.g. "
                                         "data/pretrained/train_state.pt): G, D and EMA weights and the step count; "
                                         "fresh optimisers and data order. A D class head it lacks starts fresh. "
                                         "Read when the run starts; --resume continues from the run's checkpoint",
                                         nonempty=True)

    def __post_init__(self):
        if isinstance(self.model, dict):
            self.model = ModelConfig(**self.model)
        if not isinstance(self.model, ModelConfig):
            raise CourseError(f"model must be a ModelConfig or a dict of its fields, got {type(self.model).__name__}")
        check_fields(self)  # types and ranges, declared on the fields above
        if (self.ac_weight > 0) != self.model.class_head:
            raise CourseError("ac_weight > 0 and model.class_head=True go together (the class head is trained only "
                              f"by that loss); got ac_weight {self.ac_weight}, class_head {self.model.class_head}")
        if self.resume and self.overwrite:
            raise CourseError("pass --resume (continue the run in --out) or --overwrite (start it over), not both")
        diff_augment(torch.zeros(1, 3, 8, 8), self.diffaug)  # fails early on an unknown op

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# Fields a resume may change: how long the run goes, where it writes, and how it computes (device,
# number formats, kernels), never what it computes. Every other field (the model, the data and its
# order, the optimiser, the losses, the seed) must match the checkpoint, or the resumed run would
# silently differ from the one its checkpoint and config describe.
RESUME_MAY_CHANGE = frozenset({
    "steps", "max_minutes", "out", "resume", "overwrite", "log_every", "sample_every", "ckpt_every", "progress",
    "data_root",  # the same data may sit elsewhere on another machine; data_source must match
    "init_from",  # read only when a run starts; a resume continues from its own checkpoint
    "device", "threads", "precision", "tf32", "channels_last", "compile",
})


def resolved_loss(cfg: TrainConfig) -> str:
    """``cfg.loss``, with "auto" read as each family's own loss (kept unresolved in the config so
    ``dataclasses.replace(cfg, model=...)`` switches the loss with the family)."""
    if cfg.loss != "auto":
        return cfg.loss
    return "bce" if cfg.model.arch == "classic" else "hinge"
