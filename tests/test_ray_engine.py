"""The Ray engine on a real two-node Ray cluster on this machine, against the local engine.

The module starts a head node and a second node with `ray start --block` (1 CPU each, own
temporary folders, small object stores, no dashboard, memory monitor off, token auth with a
token of the test process's own), each in its own
process session, and kills every process of both trees at the end, even on failure. The kill
test SIGKILLs the second node's whole process tree mid-run and lets a replacement node join,
as a cluster autoscaler would.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from test_inspection import build_tiny_runs

from inspection import InspectionError, inspect_batch
from inspection.__main__ import main as cli_main
from inspection.pipeline import results_frame
from inspection.ray_cluster import RAY_MISSING, RayEngineError, _check_reachable, split_host_port
from inspection.ray_engine import BatchRecord, iter_inspect_ray
from store.local_server import free_port
from store.review import ReviewLog

# Token authentication with a token of this test process: its nodes and its driver agree on
# it whatever ~/.ray/auth_token a local ray.init() left behind. Ray reads the mode at import.
os.environ["RAY_AUTH_MODE"] = "token"
os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
ray = pytest.importorskip("ray", reason="the ray extra is not installed")

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ray")]
RAY = str(Path(sys.executable).with_name("ray"))
NODE_START_TIMEOUT_S = 120
RUN_TIMEOUT_S = 240
# The head notices a dead node within about 1.5 s instead of the default 15 s.
RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_memory_monitor_refresh_ms": "0",
    "RAY_health_check_initial_delay_ms": "1000",
    "RAY_health_check_period_ms": "500",
    "RAY_health_check_failure_threshold": "3",
    "RAY_DATA_DISABLE_PROGRESS_BARS": "1",
}


def _descendants(pid: int) -> list[int]:
    """pid and every process below it (from /proc), deepest first."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(children.get(current, []))
    return out[::-1]


class LocalCluster:
    """Ray nodes started with `ray start --block` under one short temporary folder."""

    def __init__(self) -> None:
        # Short: Ray's unix sockets live under it (the path limit is 107 bytes).
        self.root = Path(tempfile.mkdtemp(prefix="dlray", dir="/tmp"))
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.nodes: dict[str, subprocess.Popen] = {}
        self.pids: set[int] = set()

    def start(self, name: str, head: bool = False) -> None:
        temp = self.root / name
        temp.mkdir()
        where = ["--head", "--port", str(self.port), "--include-dashboard=false"]
        if not head:
            where = ["--address", self.address]
        command = [
            RAY, "start", *where, "--num-cpus", "1", "--temp-dir", str(temp),
            "--object-store-memory", str(80 * 1024 * 1024), "--disable-usage-stats",
            "--ray-client-server-port", str(free_port()), "--block",
        ]  # fmt: skip
        log = open(self.root / f"{name}.log", "w")  # noqa: SIM115 (closed with the process)
        self.nodes[name] = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **RAY_ENV},
            start_new_session=True,
        )
        deadline = time.monotonic() + NODE_START_TIMEOUT_S
        while "Ray runtime started" not in (self.root / f"{name}.log").read_text():
            if self.nodes[name].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ray node {name} did not start: {self.log(name)[-2000:]}")
            time.sleep(0.5)
        self.pids.update(_descendants(self.nodes[name].pid))

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text()

    def node_id(self, name: str) -> str:
        """The node id Ray gave node `name` (its raylet socket lives in its temp folder)."""
        for node in ray.nodes():
            if node["RayletSocketName"].startswith(str(self.root / name) + "/"):
                return node["NodeID"]
        raise LookupError(f"node {name} is not in the cluster")

    def kill(self, name: str) -> None:
        """SIGKILL the node's whole process tree: raylet, object store and its workers."""
        pids = _descendants(self.nodes[name].pid)
        self.pids.update(pids)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.nodes[name].wait(timeout=30)

    def teardown(self) -> None:
        for proc in self.nodes.values():
            self.pids.update(_descendants(proc.pid))
        for pid in sorted(self.pids):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for proc in self.nodes.values():
            proc.wait(timeout=30)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_runs(tmp_path_factory.mktemp("ray_runs"))


@pytest.fixture(scope="module")
def cluster():
    nodes = LocalCluster()
    try:
        nodes.start("head", head=True)
        nodes.start("node2")
        yield nodes
    finally:
        if ray.is_initialized():
            ray.shutdown()
        nodes.teardown()


