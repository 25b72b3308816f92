"""The shared class-grid figure: one named row per class."""
import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

from cgan_course.figures import class_grid_figure  # noqa: E402
from cgan_course.models import ModelConfig, build_generator  # noqa: E402


@pytest.mark.parametrize("num_classes,first,rows", [(10, "airplane", 10), (12, "class 0", 12), (0, "", 10)])
def test_rows_carry_the_class_names(num_classes, first, rows):
    G = build_generator(ModelConfig(g_width=8, num_classes=num_classes)).eval()
    ax = class_grid_figure(G, per_class=3).axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert len(labels) == rows and labels[0] == first
    assert ax.images[0].get_array().shape[0] > rows * 32  # every row drawn, padding included
