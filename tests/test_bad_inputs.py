"""The bad-input battery: every entry point meets broken, hostile and unusual input.

Each case is made here: tiny images, tiny CSVs and tiny runs saved through `store` with
few-parameter models (no training). CLIs are called in-process through `main(argv)`; each
refusal must exit 2 with one `error:` line on stderr naming the input, no traceback and no
output file or run folder left behind. Library calls must raise a specific exception that
names the input. Batches must still process every good file. A handful of real subprocesses
check what only a process boundary shows: a FIFO that would block forever, raw tracebacks.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import subprocess
import sys
import threading
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image

import store
from imaging import ImageError, Preprocess, decode_image, read_image
from meltingtank.loader import KampFormatError, load_kamp_csv
from store.review import ReviewError, ReviewLog, ReviewLogUnavailable

REPO = Path(__file__).resolve().parents[1]
SIZE = 16
FEATURES = ["MELT_TEMP", "MOTORSPEED"]
WINDOW = 5


# --- tiny inputs ------------------------------------------------------------------------------


def part(size: int = 48, seed: int = 0) -> np.ndarray:
    """A gray disc on a darker background with mild noise: a plausible 8-bit part image."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    disc = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 3) ** 2
    img = np.where(disc, 150, 60) + rng.normal(0, 6, (size, size))
    return img.clip(0, 255).astype(np.uint8)


def write_png(path: Path, pixels: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), pixels)
    return path


def with_sbit(png: bytes, bits: int, channels: int = 1) -> bytes:
    """The PNG with an sBIT chunk (significant bits per channel) inserted after IHDR."""
    body = bytes([bits] * channels)
    chunk = struct.pack(">I", len(body)) + b"sBIT" + body
    chunk += struct.pack(">I", zlib.crc32(b"sBIT" + body) & 0xFFFFFFFF)
    end_of_ihdr = 8 + 8 + 13 + 4
    return png[:end_of_ihdr] + chunk + png[end_of_ihdr:]


def float_tiff(path: Path, values: np.ndarray) -> Path:
    Image.fromarray(values.astype(np.float32), mode="F").save(path, format="TIFF")
    return path


def kamp_frame(rows: int = 40, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    stamps = pd.date_range("2020-03-04 00:00:00", periods=rows, freq="6s")
    return pd.DataFrame(
        {
            "STD_DT": stamps.strftime("%Y-%m-%d %H:%M:%S"),
            "NUM": np.arange(rows),
            "MELT_TEMP": rng.uniform(400, 500, rows).round(1),
            "MOTORSPEED": rng.uniform(0, 1800, rows).round(1),
            "MELT_WEIGHT": rng.uniform(0, 900, rows).round(1),
            "INSP": rng.uniform(3.1, 3.3, rows).round(2),
            "TAG": np.where(rng.random(rows) < 0.2, "NG", "OK"),
        }
    )


# --- tiny runs, saved through store with few-parameter models ----------------------------------


def _classifier(keras):
    inputs = keras.Input((SIZE, SIZE, 1))
    x = keras.layers.Conv2D(2, 3, padding="same", activation="relu", name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))


def _autoencoder(keras):
    inputs = keras.Input((SIZE, SIZE, 1))
    x = keras.layers.Conv2D(2, 3, padding="same", activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid")(x))


def _lstm(keras):
    inputs = keras.Input((WINDOW, len(FEATURES)))
    x = keras.layers.LSTM(2)(inputs)
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))


def save_run(root: Path, name: str, model, info: dict) -> Path:
    run_dir = store.create_run_dir(name, root)
    store.save_model(run_dir, model)
    store.write_run_info(run_dir, info)
    return run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    import keras

    keras.utils.set_random_seed(0)
    root = tmp_path_factory.mktemp("runs")
    preprocess = Preprocess(size=SIZE).to_dict()
    made = {
        "classifier": save_run(
            root,
            "cls",
            _classifier(keras),
            {
                "kind": "classifier",
                "class_names": ["def_front", "ok_front"],
                "normal_class": "ok_front",
                "defect_class": "def_front",
                "preprocess": preprocess,
                "cam_layer": "conv",
                "img_size": SIZE,
            },
        ),
        "autoencoder": save_run(
            root,
            "ae",
            _autoencoder(keras),
            {
                "kind": "autoencoder",
                "preprocess": preprocess,
                "threshold": 0.5,
                "score": {"map": "mse", "sigma": 0.0, "top_k": 1.0, "normalize": False},
            },
        ),
        "lstm": save_run(
            root,
            "lstm",
            _lstm(keras),
            {
                "kind": "lstm",
                "features": FEATURES,
                "window": WINDOW,
                "scaler": {"type": "minmax", "min": [300.0, 0.0], "max": [541.0, 1800.0]},
                "threshold": 0.5,
            },
        ),
    }
    broken = {
        "empty_model": (lambda d: (d / "model.keras").write_bytes(b"")),
        "corrupt_model": (lambda d: (d / "model.keras").write_bytes(b"PK\x03\x04 not a keras zip")),
        "missing_key": (lambda d: _edit_info(d, lambda i: i.pop("class_names"))),
        "wrong_type": (lambda d: _edit_info(d, lambda i: i.update(class_names="def_front"))),
        "bad_json": (lambda d: (d / "run.json").write_text('{"kind": "classifier",')),
    }
    for name, damage in broken.items():
        target = root / name
        target.mkdir()
        for item in made["classifier"].iterdir():
            (target / item.name).write_bytes(item.read_bytes())
        damage(target)
        made[name] = target
    return made


