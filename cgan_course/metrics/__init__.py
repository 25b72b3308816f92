"""Measuring a conditional GAN: Fréchet distance (FID), intra-class FD, Inception Score, label
fidelity, class control and per-class recall, each returned with its provenance.

    fd.py         the Fréchet distance and running feature statistics (the maths)
    features.py   the two feature spaces behind one interface (course classifier, InceptionV3)
    reference.py  statistics of real images (cached) and of a generator's samples
    scores.py     the scores: FID, intra-FD, IS, label fidelity, class control, recall
    kid.py        the Kernel Inception Distance (unbiased, so fair at small sample sizes)
    memorisation.py  does the generator copy its training images? (FD cannot tell)

The Fréchet distance compares two clouds of image features through their Gaussian fits:

    FD = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))

where (S1 S2)^(1/2) is the *matrix* square root. The number depends on the feature space, the
sample count and the reference set, so every score here is a ``Score`` that carries them:
``FD_classifier = 12.3 (classifier features, 10,000 samples vs train split, cifar10-jpg mirror)``.
"""
from .kid import (kid, kid_unbiased_mmd2, polynomial_kernel)
from .memorisation import (memorisation_ratio, nearest_training_neighbours)
from .fd import RunningStats, frechet_distance
from .features import (
                       INCEPTION_ENV_VAR,
                       INCEPTION_FILE,
                       INCEPTION_SHA256_PREFIX,
                       INCEPTION_URL,
                       ClassifierFeatures,
                       FeatureExtractor,
                       InceptionFeatures,
)
from .reference import (
                       FeatureStats,
                       cache_dir,
                       generator_stats,
                       image_stats,
                       reference_stats,
                       stats_from_features,
)
from .scores import (
                       CONTROL_PAIRS,
                       Score,
                       class_control,
                       class_morph_curve,
                       class_recall,
                       evaluate_generator,
                       fd_between,
                       fid,
                       inception_score,
                       inception_score_from_logits,
                       intra_fid,
                       label_fidelity,
                       paired_label_fidelity,
                       read_confusion,
                       wilson_interval,
)
