"""Safe intake of uploaded files and zip archives, entirely in memory.

Nothing is ever written to disk under an uploaded name, so a hostile name cannot escape a
folder; such names are still refused so the reviewer hears about them. Zip bombs are stopped
by the declared sizes (total and compression ratio) before anything is decompressed and by a
cap while decompressing; a count limit bounds the batch. Every problem becomes a message that
names the entry, and the good entries still come through. Decoding is `imaging.read_image`'s
job, not this module's.
"""

from __future__ import annotations

import io
import itertools
import logging
import re
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from imaging.decode import IMAGE_EXTENSIONS

log = logging.getLogger(__name__)

ARCHIVE_EXTENSIONS = (".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar")
SYSTEM_NAMES = frozenset({"__MACOSX", "Thumbs.db", "desktop.ini"})
MAX_FILES = 5000
MAX_TOTAL_BYTES = 1 << 30
# One uploaded file (an image or a .zip); .streamlit/config.toml's maxUploadSize says the same.
MAX_FILE_BYTES = 256 << 20
MAX_RATIO = 100.0
# Below this size a high compression ratio is harmless (flat test images compress well).
RATIO_MIN_BYTES = 1 << 20
_DRIVE_RE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class UploadEntry:
    """One file out of an upload: `data` when accepted, else `problem` says why not."""

    name: str
    data: bytes | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.data is not None


@dataclass
class _Budget:
    """Limits shared by everything in one upload, plus what was skipped quietly."""

    max_files: int
    max_total_bytes: int
    max_ratio: float
    files: int = 0
    total_bytes: int = 0
    hidden: list[str] = field(default_factory=list)
    over_count: list[str] = field(default_factory=list)

    def size_problem(self, size: int) -> str | None:
        if self.total_bytes + size > self.max_total_bytes:
            return (
                f"{size:,} bytes would take the upload past its limit of "
                f"{self.max_total_bytes:,} bytes (max_total_bytes); skipped"
            )
        return None

    def accept(self, size: int) -> None:
        self.files += 1
        self.total_bytes += size


def _name_problem(name: str) -> str | None:
    if name.startswith(("/", "\\")) or _DRIVE_RE.match(name):
        return "absolute path refused"
    if ".." in re.split(r"[\\/]", name):
        return "path traversal ('..') refused"
    return None


def _is_hidden(name: str) -> bool:
    parts = PurePosixPath(name.replace("\\", "/")).parts
    return any(p.startswith(".") or p in SYSTEM_NAMES for p in parts)


def _type_problem(name: str) -> str | None:
    ext = Path(name).suffix.lower()
    if name.lower().endswith(ARCHIVE_EXTENSIONS):
        return "nested archive skipped; upload it on its own"
    if ext not in IMAGE_EXTENSIONS:
        kind = f"'{ext}'" if ext else "no extension"
        return f"not an image type ({kind}); accepted: {', '.join(IMAGE_EXTENSIONS)}"
    return None


def _screen(name: str, budget: _Budget) -> str | None:
    """Why an entry must be refused by its name alone; '' for quiet skips, None to go on."""
    problem = _name_problem(name)
    if problem:
        return problem
    if _is_hidden(name):
        budget.hidden.append(name)
        return ""
    problem = _type_problem(name)
    if problem:
        return problem
    if budget.files >= budget.max_files:
        budget.over_count.append(name)
        return ""
    return None


def _zip_entries(zf: zipfile.ZipFile, label: str, budget: _Budget) -> Iterator[UploadEntry]:
    for info in zf.infolist():
        if info.is_dir():
            continue
        name = info.filename
        problem = _screen(name, budget)
        if problem is None and info.flag_bits & 0x1:
            problem = "encrypted entry skipped"
        if problem is None:
            problem = _declared_size_problem(info, budget)
        if problem is None:
            try:
                data = _read_capped(zf, info)
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as exc:
                problem = f"corrupt entry skipped ({exc})"
            else:
                budget.accept(len(data))
                yield UploadEntry(name, data)
                continue
        if problem:
            yield UploadEntry(name, problem=f"{label}: {name}: {problem}")