def _edit_info(run_dir: Path, change: Callable[[dict], object]) -> None:
    info = json.loads((run_dir / "run.json").read_text())
    change(info)
    (run_dir / "run.json").write_text(json.dumps(info))


# --- assertions ---------------------------------------------------------------------------------


def call(main: Callable, argv: list[str], capsys) -> tuple[int, str, str]:
    """Run a CLI's main in-process; argparse refusals arrive as SystemExit."""
    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code
    captured = capsys.readouterr()
    return (0 if code is None else code), captured.out, captured.err


def assert_refused(code: int, err: str, names: str, leftovers: list[Path] = ()) -> None:
    """Exit 2, exactly one error line naming the input, no traceback, nothing left behind."""
    assert code == 2, err
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1, err
    assert names in errors[0], errors[0]
    for path in leftovers:
        assert not Path(path).exists(), f"{path} was left behind"


def no_hang(fn: Callable[[], object], seconds: float = 20.0) -> object:
    """Run fn in a thread; fail (instead of hanging the suite) if it blocks."""
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"hung for {seconds} s"
    if "error" in box:
        raise box["error"]
    return box.get("value")


# --- read_image: refusals -------------------------------------------------------------------------


def _fifo(tmp: Path) -> Path:
    path = tmp / "camera.png"
    os.mkfifo(path)
    return path


def _dev_zero(tmp: Path) -> Path:
    path = tmp / "zero.png"
    path.symlink_to("/dev/zero")
    return path


def _truncated(tmp: Path) -> Path:
    data = cv2.imencode(".png", part())[1].tobytes()
    path = tmp / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    return path


def _nan_tiff(tmp: Path) -> Path:
    values = np.full((16, 16), 0.5, np.float32)
    values[3, 4] = np.nan
    return float_tiff(tmp / "nan.tif", values)


def _inf_tiff(tmp: Path) -> Path:
    values = np.full((16, 16), 0.5, np.float32)
    values[0, 0] = np.inf
    return float_tiff(tmp / "inf.tif", values)


def _zero_width(tmp: Path) -> Path:
    header = struct.pack(">I", 13) + b"IHDR" + struct.pack(">IIBBBBB", 0, 16, 8, 0, 0, 0, 0)
    path = tmp / "zero_width.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + header + b"\x00" * 4)
    return path


def _file(name: str, data: bytes) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        (tmp / name).write_bytes(data)
        return tmp / name

    return make


