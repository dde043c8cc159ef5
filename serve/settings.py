"""What the line service is told at start: runs, batching, alerts, limits, security.

Command-line flags (`python -m serve --help`) fill these; the token comes from the environment
so it never shows in a process list.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from store.line import check_station
from store.review import ReviewError

TOKEN_ENV = "DEFECTLENS_API_TOKEN"
MB = 1 << 20


class SettingsError(ValueError):
    """A service setting that cannot work; the message names it and what to do."""


@dataclass
class Settings:
    classifier: str
    autoencoder: str | None = None
    token: str | None = None
    auth: bool = True
    max_batch: int = 16
    max_wait_ms: float = 5.0
    model_threads: int = 1
    max_image_bytes: int = 10 * MB
    max_upload_bytes: int = 200 * MB
    alert_threshold: float = 0.5
    station: str = "line-1"
    db_url: str | None = None
    images_dir: str | None = None

    def __post_init__(self) -> None:
        if self.token is None:
            self.token = os.environ.get(TOKEN_ENV) or None
        if self.auth and not self.token:
            raise SettingsError(
                f"no API token: set {TOKEN_ENV} (clients send 'Authorization: Bearer <token>'), "
                "or pass --no-auth for local use only"
            )
        if self.max_batch < 1:
            raise SettingsError(f"--max-batch must be at least 1, got {self.max_batch}")
        if self.model_threads < 0:
            raise SettingsError(
                "--model-threads must be 0 (TensorFlow's default) or more, "
                f"not {self.model_threads}"
            )
        if not 0 <= self.max_wait_ms <= 1000:
            raise SettingsError(f"--max-wait-ms must be within 0..1000, got {self.max_wait_ms}")
        if not 0 < self.alert_threshold <= 1:
            raise SettingsError(
                f"--alert-threshold is a risk in (0, 1], got {self.alert_threshold}"
            )
        for name in ("max_image_bytes", "max_upload_bytes"):
            if getattr(self, name) < 1:
                raise SettingsError(f"--{name.replace('_', '-')} must be positive")
        try:
            check_station(self.station)
        except ReviewError as exc:
            raise SettingsError(f"--station {exc}") from None
