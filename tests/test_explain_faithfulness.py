"""Faithfulness metrics: deletion/insertion AUC, ROAD and its noisy linear imputation."""

import numpy as np
import pytest

from explain import faithfulness as f
from explain.layers import ExplainError


def test_deletion_and_insertion_auc_of_a_mean_brightness_model():
    image = np.ones((4, 4), np.float32)
    cam = np.arange(16, dtype=np.float32).reshape(4, 4)

    def predict(batch):
        return batch.reshape(len(batch), -1).mean(axis=1)

    deletion, insertion = f.deletion_insertion_auc(predict, image, cam, steps=4)
    # score falls linearly 1 -> 0 with deletion and rises 0 -> 1 with insertion
    assert deletion == pytest.approx(0.5) and insertion == pytest.approx(0.5)


def test_deletion_removes_the_hottest_pixels_first():
    image = np.zeros((1, 4), np.float32)
    image[0, 3] = 1.0  # the only evidence
    cam = np.array([[0.0, 0.1, 0.2, 1.0]], np.float32)

    def predict(batch):
        return batch[:, 0, 3, 0]

    deletion, insertion = f.deletion_insertion_auc(predict, image, cam, steps=4)
    # deletion: 1, 0, 0, 0, 0 -> trapezoid 0.125; insertion: 0, 1, 1, 1, 1 -> 0.875
    assert deletion == pytest.approx(0.125) and insertion == pytest.approx(0.875)


def test_imputation_of_one_pixel_is_the_weighted_mean_of_its_neighbours():
    image = np.arange(9, dtype=np.float32).reshape(3, 3)
    removed = np.zeros((3, 3), bool)
    removed[1, 1] = True
    filled = f.noisy_linear_impute(image, removed, noise=0.0)
    direct = (1 + 3 + 5 + 7) / 6
    diagonal = (0 + 2 + 6 + 8) / 12
    assert filled[1, 1] == pytest.approx(direct + diagonal)  # weights sum to 1
    np.testing.assert_array_equal(filled[~removed], image[~removed])


def test_imputation_reproduces_a_linear_ramp_inside_a_large_hole():
    """A harmonic fill of a linear function is the function itself (no leak of the hole)."""
    ys, xs = np.mgrid[0:24, 0:24]
    image = (0.02 * xs + 0.01 * ys).astype(np.float32)
    removed = np.zeros((24, 24), bool)
    removed[5:19, 4:20] = True
    filled = f.noisy_linear_impute(image, removed, noise=0.0)
    np.testing.assert_allclose(filled, image, atol=1e-5)


def test_imputation_noise_is_seeded_and_scaled_by_the_value_range():
    image = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    removed = np.zeros((8, 8), bool)
    removed[2:6, 2:6] = True
    a = f.noisy_linear_impute(image, removed, noise=0.05, seed=3)
    b = f.noisy_linear_impute(image, removed, noise=0.05, seed=3)
    clean = f.noisy_linear_impute(image, removed, noise=0.0)
    np.testing.assert_array_equal(a, b)
    assert 0.01 < np.std(a[removed] - clean[removed]) < 0.1


def _evidence_model(y0, y1, x0, x1):
    """Probability = mean brightness inside a fixed window: the evidence lives only there."""

    def predict(batch):
        return batch[:, y0:y1, x0:x1].reshape(len(batch), -1).mean(axis=1)

    return predict


def test_road_ranks_a_faithful_map_above_a_shuffled_one():
    rng = np.random.default_rng(0)
    image = rng.uniform(0.0, 0.2, (32, 32, 1)).astype(np.float32)
    image[10:18, 12:20] = 1.0
    predict = _evidence_model(10, 18, 12, 20)
    faithful = np.zeros((32, 32), np.float32)
    faithful[10:18, 12:20] = 1.0
    faithful += rng.uniform(0, 0.01, faithful.shape).astype(np.float32)
    shuffled = rng.permutation(faithful.ravel()).reshape(32, 32)
    good = f.road(predict, image, faithful)
    bad = f.road(predict, image, shuffled)
    assert good["road"] > bad["road"] + 0.1
    assert min(good["morf"]) < -0.5  # removing the hot window destroys the evidence
    assert max(abs(v) for v in good["lerf"][:5]) < 0.05  # removing cold pixels does not


def test_deletion_auc_ranks_a_faithful_map_above_a_shuffled_one():
    rng = np.random.default_rng(1)
    image = rng.uniform(0.0, 0.2, (32, 32, 1)).astype(np.float32)
    image[4:12, 20:28] = 1.0
    predict = _evidence_model(4, 12, 20, 28)
    faithful = np.zeros((32, 32), np.float32)
    faithful[4:12, 20:28] = 1.0
    shuffled = rng.permutation(faithful.ravel()).reshape(32, 32)
    good_del, good_ins = f.deletion_insertion_auc(predict, image, faithful)
    bad_del, bad_ins = f.deletion_insertion_auc(predict, image, shuffled)
    assert good_del < bad_del and good_ins > bad_ins


def test_road_sends_every_perturbed_copy_through_one_batch():
    calls = []

    def predict(batch):
        calls.append(len(batch))
        return batch.reshape(len(batch), -1).mean(axis=1)

    f.road(predict, np.ones((8, 8, 1), np.float32), np.random.default_rng(0).random((8, 8)))
    assert calls == [1 + 2 * len(f.ROAD_FRACTIONS)]


@pytest.mark.parametrize("fractions", [(), (0.0, 0.5), (0.5, 1.0)])
def test_road_refuses_fractions_outside_the_open_unit_interval(fractions):
    with pytest.raises(ExplainError, match="fractions"):
        f.road(lambda b: b.mean(axis=(1, 2, 3)), np.ones((4, 4)), np.ones((4, 4)), fractions)


def test_a_map_of_the_wrong_size_is_refused():
    with pytest.raises(ExplainError, match="does not match"):
        f.deletion_insertion_auc(lambda b: b.mean(), np.ones((8, 8)), np.ones((4, 4)))
