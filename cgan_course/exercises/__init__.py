"""Self-checks for the notebooks' exercises: ``check_<name>(...)`` says what is right and what is not.

Each check prints one line per criterion (✓ right, ✗ wrong, with a hint that names the fix),
returns ``None`` when everything is right and raises ``NotYetRight`` otherwise, so an answer cell
fails visibly, like an autograder's test. Checks recompute what they can from the learner's own
inputs (their batch, their training run, their generator), so an answer is judged against the
data it came from rather than against numbers that change with the machine or the generator.

One file per notebook (``nbNN.py``), and ``core.py`` for what they share.

``show("01")`` lists a notebook's exercises, their checks and where the reference solutions live
(``solutions/exNN.py``: ``solve_<k>()`` returns the keyword arguments of check ``k``; the test
suite feeds every solution to its check, so neither can rot).

Why not otter-grader or nbgrader: both need their own folder layout and an instructor-side build
step (otter: a ``tests/`` folder of OK-format files per question and ``otter assign``; nbgrader: a
course database and release/collect), which a self-study reader of this repository would have to
install and learn first. Plain functions work in any kernel, offline, give feedback about the
course's own objects (a ``ToyResult``, a generator, a tensor of images) and are tested by pytest
like the rest of the package.
"""
from .core import (EXERCISES, Exercise, Feedback, NotYetRight, call_learner, check_solutions, show)
from .nb01 import (check_coverage_over_training, check_minimax_toy, check_mixture_value,
                    check_pair_conditioning, check_d_loss_dip, _mixture_value)
from .nb02 import (check_channel_stats, check_crop_padding, check_diffaugment_ops, check_unit_range)
from .nb03 import (check_upsampling_blocks, check_bias_head, check_power_iteration,
                    check_conditioning_params, check_ema_half_life, check_hinge_zero_gradient)
from .nb04 import (fidelity_difference, check_classic_vs_projection, check_diffaug_effect,
                    check_init_ablation, check_resumed_run)
from .nb05 import (chi_mean_std, truncated_variance, check_latent_shell, check_truncated_norms)
from .nb06 import (check_fd_extrapolation, check_label_shuffler, check_inception_score)
from .nb07 import (check_seed_columns, check_midpoint_norms, morph_rise, check_morph_comparison,
                    check_render_all_classes)
from .nb08 import (check_split_rule, check_judge_ceiling, check_client)
