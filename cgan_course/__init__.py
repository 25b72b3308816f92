"""cgan_course: the helper package behind the conditional-GAN course notebooks.

Modules follow the course outline: ``data`` (CIFAR-10 sources, preprocessing), ``models``
(generators, discriminators), ``losses``, ``train`` (config, loop, checkpoints, CLI, DDP),
``sampling``, ``metrics``, ``classifier``, ``pretrained``, ``widgets`` and ``course`` (runs the
notebooks). Importing the package never needs a GPU; the device is chosen at run time.
"""
__version__ = "0.1.0"