BAD_FILES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "empty": (_file("empty.png", b""), "empty"),
    "text": (_file("notes.png", b"hello"), "not an image"),
    "random_jpg": (_file("noise.jpg", bytes(range(7, 250))), "not an image"),
    "truncated": (_truncated, "truncated"),
    "fifo": (_fifo, "not a regular file"),
    "dev_zero": (_dev_zero, "not a regular file"),
    "folder": (lambda t: (t / "dir.png").mkdir() or t / "dir.png", "folder"),
    "missing": (lambda t: t / "absent.png", "not found"),
    "gif": (_file("anim.gif", b"GIF89a"), "unsupported"),
    "nan_pixels": (_nan_tiff, "NaN"),
    "inf_pixels": (_inf_tiff, "NaN or infinite"),
    "zero_width": (_zero_width, "zero size"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_read_image_refuses_with_the_file_named(tmp_path, case):
    make, reason = BAD_FILES[case]
    path = make(tmp_path)
    with pytest.raises(ImageError) as info:
        no_hang(lambda: read_image(path))
    assert str(path) in str(info.value) and reason in info.value.reason


def test_read_image_refuses_a_pixel_bomb_from_its_header(tmp_path):
    path = write_png(tmp_path / "big.png", part(64))
    with pytest.raises(ImageError, match="over the limit"):
        read_image(path, max_pixels=1000)


@pytest.mark.parametrize("source", [b"", 12345, None])
def test_read_image_refuses_odd_sources(source):
    with pytest.raises(ImageError):
        read_image(source, name="upload")


# --- read_image: unusual but valid inputs give the right pixels, and say what they guessed ----


def test_12bit_png_with_sbit_uses_its_real_bit_depth():
    raw = np.array([[0, 2048, 4095]] * 3, np.uint16)
    data = with_sbit(cv2.imencode(".png", raw)[1].tobytes(), 12)
    decoded = decode_image(data, name="cam12.png")
    assert decoded.pixels[0].tolist() == [0, 128, 255]
    assert decoded.warnings == []


def test_12bit_png_without_sbit_is_scaled_by_its_maximum_with_a_warning():
    raw = np.array([[0, 1000, 4000]] * 3, np.uint16)
    decoded = decode_image(cv2.imencode(".png", raw)[1].tobytes(), name="cam.png")
    assert decoded.pixels[0, 2] == round(4000 * 255 / 4095)
    assert "12-bit" in decoded.warnings[0] and "sBIT" in decoded.warnings[0]


def test_full_range_16bit_png_keeps_the_full_scale_without_a_warning():
    raw = np.array([[0, 257, 65535]] * 3, np.uint16)
    decoded = decode_image(cv2.imencode(".png", raw)[1].tobytes(), name="full.png")
    assert decoded.pixels[0].tolist() == [0, 1, 255] and decoded.warnings == []


def test_12bit_colour_png_is_scaled_by_sbit_not_truncated():
    raw = np.zeros((4, 4, 3), np.uint16)
    raw[..., 2] = 4095  # red in OpenCV's BGR order
    data = with_sbit(cv2.imencode(".png", raw)[1].tobytes(), 12, channels=3)
    pixels = decode_image(data, name="colour12.png").pixels
    assert pixels[0, 0].tolist() == [255, 0, 0]


def test_multipage_tiff_gives_page_one_with_a_warning(tmp_path):
    pages = [Image.fromarray(part(seed=i)) for i in range(3)]
    path = tmp_path / "stack.tif"
    pages[0].save(path, save_all=True, append_images=pages[1:])
    decoded = decode_image(path)
    assert np.array_equal(decoded.pixels, part(seed=0))
    assert decoded.warnings == ["file holds 3 pages/frames: only page 1 was used"]


def test_animated_png_gives_frame_one_with_a_warning(tmp_path):
    frames = [Image.fromarray(part(seed=i)) for i in range(2)]
    path = tmp_path / "anim.png"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    assert "2 pages/frames" in decode_image(path).warnings[0]


# --- loaders: melting-tank CSVs, runs, the review log ------------------------------------------


def _csv_text(frame: pd.DataFrame, **kwargs) -> str:
    return frame.to_csv(index=False, **kwargs)


BAD_CSVS: dict[str, Callable[[Path], Path]] = {
    "missing_column": lambda p: p.write_text(_csv_text(kamp_frame().drop(columns="MOTORSPEED"))),
    "nan_value": lambda p: p.write_text(_csv_text(kamp_frame().assign(MELT_TEMP=np.nan))),
    "strings": lambda p: p.write_text(_csv_text(kamp_frame().assign(MOTORSPEED="fast"))),
    "unordered_time": lambda p: p.write_text(_csv_text(kamp_frame().iloc[::-1])),
    "duplicate_row": lambda p: p.write_text(_csv_text(kamp_frame().iloc[[0, 1, 2, 2, 3]])),
    "empty": lambda p: p.write_bytes(b""),
    "header_only": lambda p: p.write_text(",".join(kamp_frame().columns) + "\n"),
    "cp949": lambda p: p.write_bytes(
        _csv_text(kamp_frame().rename(columns={"TAG": "판정"})).encode("cp949")
    ),
    "utf16": lambda p: p.write_bytes(_csv_text(kamp_frame()).encode("utf-16")),
    "semicolons": lambda p: p.write_text(_csv_text(kamp_frame(), sep=";")),
    "ragged": lambda p: p.write_text(_csv_text(kamp_frame()) + "1,2,3,4,5,6,7,8,9,10\n"),
    "binary": lambda p: p.write_bytes(bytes(range(256)) * 8),
    "bad_tag": lambda p: p.write_text(_csv_text(kamp_frame().assign(TAG="maybe"))),
    "infinite": lambda p: p.write_text(_csv_text(kamp_frame().assign(MELT_TEMP=np.inf))),
    "bad_dates": lambda p: p.write_text(_csv_text(kamp_frame().assign(STD_DT="yesterday"))),
    "folder": lambda p: p.mkdir(),
    "fifo": lambda p: os.mkfifo(p),
}


@pytest.mark.parametrize("case", sorted(BAD_CSVS))
def test_melting_loader_refuses_with_the_file_named(tmp_path, case):
    path = tmp_path / f"{case}.csv"
    BAD_CSVS[case](path)
    with pytest.raises(KampFormatError) as info:
        no_hang(lambda: load_kamp_csv(path))
    assert path.name in str(info.value)


def test_melting_loader_caps_rows_after_reading_one_more(tmp_path):
    path = tmp_path / "long.csv"
    path.write_text(_csv_text(kamp_frame(50)))
    with pytest.raises(KampFormatError, match="more than 20 rows"):
        load_kamp_csv(path, max_rows=20)
    assert len(load_kamp_csv(path, max_rows=50)) == 50


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("empty_model", r"is empty \(0 bytes\)"),
        ("corrupt_model", "is corrupt or not a Keras model"),
        ("missing_key", "lacks 'class_names'"),
        ("wrong_type", "'class_names' should be a list"),
        ("bad_json", "is not valid JSON"),
    ],
)
def test_broken_runs_raise_run_errors_that_say_what_is_wrong(runs, case, message):
    with pytest.raises(store.RunError, match=message):
        store.load_run(runs[case]).check_complete().load_model()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("garbage", "not a database URL"),
        ("postgresql+pg8000://u@localhost/db", "no database driver"),
        ("mysql://u@localhost/db", "no database driver"),
        ("sqlite:////proc/defectlens/review.db", "review.db"),
    ],
)
def test_bad_database_urls_raise_a_clear_error(monkeypatch, url, message):
    monkeypatch.setenv("DEFECTLENS_DB_URL", url)
    with pytest.raises(ReviewLogUnavailable, match=message) as info:
        ReviewLog()
    assert "DEFECTLENS_DB_URL" in str(info.value)


