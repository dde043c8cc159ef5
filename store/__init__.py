"""Persistence: run folders under weights/ and (later) the review log database."""

from store.paths import data_dir, repo_root, weights_dir
from store.runs import (
    Run,
    RunError,
    confusion_record,
    create_run_dir,
    health_record,
    list_runs,
    load_run,
    provenance,
    read_confusion,
    run_folder,
    run_warnings,
    save_array,
    save_model,
    write_history,
    write_metrics,
    write_run_info,
)

__all__ = [
    "Run",
    "RunError",
    "confusion_record",
    "create_run_dir",
    "data_dir",
    "health_record",
    "list_runs",
    "load_run",
    "provenance",
    "run_folder",
    "read_confusion",
    "repo_root",
    "run_warnings",
    "save_array",
    "save_model",
    "weights_dir",
    "write_history",
    "write_metrics",
    "write_run_info",
]
