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


def test_labelled_rows_of_real_images():
    import torch

    from cgan_course.errors import CourseError
    from cgan_course.figures import labelled_rows_figure

    images = torch.randint(0, 256, (6, 3, 64, 64), dtype=torch.uint8)  # uint8, as load_class_folders gives
    ax = labelled_rows_figure(images, ["paper", "rock"]).axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["paper", "rock"]
    assert ax.images[0].get_array().shape[:2] == (2 + 2 * 66, 2 + 3 * 66)  # 2 rows x 3 columns, 2 px padding
    with pytest.raises(CourseError, match="7 images do not fill 2 rows evenly"):
        labelled_rows_figure(images[:1].repeat(7, 1, 1, 1), ["paper", "rock"])