def test_read_only_database_is_refused_up_front(tmp_path, monkeypatch):
    url = f"sqlite:///file:{tmp_path / 'ro.db'}?mode=ro&uri=true"
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    with pytest.raises(ReviewLogUnavailable, match="cannot open it"):
        ReviewLog(url, images_dir=tmp_path / "images")
    assert not any((tmp_path / "cwd").iterdir())  # no folder named "file:" made here


@pytest.mark.parametrize(
    ("action", "field"),
    [
        (lambda log, item: log.record_decision(item, "maybe", "ana"), "verdict"),
        (lambda log, item: log.record_decision(item, "false_alarm", ""), "reviewer"),
        (lambda log, item: log.create_batch(""), "name"),
        (lambda log, item: log.set_batch_status(1, "lost"), "status"),
    ],
)
def test_review_log_refuses_bad_decisions_by_field(tmp_path, action, field):
    with ReviewLog(f"sqlite:///{tmp_path / 'r.db'}", images_dir=tmp_path / "img") as log:
        batch = log.create_batch("shift")
        item = log.add_item(batch, "a.png", cv2.imencode(".png", part())[1].tobytes())
        with pytest.raises(ReviewError) as info:
            action(log, item)
        assert info.value.field == field
        assert log.history(item).empty


# --- classification/predict.py -------------------------------------------------------------------


@pytest.fixture
def images(tmp_path) -> dict[str, Path]:
    folder = tmp_path / "parts"
    good = [write_png(folder / f"good_{i}.png", part(seed=i)) for i in range(2)]
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    return {"folder": folder, "good": good, "broken": folder / "broken.png"}


def _cls_cases(runs, tmp: Path, images) -> dict[str, tuple[list[str], str]]:
    out = str(tmp / "out" / "p.csv")
    good = str(images["good"][0])
    a_file = tmp / "plain.txt"
    a_file.write_text("x")
    (tmp / "nothing").mkdir()
    return {
        "unknown_run": (["--run", "no_such_run", "--images", good, "--out", out], "no_such_run"),
        "wrong_kind": (["--run", str(runs["lstm"]), "--images", good, "--out", out], "lstm run"),
        "corrupt_model": (
            ["--run", str(runs["corrupt_model"]), "--images", good, "--out", out],
            "model.keras",
        ),
        "missing_key": (
            ["--run", str(runs["missing_key"]), "--images", good, "--out", out],
            "class_names",
        ),
        "empty_folder": (
            ["--run", str(runs["classifier"]), "--images", str(tmp / "nothing"), "--out", out],
            "nothing",
        ),
        "out_is_folder": (
            ["--run", str(runs["classifier"]), "--images", good, "--out", str(tmp)],
            str(tmp),
        ),
        "out_under_a_file": (
            ["--run", str(runs["classifier"]), "--images", good, "--out", f"{a_file}/p.csv"],
            "plain.txt",
        ),
        "out_unwritable": (
            ["--run", str(runs["classifier"]), "--images", good, "--out", "/proc/p.csv"],
            "/proc",
        ),
        "batch_size_0": (
            ["--run", str(runs["classifier"]), "--images", good, "--out", out, "--batch-size", "0"],
            "--batch-size",
        ),
        "batch_size_negative": (
            [
                "--run",
                str(runs["classifier"]),
                "--images",
                good,
                "--out",
                out,
                "--batch-size",
                "-5",
            ],
            "--batch-size",
        ),
        "only_unreadable": (
            ["--run", str(runs["classifier"]), "--images", str(images["broken"]), "--out", out],
            "none of the 1 inputs",
        ),
    }