@pytest.fixture(scope="module")
def archive(tiny, tmp_path_factory) -> list[str]:
    """A folder of parts, a zip of more parts, a corrupt file and a repeated image."""
    root = tmp_path_factory.mktemp("archive")
    parts = sorted(tiny["images"].rglob("*.png"))
    folder = root / "line1"
    folder.mkdir()
    for path in parts[:10]:
        shutil.copy(path, folder / path.name)
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    (folder / "zz_again.png").write_bytes(parts[0].read_bytes())
    with zipfile.ZipFile(root / "line2.zip", "w") as zf:
        for path in parts[10:]:
            zf.write(path, f"shift/{path.name}")
        zf.writestr("../evil.png", b"x")
    return [str(folder), str(root / "line2.zip")]


def run_cli(tiny, archive, out: Path, *extra: str) -> pd.DataFrame:
    args = ["--classifier", str(tiny["classifier"]), "--autoencoder", str(tiny["autoencoder"])]
    code = cli_main([*args, "--images", *archive, "--out", str(out), "--batch-size", "2", *extra])
    assert code == 0
    return (pd.read_parquet(out) if out.suffix == ".parquet" else pd.read_csv(out)).set_index(
        "file_name"
    )


def assert_same_results(ray_frame: pd.DataFrame, local: pd.DataFrame) -> None:
    """Same files, statuses and errors; verdicts, boxes and scores within 1e-5."""
    assert sorted(ray_frame.index) == sorted(local.index)
    assert ray_frame.index.is_unique
    ray_frame = ray_frame.loc[local.index]
    for column in ("status", "error", "predicted_class", "cam_class", "anomaly_flag", "boxes"):
        assert ray_frame[column].fillna("").astype(str).tolist() == (
            local[column].fillna("").astype(str).tolist()
        ), column
    for column in ("defect_probability", "anomaly_score", "risk_score"):
        pd.testing.assert_series_equal(ray_frame[column], local[column], atol=1e-5, rtol=0)


def test_two_nodes_score_the_archive_like_the_local_engine(
    tiny, archive, cluster, tmp_path, capsys
):
    local = run_cli(tiny, archive, tmp_path / "local.csv")
    assert set(local["status"]) == {"ok", "error", "duplicate"}
    capsys.readouterr()
    on_ray = run_cli(
        tiny, archive, tmp_path / "ray.parquet", "--engine", "ray",
        "--address", cluster.address, "--workers", "2", "--db-batch", "archive",
    )  # fmt: skip
    assert_same_results(on_ray, local)
    with ReviewLog() as review:
        batches = review.batches()
    # Scored and unreadable files become items; the repeat and the refused entry are messages.
    assert list(batches["name"]) == ["archive"]
    assert batches["n_items"].iloc[0] == local["status"].isin(["ok"]).sum() + 1
    summary = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("ray:"))
    # Every file but the repeat and the refused zip entry went to the workers.
    sent = int((local["status"] != "duplicate").sum()) - 1
    pattern = r"(\w{8}): \d+ batches, (\d+) images"
    per_node = {node: int(n) for node, n in re.findall(pattern, summary)}
    assert sum(per_node.values()) == sent
    ray.init(address=cluster.address, logging_level="ERROR")
    try:
        nodes = {cluster.node_id(name)[:8] for name in ("head", "node2")}
    finally:
        ray.shutdown()
    assert set(per_node) == nodes and all(per_node.values())


def _pool_cli(*argv: str) -> int:
    from inspection.ray_pool import main as pool_main

    return pool_main(list(argv))


def _pools(cluster) -> dict[str, int]:
    from inspection.ray_pool import list_pools

    ray.init(address=cluster.address, logging_level="ERROR")
    try:
        return list_pools(ray)
    finally:
        ray.shutdown()


def test_a_standing_pool_stays_warm_between_jobs_and_scores_like_the_local_engine(
    tiny, archive, cluster, tmp_path, capsys
):
    local = run_cli(tiny, archive, tmp_path / "local.csv")
    parts = sorted(Path(tiny["data"]).rglob("*.png"))[:12]
    files = [(p.name, p.read_bytes()) for p in parts]
    pool = ("--engine", "ray", "--address", cluster.address, "--workers", "2", "--pool", "t-warm")
    try:
        first: list[BatchRecord] = []
        rows = [row for _, row in iter_inspect_ray(
            files, tiny["classifier"], tiny["autoencoder"], address=cluster.address,
            workers=2, batch_size=2, records=first, pool="t-warm",
        )]  # fmt: skip
        assert [row["file_name"] for row in rows] == [name for name, _ in files]
        # Two workers, one on each node (1 CPU each), both took batches.
        assert len({r.node_id for r in first}) == 2
        capsys.readouterr()
        on_pool = run_cli(tiny, archive, tmp_path / "pool.csv", *pool)
        assert_same_results(on_pool, local)
        again: list[BatchRecord] = []
        list(iter_inspect_ray(
            files, tiny["classifier"], tiny["autoencoder"], address=cluster.address,
            workers=2, batch_size=2, records=again, pool="t-warm",
        ))  # fmt: skip
        # The same worker processes scored every job: the models were loaded once.
        assert {r.pid for r in again} == {r.pid for r in first}
        assert _pools(cluster) == {"t-warm": 2}
        capsys.readouterr()
        assert _pool_cli("--address", cluster.address, "--list") == 0
        assert "t-warm: 2 workers" in capsys.readouterr().out
        # Other runs on the same pool are refused with the fix, before anything is written.
        out = tmp_path / "other.csv"
        args = ["--classifier", str(tiny["classifier"]), "--images", *archive, "--out", str(out)]
        assert cli_main([*args, *pool]) == 2
        err = capsys.readouterr().err
        assert "--pool t-warm: the pool holds" in err and "--stop t-warm" in err
        assert not out.exists()
    finally:
        code = _pool_cli("--address", cluster.address, "--stop", "t-warm")
    assert code == 0
    assert "stopped pool t-warm: 2 workers" in capsys.readouterr().out
    assert _pools(cluster) == {}


