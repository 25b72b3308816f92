"""Issue 23: KID against hand-written loops and clean-fid's formula, its behaviour on
alike and different distributions, the nearest-neighbour search against brute force, and the
memorisation check on a copying and a fresh 'generator'. Every test runs in well under a second."""
import numpy as np
import pytest
import torch

from cgan_course.errors import CourseError
from cgan_course.metrics import kid, kid_unbiased_mmd2, memorisation_ratio, nearest_training_neighbours


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# ----------------------------------------------------------------------------------------------
# KID: the number itself


def _k(x, y):
    """The kernel for two single rows, written out: (x.y / d + 1)^3."""
    d = len(x)
    return (sum(float(x[i]) * float(y[i]) for i in range(d)) / d + 1) ** 3


def _hand_mmd2(xs, ys):
    """Unbiased MMD^2 with explicit loops (Gretton et al. 2012, eq. 3)."""
    m, n = len(xs), len(ys)
    xx = sum(_k(xs[i], xs[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(_k(ys[i], ys[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(_k(xs[i], ys[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_kid_matches_hand_loops_when_the_subset_is_the_whole_set():
    a, b = _randn(5, 3, seed=1), _randn(5, 3, seed=2) + 0.3
    mean, std = kid(a, b, subsets=4, subset_size=1000)
    assert mean == pytest.approx(_hand_mmd2(a, b), rel=1e-12, abs=1e-15)
    assert std == pytest.approx(0, abs=1e-12)  # every subset is both whole sets, in some order


def test_kid_with_unequal_sizes_uses_subsets_of_the_smaller_size():
    a, b = _randn(5, 3, seed=3), _randn(6, 3, seed=4)
    mean, _ = kid(a, b, subsets=1)
    leave_one_out = [_hand_mmd2(a, torch.cat([b[:j], b[j + 1:]])) for j in range(6)]  # m = 5 rows of b
    assert min(abs(mean - v) for v in leave_one_out) < 1e-12
    assert abs(mean - _hand_mmd2(a, b)) > 1e-6  # and not all 6 rows (the test can tell)


def test_unbiased_mmd2_helper_matches_hand_loops_for_unequal_sizes():
    x, y = _randn(5, 3, seed=5), _randn(6, 3, seed=6)
    kern = lambda p, q: (p @ q.T / 3 + 1) ** 3
    assert kid_unbiased_mmd2(kern(x, x), kern(y, y), kern(x, y)).item() == pytest.approx(_hand_mmd2(x, y), rel=1e-12)


def test_kid_matches_clean_fid_kernel_distance_formula():
    """clean-fid's kernel_distance subset term (cleanfid/fid.py), transcribed in NumPy."""
    x, y = _randn(40, 7, seed=7).numpy(), _randn(40, 7, seed=8).numpy() * 1.2
    n, m = x.shape[1], x.shape[0]
    a = (x @ x.T / n + 1) ** 3 + (y @ y.T / n + 1) ** 3
    b = (x @ y.T / n + 1) ** 3
    expected = ((a.sum() - np.diag(a).sum()) / (m - 1) - b.sum() * 2 / m) / m
    assert kid(torch.from_numpy(x), torch.from_numpy(y), subsets=2)[0] == pytest.approx(expected, rel=1e-10)


# ----------------------------------------------------------------------------------------------
# KID: behaviour


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kid_is_near_zero_for_one_distribution_and_positive_for_shifted_ones(seed):
    a, b = _randn(300, 16, seed=10 + seed), _randn(300, 16, seed=20 + seed)
    same, same_std = kid(a, b, subsets=20, subset_size=200, seed=seed)
    shifted, _ = kid(a, b + 0.5, subsets=20, subset_size=200, seed=seed)
    wider, _ = kid(a, b * 1.5, subsets=20, subset_size=200, seed=seed)
    assert abs(same) < 0.03 and same_std < 0.03  # measured: |mean| <= 0.006
    assert shifted > 0.5 and wider > 0.1  # measured: ~0.9-1.1 and ~0.27-0.30


def test_kid_can_be_negative():
    """Unbiased: on alike sets about half the estimates fall below 0 (a clamp would bias it)."""
    a = _randn(60, 4, seed=30)
    values = [kid(a, _randn(60, 4, seed=31 + s), subsets=1)[0] for s in range(10)]
    assert min(values) < 0 < max(values)


def test_kid_does_not_depend_on_row_order_or_side():
    a, b = _randn(30, 6, seed=40), _randn(30, 6, seed=41) + 0.2
    base = kid(a, b, subsets=3)[0]
    assert kid(a.flip(0), b[torch.randperm(30)], subsets=3)[0] == pytest.approx(base, rel=1e-12)
    assert kid(b, a, subsets=3)[0] == pytest.approx(base, rel=1e-12)


def test_kid_row_order_changes_only_the_subset_draw():
    """With subsets smaller than the sets, reordering rows changes which rows a subset holds, so
    the value moves, but only within the spread over subsets."""
    a, b = _randn(200, 6, seed=42), _randn(200, 6, seed=43) + 0.3
    m1, s1 = kid(a, b, subsets=50, subset_size=50)
    m2, _ = kid(a.flip(0), b.flip(0), subsets=50, subset_size=50)
    assert m1 != m2 and abs(m1 - m2) < 6 * s1 / 50 ** 0.5  # a few standard errors of the mean


def test_kid_is_reproducible_for_a_seed():
    a, b = _randn(100, 4, seed=50), _randn(100, 4, seed=51)
    assert kid(a, b, subsets=5, subset_size=20, seed=3) == kid(a, b, subsets=5, subset_size=20, seed=3)
    assert kid(a, b, subsets=5, subset_size=20, seed=3) != kid(a, b, subsets=5, subset_size=20, seed=4)


def test_kid_computes_in_float64_whatever_the_input():
    a, b = _randn(50, 8, seed=52), _randn(50, 8, seed=53) + 0.1
    assert kid(a.float(), b.float(), subsets=2)[0] == pytest.approx(kid(a.float().double(), b.float().double(),
                                                                          subsets=2)[0], rel=1e-12)


@pytest.mark.parametrize("a, b, kwargs, message", [
    (torch.zeros(10), torch.zeros(10, 3), {}, "features_a must be a real tensor of shape [N, D]"),
    (np.zeros((10, 3)), torch.zeros(10, 3), {}, "features_a must be a real tensor"),
    (torch.zeros(10, 3), torch.zeros(10, 4), {}, "features_a has 3 values per row and features_b has 4"),
    (torch.zeros(1, 3), torch.zeros(10, 3), {}, "features_a must be at least 2 rows"),
    (torch.zeros(10, 3), torch.zeros(10, 0), {}, "features_b must be at least 2 rows of at least 1 value"),
    (torch.zeros(10, 3), torch.full((10, 3), float("nan")), {}, "features_b has 10 of 10 rows with NaN or inf"),
    (torch.zeros(10, 3), torch.zeros(10, 3), {"subsets": 0}, "subsets must be an integer in [1, "),
    (torch.zeros(10, 3), torch.zeros(10, 3), {"subsets": 10.0}, "subsets must be an integer"),
    (torch.zeros(10, 3), torch.zeros(10, 3), {"subset_size": 1}, "subset_size must be an integer in [2, "),
    (torch.zeros(10, 3), torch.zeros(10, 3), {"seed": True}, "seed must be an integer"),
])
def test_kid_refuses_bad_inputs_with_one_line(a, b, kwargs, message):
    with pytest.raises(CourseError) as err:
        kid(a, b, **kwargs)
    assert message in str(err.value) and "\n" not in str(err.value)


# ----------------------------------------------------------------------------------------------
# Nearest training neighbours


@pytest.mark.parametrize("k", [1, 4])
@pytest.mark.parametrize("batch, train_batch", [(8, 10), (37, 53), (1, 1), (100, 7)])
def test_nearest_neighbours_match_brute_force_across_block_boundaries(k, batch, train_batch):
    q, t = _randn(37, 5, seed=60).float(), _randn(53, 5, seed=61).float()  # 37 = 4 x 8 + 5, 53 = 5 x 10 + 3
    dist, idx = nearest_training_neighbours(q, t, k=k, batch=batch, train_batch=train_batch)
    full = torch.cdist(q.double(), t.double())  # (37, 53)
    expected_d, expected_i = full.topk(k, dim=1, largest=False)
    assert idx.shape == dist.shape == (37, k) and dist.dtype == torch.float64
    assert torch.equal(idx, expected_i)
    assert torch.equal(idx[:, 0], full.argmin(dim=1))
    torch.testing.assert_close(dist, expected_d, rtol=1e-12, atol=1e-12)


def test_nearest_neighbours_flatten_images_and_find_exact_copies_at_zero():
    train = torch.rand(20, 3, 4, 4, generator=torch.Generator().manual_seed(62))
    queries = train[[7, 3, 19]]
    dist, idx = nearest_training_neighbours(queries, train, k=2, batch=2, train_batch=6)
    assert idx[:, 0].tolist() == [7, 3, 19]
    assert dist[:, 0].tolist() == [0.0, 0.0, 0.0] and (dist[:, 1] > 0).all()
    assert torch.equal(idx, nearest_training_neighbours(queries.flatten(1), train.flatten(1), k=2)[1])


def test_nearest_neighbours_accept_uint8_pixels():
    g = torch.Generator().manual_seed(63)
    train = torch.randint(0, 256, (30, 12), generator=g, dtype=torch.uint8)
    q = torch.randint(0, 256, (9, 12), generator=g, dtype=torch.uint8)
    _, idx = nearest_training_neighbours(q, train, train_batch=7)
    assert torch.equal(idx[:, 0], torch.cdist(q.double(), train.double()).argmin(1))  # no uint8 wrap-around


@pytest.mark.parametrize("q, t, kwargs, message", [
    (torch.zeros(3, 4), torch.zeros(5, 4), {"k": 6}, "k must be an integer in [1, 5]"),
    (torch.zeros(3, 4), torch.zeros(5, 5), {}, "queries has 4 values per row and train has 5"),
    (torch.zeros(3, 4), torch.zeros(0, 4), {}, "train must be at least 1 rows"),
    (torch.zeros(4), torch.zeros(5, 4), {}, "queries must be a real tensor"),
    (torch.full((3, 4), float("inf")), torch.zeros(5, 4), {}, "queries has 3 of 3 rows with NaN or inf"),
    (torch.zeros(3, 4), torch.zeros(5, 4), {"batch": 0}, "batch must be an integer in [1, "),
])
def test_nearest_neighbours_refuse_bad_inputs(q, t, kwargs, message):
    with pytest.raises(CourseError) as err:
        nearest_training_neighbours(q, t, **kwargs)
    assert message in str(err.value)


# ----------------------------------------------------------------------------------------------
# Memorisation


def _split(seed=70):
    data = _randn(700, 8, seed=seed).float()
    return data[:400], data[400:600], data[600:]  # train, test (held out), fresh 'generator' samples


def test_memorisation_flags_a_generator_that_copies_training_rows():
    train, test, _ = _split()
    copies = train[torch.randperm(400, generator=torch.Generator().manual_seed(71))[:100]]
    out = memorisation_ratio(copies, train, test)
    assert out["median_gen_to_train"] == 0 and out["ratio"] == 0
    assert out["fraction_below"] == 1.0 and out["fraction_below_ci95"][0] > 0.9
    assert (out["n_gen"], out["n_test"], out["n_train"]) == (100, 200, 400)


def test_memorisation_flags_nearly_exact_copies():
    train, test, _ = _split()
    noisy = train[:100] + 1e-3 * _randn(100, 8, seed=72).float()
    out = memorisation_ratio(noisy, train, test)
    assert out["ratio"] < 0.01 and out["fraction_below"] == 1.0


@pytest.mark.parametrize("seed", [70, 80, 90])
def test_memorisation_does_not_flag_fresh_samples(seed):
    train, test, fresh = _split(seed)
    out = memorisation_ratio(fresh, train, test)
    assert 0.75 < out["ratio"] < 1.33  # measured ~0.95
    assert out["fraction_below"] <= 0.05 and out["fraction_below_ci95"][0] < out["expected_fraction"]


def test_memorisation_refuses_a_test_set_taken_from_training():
    train, _, fresh = _split()
    with pytest.raises(CourseError, match="held-out images"):
        memorisation_ratio(fresh, train, train[:50])