CLS_CASES = [
    "unknown_run",
    "wrong_kind",
    "corrupt_model",
    "missing_key",
    "empty_folder",
    "out_is_folder",
    "out_under_a_file",
    "out_unwritable",
    "batch_size_0",
    "batch_size_negative",
    "only_unreadable",
]


@pytest.mark.parametrize("case", CLS_CASES)
def test_classification_predict_refuses(runs, tmp_path, images, capsys, case):
    from classification.predict import main

    argv, names = _cls_cases(runs, tmp_path, images)[case]
    code, _, err = call(main, argv, capsys)
    leftovers = [] if case == "only_unreadable" else [tmp_path / "out" / "p.csv"]
    assert_refused(code, err, names, leftovers)


def test_classification_predict_scores_every_good_file_beside_bad_ones(
    runs, tmp_path, images, capsys
):
    from classification.predict import main

    tiny = write_png(images["folder"] / "tiny.png", np.full((1, 1), 128, np.uint8))
    fifo = _fifo(tmp_path)
    nan = _nan_tiff(images["folder"])
    out = tmp_path / "p.csv"
    argv = ["--run", str(runs["classifier"]), "--images", str(images["folder"]), str(fifo)]
    code, _, err = call(main, [*argv, "--out", str(out)], capsys)
    assert code == 0 and "Traceback" not in err
    frame = pd.read_csv(out, keep_default_na=False).set_index("file")
    for good in images["good"]:
        assert frame.loc[str(good), "status"] == "ok"
    for bad in (images["broken"], fifo, nan):
        assert frame.loc[str(bad), "status"] == "error" and frame.loc[str(bad), "error"]
    assert "upscaled" in frame.loc[str(tiny), "warnings"]


# --- anomaly/predict.py ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "case",
    [
        "unknown_run",
        "wrong_kind",
        "batch_size_negative",
        "missing_image",
        "out_is_folder",
        "maps_under_a_file",
        "empty_folder",
        "only_unreadable",
    ],
)
def test_anomaly_predict_refuses(runs, tmp_path, images, capsys, case):
    from anomaly.predict import main

    out = tmp_path / "out" / "s.csv"
    good = str(images["good"][0])
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    (tmp_path / "nothing").mkdir()
    ae = str(runs["autoencoder"])
    argv, names = {
        "unknown_run": (["--run", "nope", "--images", good], "nope"),
        "wrong_kind": (["--run", str(runs["classifier"]), "--images", good], "classifier run"),
        "batch_size_negative": (["--run", ae, "--images", good, "--batch-size", "-5"], "-5"),
        "missing_image": (["--run", ae, "--images", str(tmp_path / "gone.png")], "gone.png"),
        "out_is_folder": (["--run", ae, "--images", good, "--out", str(tmp_path)], str(tmp_path)),
        "maps_under_a_file": (["--run", ae, "--images", good, "--maps", f"{blocker}/m"], "blocker"),
        "empty_folder": (["--run", ae, "--images", str(tmp_path / "nothing")], "nothing"),
        "only_unreadable": (["--run", ae, "--images", str(images["broken"])], "none of the 1"),
    }[case]
    if "--out" not in argv:
        argv += ["--out", str(out)]
    code, _, err = call(main, argv, capsys)
    assert_refused(code, err, names, [] if case == "only_unreadable" else [out])


def test_anomaly_predict_scores_good_files_and_flags_odd_ones(runs, tmp_path, images, capsys):
    from anomaly.predict import main

    dark = write_png(images["folder"] / "dark.png", np.full((32, 32), 2, np.uint8))
    out = tmp_path / "s.csv"
    argv = ["--run", str(runs["autoencoder"]), "--images", str(images["folder"])]
    code, _, err = call(main, [*argv, "--out", str(out)], capsys)
    assert code == 0 and "Traceback" not in err
    frame = pd.read_csv(out, keep_default_na=False).set_index("path")
    assert all(frame.loc[str(g), "error"] == "" for g in images["good"])
    assert frame.loc[str(images["broken"]), "error"]
    assert "nearly black" in frame.loc[str(dark), "warnings"]


