"""Training a conditional GAN: the names notebooks and scripts import, and the command line.

    python -m cgan_course.train --help
    python -m cgan_course.train --steps 2000 --out runs/demo             # CPU, GPU or MPS
    python -m cgan_course.train --resume --out runs/demo                 # continue exactly
    torchrun --nproc_per_node=4 -m cgan_course.train --out runs/ddp      # DistributedDataParallel

The code lives in ``cgan_course.training`` (one file per concept; ``training/step.py`` is the step a
learner reads). The same ``train(cfg)`` runs in notebooks, in the CLI and in the tests.
"""
from .training import *  # noqa: F401,F403  (the public names, listed in training.__all__)
from .training import __all__  # noqa: F401
from .training.cli import main

if __name__ == "__main__":
    main()
