"""The heatmap study: runs grouped by recipe and seed, intervals, paired tests, sentences."""

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from explain import study


def fake_run(name, aug, seed, kind="classifier"):
    return SimpleNamespace(name=name, kind=kind, info={"aug": aug, "seed": seed})


def study_frame(effect=0.3, images=24, seeds=3):
    """Recipes good/same/worse: pointing of `good` is `effect` higher on every image."""
    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.6, images)
    rows = []
    for recipe, shift in (("good", effect), ("same", 0.0), ("worse", 0.0)):
        for seed in range(seeds):
            noise = rng.normal(0.0, 0.02, images)
            for i in range(images):
                rows.append(
                    {
                        "path": f"img{i:02d}.png",
                        "defect_type": "scratch" if i % 2 else "pinhole",
                        "recipe": recipe,
                        "seed": seed,
                        "pointing_hit": base[i] + shift + noise[i],
                        "box_hit@0.3": float(i % 3 == 0),
                        "deletion_auc": 0.5 + (0.0 if recipe != "worse" else 0.2) + noise[i],
                    }
                )
    return pd.DataFrame(rows)


def test_runs_are_grouped_by_recipe_and_sorted_by_seed():
    runs = [fake_run("b2", "basic", 2), fake_run("f0", "flip", 0), fake_run("b0", "basic", 0)]
    groups = study.group_runs(runs)
    assert [r.name for r in groups["basic"]] == ["b0", "b2"]
    assert [r.name for r in groups["flip"]] == ["f0"]


@pytest.mark.parametrize(
    "runs, message",
    [
        ([fake_run("a", "basic", 0), fake_run("b", "basic", 0)], "seed 0"),
        ([fake_run("a", "basic", 0), fake_run("b", "basic", 1)], "1 recipe"),
        ([fake_run("a", "basic", 0), fake_run("b", "flip", 0, kind="anomaly")], "anomaly run"),
        ([fake_run("a", "basic", None), fake_run("b", "flip", 0)], "no aug or seed"),
    ],
)
def test_bad_run_sets_are_refused_with_the_reason(runs, message):
    with pytest.raises(ValueError, match=message):
        study.group_runs(runs)


def test_tables_align_images_across_recipes_and_keep_gaps():
    frame = study_frame(images=4, seeds=2)
    frame = frame.drop(frame[(frame.recipe == "same") & (frame.path == "img01.png")].index)
    tables = study.tables(frame, "pointing_hit")
    assert tables["good"].shape == tables["same"].shape == (2, 4)
    assert np.isnan(tables["same"][:, 1]).all() and not np.isnan(tables["good"]).any()


def test_a_real_difference_is_significant_and_none_is_invented():
    report = study.summarize(study_frame(), n_boot=300)
    pointing = report["intervals"]["pointing_hit"]
    assert pointing["good"]["mean"] == pytest.approx(pointing["same"]["mean"] + 0.3, abs=0.02)
    assert pointing["good"]["low"] < pointing["good"]["mean"] < pointing["good"]["high"]
    assert pointing["good"]["seeds"] == 3 and pointing["good"]["images"] == 24
    pairs = {(d["a"], d["b"]): d for d in report["differences"]["pointing_hit"]}
    assert pairs[("good", "same")]["significant"] and pairs[("good", "worse")]["significant"]
    assert not pairs[("same", "worse")]["significant"]
    sentence = next(s for s in report["sentences"] if s.startswith("pointing"))
    assert "good better than same" in sentence and "same better than worse" not in sentence
    # Box hit is identical for every recipe: no difference is claimed.
    assert "box hit@0.3: no difference between recipes is significant." in report["sentences"]


def test_lower_deletion_auc_counts_as_better():
    report = study.summarize(study_frame(), n_boot=300)
    sentence = next(s for s in report["sentences"] if s.startswith("deletion AUC"))
    assert "good better than worse" in sentence and "same better than worse" in sentence


def test_per_type_and_table_and_saved_report(tmp_path):
    frame = study_frame(images=6, seeds=2)
    per_type = study.per_type(frame)
    assert per_type["good"]["pinhole"] == pytest.approx(1 / 3)  # img00, img02, img04: 1, 0, 0
    report = study.summarize(frame, n_boot=100)
    table = study.format_table(report)
    assert table.splitlines()[0].startswith("| recipe | seeds | pointing")
    assert "| good | 2 |" in table
    assert study.load_study(tmp_path) is None
    (tmp_path / study.STUDY_FILE).write_text(json.dumps(report))
    assert study.load_study(tmp_path)["sentences"] == report["sentences"]


def test_cli_names_a_missing_run_and_exits_2(capsys, tmp_path):
    code = study.main(["--data", str(tmp_path), "--runs", "no-such-run", "other"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "no-such-run" in err and len(err.splitlines()) == 1


def test_measure_keeps_defective_rows_and_reuses_its_cache(tmp_path, monkeypatch):
    from explain import evaluation

    calls = []

    def fake_evaluate(run, data, **options):
        calls.append((run.name, options["faithfulness"]))
        images = [
            {"path": "a.png", "is_defect": True, "defect_type": "pinhole", "pointing_hit": 1.0},
            {"path": "b.png", "is_defect": False, "defect_type": "good", "pointing_hit": None},
        ]
        return {"images": images}

    monkeypatch.setattr(evaluation, "evaluate", fake_evaluate)
    run = fake_run("r1", "basic", 1)
    run.info["created"] = "2026-12-01T10:00:00"
    first = study.measure([run], tmp_path, "gradcam", 5, cache=tmp_path / "cache")
    again = study.measure([run], tmp_path, "gradcam", 5, cache=tmp_path / "cache")
    assert calls == [("r1", 5)]
    assert list(first["path"]) == list(again["path"]) == ["a.png"]
    assert again.loc[0, "recipe"] == "basic" and again.loc[0, "seed"] == 1
    study.measure([run], tmp_path, "gradcam", 6, cache=tmp_path / "cache")
    assert len(calls) == 2  # another sample size is another measurement


def test_run_means_and_their_overlap_are_reported():
    report = study.summarize(study_frame(), n_boot=200)
    good = report["intervals"]["pointing_hit"]["good"]["run_means"]
    same = report["intervals"]["pointing_hit"]["same"]["run_means"]
    assert len(good) == len(same) == 3 and min(good) > max(same) + 0.2
    pairs = {(d["a"], d["b"]): d for d in report["differences"]["pointing_hit"]}
    assert not pairs[("good", "same")]["run_ranges_overlap"]
    assert pairs[("same", "worse")]["run_ranges_overlap"]
    assert "per-seed means do not overlap" in report["sentences"][0]


def test_a_rejecting_test_with_an_interval_across_zero_is_not_called_significant():
    # 23 images a hair better, one much worse: the signed-rank test rejects, the mean is ~0.
    rows = []
    for recipe in ("a", "b"):
        for i in range(24):
            value = 0.5 + (0.01 if recipe == "a" and i < 23 else 0.0)
            value -= 0.3 if recipe == "a" and i == 23 else 0.0
            rows.append({"path": f"{i}", "recipe": recipe, "seed": 0, "pointing_hit": value})
    report = study.summarize(pd.DataFrame(rows), n_boot=500)
    (pair,) = report["differences"]["pointing_hit"]
    assert pair["test_rejects"] and pair["low"] < 0 < pair["high"]
    assert not pair["significant"]
    assert report["sentences"][0] == "pointing: no difference between recipes is significant."