# --- meltingtank/predict.py ----------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(BAD_CSVS))
def test_melting_predict_refuses_every_malformed_csv(runs, tmp_path, capsys, case):
    from meltingtank.predict import main

    path = tmp_path / f"{case}.csv"
    BAD_CSVS[case](path)
    out = tmp_path / "preds.csv"
    argv = ["--run", str(runs["lstm"]), "--csv", str(path), "--out", str(out)]
    code, _, err = no_hang(lambda: call(main, argv, capsys))
    assert_refused(code, err, path.name, [out])


@pytest.mark.parametrize(
    ("case", "names"),
    [
        ("unknown_run", "nope"),
        ("wrong_kind", "classifier run"),
        ("batch_size_0", "--batch-size"),
        ("one_row", "fewer than the 5"),
        ("four_rows", "fewer than the 5"),
        ("missing_csv", "absent.csv"),
        ("out_is_folder", "is a folder"),
    ],
)
def test_melting_predict_refuses_runs_and_options(runs, tmp_path, capsys, case, names):
    from meltingtank.predict import main

    csv = tmp_path / "log.csv"
    rows = {"one_row": 1, "four_rows": 4}.get(case, 30)
    csv.write_text(_csv_text(kamp_frame(rows)))
    out = tmp_path / "preds.csv"
    run = {"unknown_run": "nope", "wrong_kind": str(runs["classifier"])}.get(case, runs["lstm"])
    argv = ["--run", str(run), "--csv", str(csv), "--out", str(out)]
    if case == "batch_size_0":
        argv += ["--batch-size", "0"]
    if case == "missing_csv":
        argv[3] = str(tmp_path / "absent.csv")
    if case == "out_is_folder":
        argv[5] = str(tmp_path)
    code, _, err = call(main, argv, capsys)
    assert_refused(code, err, names, [out])


def test_melting_predict_flags_readings_outside_the_training_range(runs, tmp_path, capsys):
    from meltingtank.predict import main

    frame = kamp_frame(30)
    frame.loc[12, "MELT_TEMP"] = 99999
    csv = tmp_path / "hot.csv"
    csv.write_text(_csv_text(frame))
    out = tmp_path / "preds.csv"
    code, printed, _ = call(
        main, ["--run", str(runs["lstm"]), "--csv", str(csv), "--out", str(out)], capsys
    )
    assert code == 0 and "outside the training range" in printed
    preds = pd.read_csv(out, keep_default_na=False)
    flagged = preds.index[preds["warnings"] != ""].tolist()
    assert flagged == list(range(12, 12 + WINDOW))
    assert "MELT_TEMP 99999 outside training range 300..541" in preds.loc[12, "warnings"]
    assert preds["ng_probability"].iloc[WINDOW - 1 :].notna().all()


# --- python -m inspection ------------------------------------------------------------------------


def _zip_bytes(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "case",
    [
        "empty_folder",
        "empty_zip",
        "missing",
        "fifo",
        "bad_db_url",
        "out_is_folder",
        "batch_size_0",
        "wrong_kind",
        "corrupt_model",
        "only_junk_zip",
        "pool_without_address",
        "pool_bad_name",
        "pool_without_ray_engine",
    ],
)
def test_inspection_refuses(runs, tmp_path, images, capsys, monkeypatch, case):
    from inspection.__main__ import main

    out = tmp_path / "out" / "r.csv"
    (tmp_path / "nothing").mkdir()
    empty_zip = tmp_path / "empty.zip"
    empty_zip.write_bytes(_zip_bytes({}))
    junk_zip = tmp_path / "junk.zip"
    junk_zip.write_bytes(_zip_bytes({"a.txt": b"x", "b.png": b"not a png"}))
    classifier, good = str(runs["classifier"]), str(images["good"][0])
    argv, names = {
        "empty_folder": ([classifier, str(tmp_path / "nothing")], "nothing"),
        "empty_zip": ([classifier, str(empty_zip)], "empty.zip"),
        "missing": ([classifier, str(tmp_path / "gone")], "gone"),
        "fifo": ([classifier, str(_fifo(tmp_path))], "camera.png"),
        "bad_db_url": ([classifier, good, "--db-batch", "shift 7"], "DEFECTLENS_DB_URL"),
        "out_is_folder": ([classifier, good, "--out", str(tmp_path)], str(tmp_path)),
        "batch_size_0": ([classifier, good, "--batch-size", "0"], "--batch-size"),
        "wrong_kind": ([str(runs["autoencoder"]), good], "autoencoder run"),
        "corrupt_model": ([str(runs["corrupt_model"]), good], "model.keras"),
        "only_junk_zip": ([classifier, str(junk_zip)], "none of the"),
        "pool_without_address": (
            [classifier, good, "--engine", "ray", "--pool", "line4"],
            "--address auto",
        ),
        "pool_bad_name": (
            [classifier, good, "--engine", "ray", "--address", "auto", "--pool", "a b/c"],
            "--pool 'a b/c'",
        ),
        "pool_without_ray_engine": ([classifier, good, "--pool", "line4"], "--engine ray"),
    }[case]
    if case == "bad_db_url":
        monkeypatch.setenv("DEFECTLENS_DB_URL", "garbage")
    full = ["--classifier", argv[0], "--images", *argv[1:]]
    if "--out" not in full:
        full += ["--out", str(out)]
    code, _, err = no_hang(lambda: call(main, full, capsys))
    assert_refused(code, err, names, [] if case == "only_junk_zip" else [out])


