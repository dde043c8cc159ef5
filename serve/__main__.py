"""`python -m serve --classifier RUN [--autoencoder RUN] [--port 8000]`: start the line service.

Runs are checked before the server starts, so a wrong name fails at once with the list of runs.
Needs DEFECTLENS_API_TOKEN (or --no-auth for local use). See docs/serve.md.
"""

from __future__ import annotations

import argparse
import logging
import sys

from serve.settings import MB, Settings, SettingsError
from store.cli_args import keyword_options, option


def build_parser() -> argparse.ArgumentParser:
    defaults = Settings("_", auth=False)
    parser = argparse.ArgumentParser(
        prog="python -m serve",
        description="DefectLens line service: POST /v1/inspect, WS /v1/alerts, docs at /docs. "
        "Clients send 'Authorization: Bearer $DEFECTLENS_API_TOKEN'. See docs/serve.md.",
    )
    parser.add_argument("--classifier", required=True, help="classifier run name or folder")
    parser.add_argument("--autoencoder", help="autoencoder run name or folder (optional)")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (0.0.0.0 in a container)")
    parser.add_argument("--port", type=int, default=8000)
    option(parser, defaults, "--max-batch", "most parts per model call", type=int)
    help_wait = "how long a lone request waits for company before its model call"
    option(parser, defaults, "--max-wait-ms", help_wait, type=float)
    help_threads = (
        "TensorFlow threads per model call; 1 leaves the other cores to HTTP, decoding and the "
        "review log (measured faster under load, docs/serve.md); 0: TensorFlow's default"
    )
    option(parser, defaults, "--model-threads", help_threads, type=int)
    help_alert = "risk at or above which a part is pushed to /v1/alerts"
    option(parser, defaults, "--alert-threshold", help_alert, type=float)
    option(parser, defaults, "--station", "station id when a request has no X-Station")
    # the byte caps of Settings, given in MB
    for flag, cap, what in (
        ("--max-image-mb", defaults.max_image_bytes, "cap per image"),
        ("--max-upload-mb", defaults.max_upload_bytes, "cap per /v1/inspect/batch request"),
    ):
        parser.add_argument(flag, type=float, default=cap / MB, help=what)
    parser.add_argument(
        "--db-url", help="review-log SQLAlchemy URL (default $DEFECTLENS_DB_URL, else SQLite)"
    )
    parser.add_argument(
        "--no-auth", action="store_true", help="accept requests without a token (local use only)"
    )
    return parser


def limit_model_threads(threads: int) -> None:
    """Cap TensorFlow's and the BLAS libraries' thread pools (before anything runs a
    TensorFlow op); 0 keeps their own. Idle BLAS threads spin for a while after each call,
    taking the cores the event loop and the next small batch need."""
    if not threads:
        return
    import tensorflow as tf
    from threadpoolctl import threadpool_limits

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    threadpool_limits(threads, user_api="blas")  # numpy's and OpenCV's OpenBLAS


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from store import RunError, load_run

    try:
        settings = Settings(
            args.classifier,
            **keyword_options(Settings, args),
            auth=not args.no_auth,
            max_image_bytes=int(args.max_image_mb * MB),
            max_upload_bytes=int(args.max_upload_mb * MB),
        )
        for flag, name, kind in (
            ("--classifier", args.classifier, "classifier"),
            ("--autoencoder", args.autoencoder, "autoencoder"),
        ):
            if name is not None and load_run(name).kind != kind:
                raise SettingsError(f"{flag} {name}: not a {kind} run")
    except (SettingsError, RunError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not 0 < args.port < 65536:
        print(f"error: --port {args.port}: use 1-65535", file=sys.stderr)
        return 2

    import uvicorn

    from serve.app import create_app

    limit_model_threads(settings.model_threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        log_level="warning",
        timeout_graceful_shutdown=30,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