def test_an_idle_pool_ends_itself_and_frees_its_cpus(tiny, cluster):
    parts = sorted(Path(tiny["data"]).rglob("*.png"))[:2]
    files = [(p.name, p.read_bytes()) for p in parts]
    rows = list(iter_inspect_ray(
        files, tiny["classifier"], None, address=cluster.address, workers=1,
        pool="t-idle", pool_idle_s=1,
    ))  # fmt: skip
    assert len(rows) == 2
    deadline = time.monotonic() + 60
    while _pools(cluster) and time.monotonic() < deadline:
        time.sleep(1)
    assert _pools(cluster) == {}


def _kill_mid_run(cluster, victim: str, replacement: str, files, **options) -> list:
    """Score files on the cluster, SIGKILL node `victim` once it has scored a batch, let
    node `replacement` join (as an autoscaler would); the rows."""
    records: list[BatchRecord] = []
    state: dict = {}

    def progress(done: int, total: int | None) -> None:
        if "killed_at" in state:
            return
        if victim not in state:
            state[victim] = cluster.node_id(victim)
        if any(r.node_id == state[victim] for r in records):
            state["killed_at"] = done
            cluster.kill(victim)
            # A replacement joins: the dead node's actor restarts there.
            threading.Thread(target=start_replacement, daemon=True).start()

    def start_replacement() -> None:
        try:
            cluster.start(replacement)
        # Torn down first when the run no longer needed it: the node fails to start, or its log
        # folder is already gone.
        except (RuntimeError, OSError) as exc:
            state[replacement] = str(exc)

    watchdog = threading.Timer(RUN_TIMEOUT_S, cluster.teardown)
    watchdog.start()
    try:
        rows = list(iter_inspect_ray(files, address=cluster.address, workers=2, batch_size=1,
                                     records=records, progress=progress, **options))  # fmt: skip
    finally:
        watchdog.cancel()
    assert state["killed_at"] < len(files), "the node was killed after the run had finished"
    assert cluster.nodes[victim].poll() is not None
    return rows


def _numbered_parts(tiny) -> list[tuple[str, bytes]]:
    """Every tiny part, each made distinct (no repeats), so all of them go to the workers."""
    parts = sorted(Path(tiny["data"]).rglob("*.png"))
    return [
        (f"{i:03d}_{p.name}", p.read_bytes() + i.to_bytes(2, "big")) for i, p in enumerate(parts)
    ]


def test_a_node_killed_mid_run_loses_and_repeats_nothing(tiny, cluster):
    files = _numbered_parts(tiny)
    runs = {"classifier": tiny["classifier"], "autoencoder": tiny["autoencoder"]}
    rows = _kill_mid_run(cluster, "node2", "node3", files, **runs)
    on_ray = results_frame(row for _, row in rows).set_index("file_name")
    assert list(on_ray.index) == [name for name, _ in files]
    local = inspect_batch(files, tiny["classifier"], tiny["autoencoder"], batch_size=1)
    assert_same_results(on_ray, local.set_index("file_name"))


def _wait_for_node(cluster, name: str) -> None:
    """Until node `name` (started in a thread by an earlier test) has joined."""
    deadline = time.monotonic() + NODE_START_TIMEOUT_S
    while name not in cluster.nodes or "Ray runtime started" not in cluster.log(name):
        assert time.monotonic() < deadline, f"ray node {name} did not join"
        time.sleep(0.5)