def test_inspection_scores_good_files_among_junk_with_the_review_log(
    runs, tmp_path, images, capsys
):
    from inspection.__main__ import main

    zipped = tmp_path / "shift.zip"
    good_bytes = cv2.imencode(".png", part(seed=9))[1].tobytes()
    junk = {f"junk_{i}.png": os.urandom(200) for i in range(40)}
    zipped.write_bytes(_zip_bytes({**junk, "../escape.png": good_bytes, "z_good.png": good_bytes}))
    out = tmp_path / "r.csv"
    argv = ["--classifier", str(runs["classifier"]), "--autoencoder", str(runs["autoencoder"])]
    argv += ["--images", str(images["folder"]), str(zipped), "--out", str(out), "--db-batch", "s1"]
    code, printed, err = call(main, argv, capsys)
    assert code == 0 and "Traceback" not in err
    frame = pd.read_csv(out, keep_default_na=False).set_index("file_name")
    assert (frame.loc["z_good.png", "status"]) == "ok"
    assert all(frame.loc[f"parts/{g.name}", "status"] == "ok" for g in images["good"])
    assert (frame.status == "error").sum() == 42  # 40 junk + broken.png + refused traversal
    assert not (tmp_path / "escape.png").exists()
    with ReviewLog() as log:
        items = log.items(int(log.batches().batch_id.iloc[0]))
    assert len(items) == len(frame) - 1  # the refused traversal name brought no bytes


# --- trainers: refused before any training, no run folder left ---------------------------------


def _mvtec(root: Path, mask_size: int) -> Path:
    sets = (("train", "good", 8, 0), ("test", "good", 2, 10), ("test", "crack", 2, 20))
    for split, kind, n, first_seed in sets:
        for i in range(n):
            write_png(root / split / kind / f"{i:03d}.png", part(32, seed=first_seed + i))
    for i in range(2):
        write_png(
            root / "ground_truth" / "crack" / f"{i:03d}_mask.png",
            np.zeros((mask_size,) * 2, np.uint8),
        )
    return root


@pytest.mark.parametrize(
    ("case", "names"),
    [
        ("anomaly_masks_wrong_size", "_mask.png"),
        ("anomaly_missing_data", "gone"),
        ("anomaly_epochs_0", "--epochs"),
        ("classifier_missing_data", "gone"),
        ("classifier_empty_data", "empty"),
        ("melting_bad_csv", "tank.csv"),
        ("melting_missing_csv", "absent.csv"),
    ],
)
def test_trainers_refuse_before_training_and_leave_no_run(tmp_path, capsys, case, names):
    from anomaly.train import main as anomaly_main
    from classification.train import main as classifier_main
    from meltingtank.train import main as melting_main

    weights = Path(os.environ["DEFECTLENS_WEIGHTS"])
    (tmp_path / "empty").mkdir()
    tank = tmp_path / "tank.csv"
    tank.write_text(_csv_text(kamp_frame().assign(TAG="maybe")))
    main, argv = {
        "anomaly_masks_wrong_size": (
            anomaly_main,
            ["--data", str(_mvtec(tmp_path / "mv", 31)), "--name", "r", "--img-size", "16"],
        ),
        "anomaly_missing_data": (anomaly_main, ["--data", str(tmp_path / "gone"), "--name", "r"]),
        "anomaly_epochs_0": (
            anomaly_main,
            ["--data", str(tmp_path), "--name", "r", "--epochs", "0"],
        ),
        "classifier_missing_data": (classifier_main, ["--data", str(tmp_path / "gone")]),
        "classifier_empty_data": (classifier_main, ["--data", str(tmp_path / "empty")]),
        "melting_bad_csv": (melting_main, ["--csv", str(tank), "--name", "r"]),
        "melting_missing_csv": (
            melting_main,
            ["--csv", str(tmp_path / "absent.csv"), "--name", "r"],
        ),
    }[case]
    code, _, err = call(main, argv, capsys)
    assert_refused(code, err, names)
    assert not weights.exists() or not any(weights.iterdir())