def _declared_size_problem(info: zipfile.ZipInfo, budget: _Budget) -> str | None:
    size, packed = info.file_size, max(info.compress_size, 1)
    if size > RATIO_MIN_BYTES and size / packed > budget.max_ratio:
        return (
            f"compression ratio {size / packed:,.0f}:1 exceeds the limit of "
            f"{budget.max_ratio:,.0f}:1 (max_ratio); possible zip bomb, skipped"
        )
    return budget.size_problem(size)


def _read_capped(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """Decompress at most the declared size; an entry that yields more is refused."""
    with zf.open(info) as handle:
        data = handle.read(info.file_size + 1)
    if len(data) > info.file_size:
        raise zipfile.BadZipFile(f"expands beyond its declared {info.file_size:,} bytes")
    return data


def _open_zip(source: bytes | str | Path) -> zipfile.ZipFile:
    if isinstance(source, bytes | bytearray | memoryview):
        return zipfile.ZipFile(io.BytesIO(bytes(source)))
    return zipfile.ZipFile(source)


def _iter_zip(source: bytes | str | Path, label: str, budget: _Budget) -> Iterator[UploadEntry]:
    try:
        zf = _open_zip(source)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        yield UploadEntry(label, problem=f"{label}: not a readable zip archive ({exc})")
        return
    with zf:
        yield from _zip_entries(zf, label, budget)


def _summaries(budget: _Budget) -> Iterator[UploadEntry]:
    if budget.hidden:
        first = budget.hidden[0]
        yield UploadEntry(
            first,
            problem=f"{first}: skipped with {len(budget.hidden) - 1} other hidden or system "
            "files (names starting with '.', __MACOSX, Thumbs.db)",
        )
    if budget.over_count:
        first = budget.over_count[0]
        yield UploadEntry(
            first,
            problem=f"{first}: skipped with {len(budget.over_count) - 1} later files: the upload "
            f"holds more than {budget.max_files:,} images (max_files)",
        )


def iter_upload_files(
    files: Iterable[tuple[str, bytes]],
    max_files: int = MAX_FILES,
    max_total_bytes: int = MAX_TOTAL_BYTES,
    max_ratio: float = MAX_RATIO,
) -> Iterator[UploadEntry]:
    """Each uploaded image, with .zip uploads expanded, in order; problems as entries.

    `files` may be a generator: each file is read only when its turn comes, and the limits are
    checked entry by entry as the archive streams, so nothing waits for the whole upload.
    The limits apply to the whole upload. Hidden/system files and files beyond max_files are
    counted and reported in one message each at the end rather than one per file.
    """
    budget = _Budget(max_files, max_total_bytes, max_ratio)
    for name, data in files:
        if len(data) > MAX_FILE_BYTES:
            yield UploadEntry(
                name,
                problem=f"{name}: {len(data):,} bytes is over the {MAX_FILE_BYTES:,} byte limit "
                "per uploaded file; split it into smaller archives",
            )
            continue
        if name.lower().endswith(".zip") and not _name_problem(name):
            yield from _iter_zip(data, name, budget)
            continue
        problem = _screen(name, budget)
        if problem is None:
            problem = budget.size_problem(len(data))
        if problem is None:
            budget.accept(len(data))
            yield UploadEntry(name, bytes(data))
        elif problem:
            yield UploadEntry(name, problem=f"{name}: {problem}")
    yield from _summaries(budget)


def read_zip(
    data_or_path: bytes | str | Path,
    max_files: int = MAX_FILES,
    max_total_bytes: int = MAX_TOTAL_BYTES,
    max_ratio: float = MAX_RATIO,
    name: str | None = None,
) -> tuple[list[tuple[str, bytes]], list[str]]:
    """The images inside a zip as (entry name, bytes), and a message for every problem."""
    if name is None:
        is_bytes = isinstance(data_or_path, bytes | bytearray | memoryview)
        name = "upload.zip" if is_bytes else Path(data_or_path).name
    budget = _Budget(max_files, max_total_bytes, max_ratio)
    files, problems = [], []
    for entry in itertools.chain(_iter_zip(data_or_path, name, budget), _summaries(budget)):
        if entry.ok:
            files.append((entry.name, entry.data))
        else:
            problems.append(entry.problem)
    log.info("%s: %d images read, %d problems", name, len(files), len(problems))
    return files, problems
