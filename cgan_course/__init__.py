"""cgan_course: the helper package behind the conditional-GAN course notebooks.

A house of four layers; a module imports only from its own layer or those below
(``tests/test_layers.py`` enforces it):

    foundation   errors, validate, paths, files, runtime, runlock
    data, nets   data/ (CIFAR-10, your class folders, cache, batches), models, losses, diffaugment, checkpoints
    learning     training/ (config, recipes, the step, the loop, resume), sampling, metrics/ (FD, features,
                 scores), classifier, pretrained, toy
    for people   exercises/ (one file per notebook), build, grade, run_notebook, widgets, serve, release,
                 course, site, figures, diagrams

``cgan_course.train`` is the training entry point (``python -m cgan_course.train``). Importing the
package never needs a GPU; the device is chosen at run time.
"""
__version__ = "0.1.0"