def test_evaluators_and_generator_follow_the_same_convention(runs, tmp_path, capsys):
    from anomaly.evaluate import main as anomaly_eval
    from explain.evaluate import main as explain_eval
    from explain.study import main as explain_study
    from synthetic.__main__ import main as synthetic_main

    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    one_recipe = tmp_path / "one_recipe"
    shutil.copytree(runs["classifier"], one_recipe)
    _edit_info(one_recipe, lambda info: info.update(aug="basic", seed=0))
    (tmp_path / "training").mkdir()  # a run folder still being trained: no run.json yet
    study = ["--data", str(tmp_path), "--runs"]
    for main, argv, names in (
        (anomaly_eval, ["--run", "nope", "--data", str(tmp_path)], "nope"),
        (explain_study, [*study, str(one_recipe), str(runs["lstm"])], "lstm"),
        (explain_study, [*study, str(one_recipe)], "two recipes"),
        (explain_study, [*study, str(one_recipe), str(tmp_path / "training")], "run.json"),
        (explain_study, [*study, str(one_recipe), "--faithfulness", "-1"], "--faithfulness"),
        (
            explain_eval,
            ["--run", str(runs["classifier"]), "--data", str(tmp_path / "gone")],
            "gone",
        ),
        (synthetic_main, ["melting", "--out", f"{blocker}/m.csv", "--rows", "10"], "blocker"),
        (
            explain_study,
            ["--data", str(tmp_path), "--runs", str(runs["classifier"]), str(runs["classifier"])],
            "seed",
        ),
        (
            explain_study,
            ["--data", str(tmp_path), "--runs", "x", "--out", f"{blocker}/s.json"],
            "blocker",
        ),
    ):
        code, _, err = call(main, argv, capsys)
        assert_refused(code, err, names)


# --- real processes: what only a process boundary shows -----------------------------------------


def _cli(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO
    )


def test_a_fifo_never_hangs_a_real_cli_process(runs, tmp_path):
    fifo = _fifo(tmp_path)
    done = _cli(
        ["classification/predict.py", "--run", str(runs["classifier"]), "--images", str(fifo),
         "--out", str(tmp_path / "p.csv")]
    )  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "none of the 1 inputs" in done.stderr


def test_a_binary_csv_is_one_line_in_a_real_process(runs, tmp_path):
    csv = tmp_path / "blob.csv"
    csv.write_bytes(bytes(range(256)) * 8)
    done = _cli(
        ["meltingtank/predict.py", "--run", str(runs["lstm"]), "--csv", str(csv),
         "--out", str(tmp_path / "p.csv")]
    )  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert [line for line in done.stderr.splitlines() if "error:" in line][0].count("blob.csv")
    assert not (tmp_path / "p.csv").exists()


def test_dev_zero_never_hangs_the_inspection_process(runs, tmp_path):
    done = _cli(
        ["-m", "inspection", "--classifier", str(runs["classifier"]),
         "--images", str(_dev_zero(tmp_path)), "--out", str(tmp_path / "r.csv")]
    )  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "zero.png" in done.stderr


# --- uploads: caps that match the documentation, enforced while streaming ------------------------


def test_streamlit_per_file_cap_matches_the_intake_limit():
    import tomllib

    from imaging import archive

    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] * (1 << 20) == archive.MAX_FILE_BYTES


def test_an_oversized_upload_is_refused_by_name_and_the_rest_go_through(monkeypatch):
    from imaging import archive

    monkeypatch.setattr(archive, "MAX_FILE_BYTES", 1000)
    good = cv2.imencode(".png", part(16))[1].tobytes()
    entries = list(archive.iter_upload_files([("huge.zip", b"x" * 2000), ("a.png", good)]))
    assert (
        entries[0].problem.startswith("huge.zip:")
        and "limit per uploaded file" in entries[0].problem
    )
    assert entries[1].ok and entries[1].name == "a.png"


def test_uploads_are_read_one_file_at_a_time():
    from imaging.archive import iter_upload_files

    pulled = []

    def files():
        for i in range(5):
            pulled.append(i)
            yield f"f{i}.png", b"data"

    first = next(iter_upload_files(files()))
    assert first.name == "f0.png" and pulled == [0]


def test_junk_entries_never_pile_up_waiting_for_decodable_images(runs):
    from inspection import Inspector, iter_inspect

    pulled = []

    def junk():
        for i in range(100):
            pulled.append(i)
            yield f"junk_{i}.png", bytes([i]) * 64

    rows = iter_inspect(junk(), Inspector.from_runs(runs["classifier"]), batch_size=8)
    _, row = next(rows)
    assert row["status"] == "error" and len(pulled) <= 8
    assert sum(1 for _ in rows) == 99
