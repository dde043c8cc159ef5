"""make_tf_dataset and load_images: decode once, augment per epoch, same pixels as inference."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imaging import DatasetError, Preprocess, load_images, make_tf_dataset

pytestmark = pytest.mark.xdist_group("imaging_tf")

PRE = Preprocess(size=16)


def write_images(folder: Path, n: int = 5) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        path = folder / f"part_{i}.png"
        Image.fromarray(rng.integers(0, 256, (24, 24), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


def collect(ds) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds], strict=True)
    return np.concatenate(xs), np.concatenate(ys)


def test_dataset_yields_model_input_and_int_labels(tmp_path):
    paths = write_images(tmp_path)
    ds = make_tf_dataset(paths, [0, 1, 0, 1, 1], PRE, batch_size=2)
    shapes = [(x.shape, x.dtype.name, y.dtype.name) for x, y in ds]
    assert shapes[0] == ((2, 16, 16, 1), "float32", "int32")
    assert [s[0][0] for s in shapes] == [2, 2, 1]


def test_dataset_pixels_equal_inference_preprocessing(tmp_path):
    paths = write_images(tmp_path)
    x, y = collect(make_tf_dataset(paths, [0, 1, 0, 1, 1], PRE, batch_size=4))
    expected, errors = load_images(paths, PRE)
    assert errors == []
    np.testing.assert_array_equal(x, expected)
    np.testing.assert_array_equal(y, [0, 1, 0, 1, 1])


def test_uncached_dataset_gives_the_same_pixels(tmp_path):
    paths = write_images(tmp_path)
    cached, _ = collect(make_tf_dataset(paths, [0] * 5, PRE, cache=True))
    streamed, _ = collect(make_tf_dataset(paths, [0] * 5, PRE, cache=False))
    np.testing.assert_array_equal(cached, streamed)


def test_labels_none_yields_images_only(tmp_path):
    paths = write_images(tmp_path, n=3)
    batches = list(make_tf_dataset(paths, None, PRE, batch_size=3))
    assert len(batches) == 1 and batches[0].shape == (3, 16, 16, 1)


def test_augment_is_applied_to_uint8_before_normalizing(tmp_path):
    paths = write_images(tmp_path, n=3)
    seen = []

    def invert(u8: np.ndarray) -> np.ndarray:
        seen.append((u8.dtype, u8.shape))
        return 255 - u8

    plain, _ = collect(make_tf_dataset(paths, [0, 1, 0], PRE))
    flipped, _ = collect(make_tf_dataset(paths, [0, 1, 0], PRE, augment=invert))
    assert seen[0] == (np.uint8, (16, 16))
    np.testing.assert_allclose(flipped, 1.0 - plain, atol=1e-6)


def test_seeded_augment_repeats_per_seed_and_varies_per_epoch(tmp_path):
    paths = write_images(tmp_path, n=4)

    def noise(u8: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return np.clip(u8.astype(int) + rng.integers(-20, 21, u8.shape), 0, 255).astype(np.uint8)

    def epochs(seed: int) -> list[np.ndarray]:
        ds = make_tf_dataset(paths, [0, 1, 0, 1], PRE, shuffle=True, seed=seed, augment=noise)
        return [collect(ds)[0] for _ in range(2)]

    first, again = epochs(3), epochs(3)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[0], first[1])


def test_corrupt_file_stops_training_with_its_name(tmp_path):
    paths = write_images(tmp_path, n=2)
    bad = tmp_path / "broken.png"
    bad.write_bytes(Path(paths[0]).read_bytes()[:40])
    with pytest.raises(
        DatasetError, match=r"1 of 3 images cannot be read: .*broken.png: file is truncated"
    ):
        make_tf_dataset([*paths, str(bad)], [0, 1, 1], PRE)


def test_string_labels_are_refused(tmp_path):
    paths = write_images(tmp_path, n=2)
    with pytest.raises(DatasetError, match="labels_to_index"):
        make_tf_dataset(paths, ["ok", "def"], PRE)


def test_load_images_reports_bad_files_and_keeps_the_rest(tmp_path):
    paths = write_images(tmp_path, n=2)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    x, errors = load_images([paths[0], str(empty), paths[1]], PRE)
    assert x.shape == (2, 16, 16, 1) and x.dtype == np.float32
    assert [(e.index, e.source, e.reason) for e in errors] == [
        (1, str(empty), "file is empty (0 bytes)")
    ]
