"""The error convention every DefectLens CLI follows, in one place.

Bad input ends a CLI with one line on stderr that names the input and the fix, exit code 2,
no traceback and nothing half-written: outputs are checked writable before any work starts and
written through a temporary file that is renamed into place only when complete.
"""

from __future__ import annotations

import functools
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from store.runs import RunError

EXIT_BAD_INPUT = 2


class CliInputError(ValueError):
    """An argument a CLI cannot use; the message names it and says what to do."""


def one_line(exc: BaseException) -> str:
    """The exception's message on one line (loaders list several problems over lines)."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename is not None:
        reason = exc.strerror or one_line(exc)
        return f"{exc.filename}: {reason}; check the path and its permissions"
    if isinstance(exc, MemoryError):
        return "out of memory; use a smaller batch or fewer inputs"
    return one_line(exc)


def fail(exc: BaseException | str) -> int:
    """Print the one-line error and return the exit code for bad input."""
    text = exc if isinstance(exc, str) else _describe(exc)
    print(f"error: {text}", file=sys.stderr)
    return EXIT_BAD_INPUT


# Errors that mean "the input was bad", as opposed to a bug: these never show a traceback.
# ValueError covers ImageError, DatasetError, PreprocessError, KampFormatError, pandas parser
# errors and UnicodeDecodeError; OSError covers missing, unreadable and unwritable files.
EXPECTED = (ValueError, OSError, RunError, MemoryError)


def cli_main(main: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a CLI's main(argv): expected errors become `error: ...` on stderr and exit 2."""

    @functools.wraps(main)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return main(*args, **kwargs)
        except EXPECTED as exc:
            return fail(exc)

    return guarded


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (a batch size, a count)."""
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0 (a count where 0 means off)."""
    return _int_at_least(text, 0)


def _int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise _argparse_error(f"expected a whole number >= {low}, got {text!r}") from None
    if value < low:
        raise _argparse_error(f"expected a whole number >= {low}, got {value}")
    return value


def _argparse_error(message: str) -> Exception:
    import argparse

    return argparse.ArgumentTypeError(message)


def check_output_file(path: str | Path, what: str = "--out") -> Path:
    """Refuse an output path that cannot be written, before any work is done.

    Nothing is created: the nearest existing folder on the way is checked with a probe file,
    so read-only locations, files standing where a folder should be and folders standing
    where the file should be all fail now rather than after the work.
    """
    path = Path(path)
    if path.is_dir():
        raise CliInputError(f"{what} {path} is a folder; give a file name such as {path}/out.csv")
    existing = path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise CliInputError(
            f"{what} {path}: {existing} is a file, not a folder; choose another output path"
        )
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise CliInputError(
            f"{what} {path}: cannot write in {existing} ({exc.strerror or exc}); "
            "choose a writable location"
        ) from None
    return path


def check_writable_dir(folder: str | Path, what: str) -> Path:
    """Create `folder` if needed and prove a file can be written in it."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
            pass
    except (FileExistsError, NotADirectoryError):
        raise CliInputError(
            f"{what}: cannot create folder {folder}, a file stands in its path; choose another"
        ) from None
    except OSError as exc:
        raise CliInputError(
            f"{what}: cannot write in {folder} ({exc.strerror or exc}); choose a writable location"
        ) from None
    return folder


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; it replaces `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        tmp_path.replace(path)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_csv(frame: Any, path: str | Path, **kwargs: Any) -> Path:
    """Write a pandas frame as CSV atomically (no half-written file on a crash)."""
    with atomic_output(path) as tmp:
        frame.to_csv(tmp, index=False, **kwargs)
    return Path(path)