def test_a_standing_pool_loses_and_repeats_nothing_when_a_node_dies(tiny, cluster):
    _wait_for_node(cluster, "node3")
    files = _numbered_parts(tiny)
    runs = {"classifier": tiny["classifier"], "autoencoder": tiny["autoencoder"]}
    try:
        rows = _kill_mid_run(cluster, "node3", "node4", files, pool="t-kill", **runs)
    finally:
        assert _pool_cli("--address", cluster.address, "--stop", "t-kill") == 0
    on_pool = results_frame(row for _, row in rows).set_index("file_name")
    assert list(on_pool.index) == [name for name, _ in files]
    local = inspect_batch(files, tiny["classifier"], tiny["autoencoder"], batch_size=1)
    assert_same_results(on_pool, local.set_index("file_name"))


def test_without_ray_the_engine_names_the_extra(tiny, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)
    args = ["--classifier", str(tiny["classifier"]), "--images", str(tiny["images"])]
    code = cli_main([*args, "--out", str(tmp_path / "r.csv"), "--engine", "ray"])
    assert code == 2
    assert RAY_MISSING in capsys.readouterr().err
    assert not (tmp_path / "r.csv").exists()


def test_ray_options_without_the_ray_engine_exit_2(tiny, tmp_path, capsys):
    args = ["--classifier", str(tiny["classifier"]), "--images", str(tiny["images"])]
    code = cli_main([*args, "--out", str(tmp_path / "r.csv"), "--workers", "2"])
    assert code == 2
    assert "--address, --workers and --pool need --engine ray" in capsys.readouterr().err
    assert not (tmp_path / "r.csv").exists()


def test_a_pool_of_no_workers_is_refused_by_argparse(tiny, tmp_path, capsys):
    args = ["--classifier", str(tiny["classifier"]), "--images", str(tiny["images"])]
    with pytest.raises(SystemExit) as exit_info:
        cli_main([*args, "--out", str(tmp_path / "r.csv"), "--engine", "ray", "--workers", "0"])
    assert exit_info.value.code == 2
    assert "--workers: expected a whole number >= 1, got 0" in capsys.readouterr().err


def test_the_engine_refuses_a_pool_of_no_workers(tiny):
    with pytest.raises(InspectionError, match="workers must be at least 1, got 0"):
        iter_inspect_ray([], tiny["classifier"], workers=0)


def test_an_unknown_results_format_is_refused_before_scoring(tiny, tmp_path, capsys):
    args = ["--classifier", str(tiny["classifier"]), "--images", str(tiny["images"])]
    assert cli_main([*args, "--out", str(tmp_path / "r.xlsx")]) == 2
    assert "name the output .csv or .parquet" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--address", "auto", "--stop", "a b"], "--stop 'a b'"),
        (["--address", "127.0.0.1:1", "--list"], "--address 127.0.0.1:1"),
    ],
)
def test_the_pool_cli_refuses_bad_input_in_one_line(argv, named, capsys):
    assert _pool_cli(*argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert [line for line in err.splitlines() if "error:" in line] == [
        next(line for line in err.splitlines() if named in line)
    ]


def test_an_address_where_no_head_answers_is_refused_at_once(tiny, tmp_path, capsys):
    args = ["--classifier", str(tiny["classifier"]), "--images", str(tiny["images"])]
    out = tmp_path / "r.csv"
    code = cli_main([*args, "--out", str(out), "--engine", "ray", "--address", "127.0.0.1:1"])
    assert code == 2
    assert "--address 127.0.0.1:1: no Ray head answers there" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1:6379", ("127.0.0.1", 6379)),
        ("head.local:10001", ("head.local", 10001)),
        ("[::1]:6379", ("::1", 6379)),
        ("[fe80::1%eth0]:1", ("fe80::1%eth0", 1)),
    ],
)
def test_head_addresses_split_into_host_and_port(address, expected):
    assert split_host_port(address) == expected


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("::1:6379", "brackets"),
        ("[::1]6379", "after the brackets"),
        ("127.0.0.1:x", "port 'x' is not a number"),
    ],
)
def test_a_malformed_head_address_is_named_with_the_fix(address, reason):
    with pytest.raises(RayEngineError, match=r"not HOST:PORT") as err:
        _check_reachable(address)
    assert address in str(err.value) and reason in str(err.value)


def test_a_bracketed_ipv6_head_is_reached_and_a_silent_one_refused():
    try:
        server = socket.socket(socket.AF_INET6)
        server.bind(("::1", 0))
    except OSError:
        pytest.skip("this machine has no IPv6 loopback")
    with server:
        server.listen()
        port = server.getsockname()[1]
        _check_reachable(f"[::1]:{port}")  # a listening head: no error
    with pytest.raises(RayEngineError, match=r"no Ray head answers there"):
        _check_reachable(f"[::1]:{port}")  # closed now
