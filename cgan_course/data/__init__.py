"""CIFAR-10 the way a course needs it: several sources, one cache, clear errors, fast batches.

    base.py        the class names, image sizes and error types every other file shares
    cifar10.py     load_cifar10: the official batches, a class-folder tree or tarball, the sample
    decode.py      image files to uint8 arrays (any format, bounded sizes, unreadable files reported)
    cache.py       the .npz cache of decoded images, keyed by the files it was made from
    folders.py     load_class_folders: your own classes, the recorded test split, subsets
    transforms.py  uint8 <-> [-1, 1], channel statistics, flips
    batches.py     DeviceBatches: the split held on the device, shuffled by a seeded generator
    cli.py         python -m cgan_course.data

`load_cifar10` returns the whole split as two tensors, ``images`` ``uint8 [N, 3, 32, 32]`` and
``labels`` ``int64 [N]``. CIFAR-10 is 180 MB as uint8, so holding it in memory (or on the GPU)
is cheaper than any DataLoader: decoding happens once, then every epoch is tensor indexing.
"""
from ..paths import (  # where the data is: read as data.SAMPLE_ROOT by notebooks
                      CACHE_ENV_VAR,
                      SAMPLE_ROOT,
)
from ..paths import CIFAR10_ENV_VAR as ENV_VAR
from .base import CLASSES, IMAGE_SIZES, DatasetError, SkippedFilesWarning
from .batches import CIFAR10Tensors, DeviceBatches
from .cifar10 import (
                      OFFICIAL_MD5,
                      SOURCES,
                      describe_source,
                      load_cifar10,
                      load_image_folder,
                      resolve_source,
)
from .cli import main
from .decode import IMAGE_SUFFIXES, MAX_IMAGE_PIXELS, MAX_MEMBER_BYTES, OWN_SUFFIXES
from .folders import ClassFolderData, load_class_folders, make_subset, split_record_path
from .transforms import (
                      channel_stats,
                      from_unit_range,
                      random_hflip,
                      standardize,
                      to_unit_range,
)
