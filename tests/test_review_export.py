"""The review CSV a person downloads: labels, relative paths, zoned times, empty cells."""

import pandas as pd

from store.review_export import readable_items


def test_codes_become_labels_paths_relative_and_times_zoned():
    items = pd.DataFrame(
        {
            "item_id": [1, 2],
            "file_name": ["a.png", "b.png"],
            "image_path": ["/srv/data/review_images/1/ab.png", "/elsewhere/x/cd.png"],
            "predicted_class": ["def_front", "ok_front"],
            "defect_probability": [0.99, 0.01],
            "anomaly_score": [0.3, None],
            "anomaly_flag": [True, None],
            "risk_score": [0.99, 0.01],
            "boxes": [[{"x_min": 1}], []],
            "verdict": ["confirmed_defect", None],
            "defect_type": ["scratch", None],
            "comment": ["", None],
            "reviewer": ["Kim", None],
            "decided_at": [pd.Timestamp("2026-01-15 12:00", tz="UTC"), pd.NaT],
            "n_decisions": [1, 0],
            "error": [None, None],
        }
    )
    out = readable_items(items, "/srv/data/review_images", zone="Europe/Berlin")
    assert out["verdict"].tolist() == ["Confirm defect", ""]
    assert out["stored_copy"].tolist() == ["1/ab.png", "cd.png"]  # never an absolute path
    assert out["decided_at"].tolist() == ["2026-01-15 13:00:00 Europe/Berlin", ""]
    assert out["n_boxes"].tolist() == [1, 0]
    assert "None" not in out.to_csv(index=False)
