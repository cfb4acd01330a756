"""The process launcher on real processes: groups, kills, limits, and finding runs again."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import psutil
import pytest

from agentfleet.local.cgroups import find_root, run_cgroup_name
from agentfleet.local.launcher import Launcher, Limits, ProcessExit, ProcessHandle

GRACE = 0.5
T = TypeVar("T")


def wait_for(check: Callable[[], T], timeout: float = 5.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: {check}")
        time.sleep(0.02)


def wait_exit(launcher: Launcher, handle: ProcessHandle) -> ProcessExit:
    result: ProcessExit | None = None

    def exited() -> bool:
        nonlocal result
        result = launcher.poll(handle)
        return result is not None

    wait_for(exited)
    assert result is not None
    return result


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def start(
    launcher: Launcher,
    tmp_path: Path,
    run: str,
    script: str,
    limits: Limits | None = None,
    cwd: Path | None = None,
) -> ProcessHandle:
    return launcher.start(
        run,
        ["sh", "-c", script],
        cwd=cwd or tmp_path,
        env={"PATH": os.environ["PATH"]},
        limits=limits or Limits(),
        stdout=tmp_path / "logs" / f"{run}.out",
        stderr=tmp_path / "logs" / f"{run}.err",
    )


def end_everything(launcher: Launcher) -> None:
    for _, pid in launcher.find_orphans(()):
        with contextlib.suppress(OSError):
            os.killpg(os.getpgid(pid), signal.SIGKILL)
    launcher.close()


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def launcher(state: Path) -> Iterator[Launcher]:
    launcher = Launcher(state, grace_seconds=GRACE)
    yield launcher
    end_everything(launcher)


def test_run_leads_its_own_session_and_process_group(launcher: Launcher, tmp_path: Path) -> None:
    handle = start(launcher, tmp_path, "r1", "sleep 30")
    assert os.getpgid(handle.pid) == handle.pid
    assert os.getsid(handle.pid) == handle.pid
    assert os.getsid(handle.pid) != os.getsid(0)
    assert handle.create_time == psutil.Process(handle.pid).create_time()


def test_run_survives_its_launcher_and_popen_being_dropped(state: Path, tmp_path: Path) -> None:
    launcher = Launcher(state, grace_seconds=GRACE)
    handle = start(launcher, tmp_path, "r1", "sleep 30")
    launcher.close()
    del launcher
    gc.collect()
    time.sleep(0.1)
    assert not gone(handle.pid)

    restarted = Launcher(state, grace_seconds=GRACE)
    try:
        assert restarted.adopt(handle)
        restarted.kill(handle)
        assert wait_exit(restarted, handle) == ProcessExit(None, None, False)
    finally:
        end_everything(restarted)


DRIVER = """
import dataclasses, json, os, signal, sys
from pathlib import Path
from agentfleet.local.launcher import Launcher, Limits

tmp = Path(sys.argv[1])
handles = []
for state in ("state", "other"):
    launcher = Launcher(tmp / state)
    handle = launcher.start(
        "r1", ["sh", "-c", "sleep 30 & sleep 30"], cwd=tmp, env={"PATH": os.environ["PATH"]},
        limits=Limits(), stdout=tmp / f"{state}.out", stderr=tmp / f"{state}.err",
    )
    handles.append(dataclasses.asdict(handle))
print(json.dumps(handles), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_runs_outlive_a_sigkilled_driver_and_are_found_as_orphans_of_their_state_dir(
    launcher: Launcher, state: Path, tmp_path: Path
) -> None:
    driver = subprocess.run(
        [sys.executable, "-c", DRIVER, str(tmp_path)], capture_output=True, text=True, timeout=20
    )
    assert driver.returncode == -signal.SIGKILL, driver.stderr
    mine, other = (ProcessHandle(**h) for h in json.loads(driver.stdout))
    other_launcher = Launcher(tmp_path / "other")
    try:
        assert not gone(mine.pid)
        assert launcher.find_orphans(()) == [("r1", mine.pid)]
        assert launcher.find_orphans({"r1"}) == []
        assert other_launcher.find_orphans(()) == [("r1", other.pid)]

        assert launcher.adopt(mine)
        launcher.kill(mine)
        assert wait_exit(launcher, mine) == ProcessExit(None, None, False)
        assert launcher.find_orphans(()) == []
    finally:
        end_everything(other_launcher)


def test_kill_ends_the_whole_group_including_a_grandchild(
    launcher: Launcher, tmp_path: Path
) -> None:
    handle = start(launcher, tmp_path, "r1", "sleep 60 & echo $! > grandchild; sleep 60")
    grandchild = int(wait_for(lambda: _read(tmp_path / "grandchild")))
    assert launcher.poll(handle) is None

    launcher.kill(handle)
    launcher.kill(handle)
    result = wait_exit(launcher, handle)

    assert result.signal == signal.SIGTERM
    wait_for(lambda: gone(grandchild))
    assert gone(handle.pid)
    launcher.kill(handle)


def test_kill_reaches_the_group_after_its_leader_exited(launcher: Launcher, tmp_path: Path) -> None:
    handle = start(launcher, tmp_path, "r1", "sleep 60 & echo $! > grandchild")
    grandchild = int(wait_for(lambda: _read(tmp_path / "grandchild")))
    wait_for(lambda: psutil.Process(handle.pid).status() == psutil.STATUS_ZOMBIE)

    launcher.kill(handle)

    wait_for(lambda: gone(grandchild))
    assert wait_exit(launcher, handle) == ProcessExit(0, None, False)


def test_a_run_ignoring_sigterm_is_sigkilled_after_the_grace(
    launcher: Launcher, tmp_path: Path
) -> None:
    handle = start(launcher, tmp_path, "r1", "trap '' TERM; echo ready; sleep 60")
    wait_for(lambda: _read(tmp_path / "logs" / "r1.out") == "ready")
    started = time.monotonic()

    launcher.kill(handle)
    time.sleep(GRACE / 2)
    assert launcher.poll(handle) is None
    result = wait_exit(launcher, handle)

    assert result == ProcessExit(None, signal.SIGKILL, False)
    assert time.monotonic() - started >= GRACE


def test_exit_code_is_reported_and_what_the_run_left_behind_is_killed(
    launcher: Launcher, tmp_path: Path
) -> None:
    handle = start(launcher, tmp_path, "r1", "sleep 60 & echo $! > grandchild; exit 3")
    grandchild = int(wait_for(lambda: _read(tmp_path / "grandchild")))

    assert wait_exit(launcher, handle) == ProcessExit(3, None, False)
    wait_for(lambda: gone(grandchild), timeout=2)
    assert launcher.poll(handle) == ProcessExit(3, None, False)


def test_death_by_signal_is_reported(launcher: Launcher, tmp_path: Path) -> None:
    handle = start(launcher, tmp_path, "r1", "kill -s USR1 $$")
    assert wait_exit(launcher, handle) == ProcessExit(None, signal.SIGUSR1, False)


def test_a_missing_program_fails_start_itself(launcher: Launcher, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        launcher.start(
            "r1",
            ["agentfleet-no-such-program"],
            cwd=tmp_path,
            env={"PATH": os.environ["PATH"]},
            limits=Limits(),
            stdout=tmp_path / "out",
            stderr=tmp_path / "err",
        )


def test_a_run_name_cannot_be_started_twice_while_it_runs(
    launcher: Launcher, tmp_path: Path
) -> None:
    start(launcher, tmp_path, "r1", "sleep 30")
    with pytest.raises(ValueError, match="already running"):
        start(launcher, tmp_path, "r1", "sleep 30")


def test_env_markers_cwd_and_the_venv_first_on_path(
    launcher: Launcher, state: Path, tmp_path: Path
) -> None:
    worktree = tmp_path / "worktree"
    worktree.mkdir()
    script = (
        'printf "%s\\n" "$AGENTFLEET_RUN" "$AGENTFLEET_STATE_DIR" "$PATH" "$(pwd)" '
        '"$(command -v python)"'
    )
    handle = start(launcher, tmp_path, "r1", script, cwd=worktree)
    assert wait_exit(launcher, handle).exit_code == 0

    run, state_dir, path, cwd, python = _read(tmp_path / "logs" / "r1.out").splitlines()
    venv_bin = str(Path(sys.executable).parent)
    assert (run, state_dir, cwd) == ("r1", str(state.resolve()), str(worktree))
    assert path.split(os.pathsep)[0] == venv_bin
    assert python == os.path.join(venv_bin, "python")


def test_affinity_pins_runs_to_distinct_least_assigned_cores(
    launcher: Launcher, tmp_path: Path
) -> None:
    allowed = os.sched_getaffinity(0)
    if len(allowed) < 2:
        pytest.skip("needs two cores")
    one = Limits(cpu_cores=1)
    first = start(launcher, tmp_path, "r1", "sleep 30", one)
    second = start(launcher, tmp_path, "r2", "sleep 30", one)
    both = start(launcher, tmp_path, "r3", "sleep 30", Limits(cpu_cores=1.5))

    assert len(first.cores or ()) == len(second.cores or ()) == 1
    assert first.cores != second.cores
    assert len(both.cores or ()) == 2
    for handle in (first, second, both):
        assert os.sched_getaffinity(handle.pid) == set(handle.cores or ())
        assert handle.cgroup is None
    assert os.sched_getaffinity(0) == allowed


def test_cores_of_an_exited_run_are_assigned_again(launcher: Launcher, tmp_path: Path) -> None:
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two cores")
    one = Limits(cpu_cores=1)
    start(launcher, tmp_path, "r1", "sleep 30", one)
    short = start(launcher, tmp_path, "r2", "true", one)
    wait_exit(launcher, short)

    assert start(launcher, tmp_path, "r3", "sleep 30", one).cores == short.cores


def test_adopt_takes_over_a_live_run_and_polls_it_to_its_end(
    launcher: Launcher, state: Path, tmp_path: Path
) -> None:
    handle = start(launcher, tmp_path, "r1", "sleep 30")
    restarted = Launcher(state, grace_seconds=GRACE)
    try:
        assert restarted.adopt(handle)
        assert restarted.poll(handle) is None

        restarted.kill(handle)

        assert wait_exit(restarted, handle) == ProcessExit(None, None, False)
        assert wait_exit(launcher, handle) == ProcessExit(None, signal.SIGTERM, False)
        assert not restarted.adopt(handle)
    finally:
        restarted.close()


def test_adopt_refuses_a_process_that_is_not_the_run(
    launcher: Launcher, state: Path, tmp_path: Path
) -> None:
    handle = start(launcher, tmp_path, "r1", "sleep 30")
    restarted = Launcher(state)
    try:
        reused = dataclasses.replace(handle, create_time=handle.create_time + 100)
        assert not restarted.adopt(reused)
        assert not restarted.adopt(dataclasses.replace(handle, run="r2"))
        assert not Launcher(state.parent / "elsewhere").adopt(handle)
        assert restarted.adopt(handle)
    finally:
        restarted.close()


def _fake_cgroup(path: Path, subtree: str = "cpu memory") -> Path:
    path.mkdir(parents=True)
    (path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (path / "cgroup.subtree_control").write_text(f"{subtree}\n")
    (path / "cgroup.procs").write_text("")
    return path


def test_fake_cgroup_v2_root_gets_the_limits_the_process_and_reports_oom(
    state: Path, tmp_path: Path
) -> None:
    root = _fake_cgroup(tmp_path / "cgroup")
    launcher = Launcher(state, cgroup_root=root, grace_seconds=GRACE)
    try:
        assert launcher.memory_by_cgroup
        assert launcher.enforcement["memory"] == "cgroup v2 memory.max"
        assert launcher.enforcement["cpu"] == "cgroup v2 cpu.max"
        run_dir = root / run_cgroup_name(launcher.state_dir, "r1")
        run_dir.mkdir()
        (run_dir / "memory.swap.max").write_text("max\n")
        (run_dir / "memory.events").write_text("low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n")

        handle = start(
            launcher,
            tmp_path,
            "r1",
            "while [ ! -e go ]; do sleep 0.02; done",
            Limits(memory_mb=256, cpu_cores=1.5),
        )
        procs = wait_for(lambda: _read(run_dir / "cgroup.procs"))

        assert procs == str(handle.pid)
        assert (handle.cgroup, handle.cores) == (str(run_dir), None)
        assert _read(run_dir / "memory.max") == str(256 * 1024 * 1024)
        assert _read(run_dir / "memory.swap.max") == "0"
        assert _read(run_dir / "cpu.max") == "150000 100000"
        (run_dir / "memory.events").write_text("low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\n")
        (tmp_path / "go").touch()
        assert wait_exit(launcher, handle) == ProcessExit(0, None, True)

        quiet = start(launcher, tmp_path, "r2", "true", Limits(memory_mb=64))
        assert wait_exit(launcher, quiet) == ProcessExit(0, None, False)
        quiet_dir = Path(quiet.cgroup or "")
        assert not (quiet_dir / "cpu.max").exists()
        assert not (quiet_dir / "memory.swap.max").exists()
    finally:
        end_everything(launcher)


def test_fake_cgroup_root_without_delegated_controllers_is_not_used(
    state: Path, tmp_path: Path
) -> None:
    root = _fake_cgroup(tmp_path / "cgroup", subtree="cpu")
    launcher = Launcher(state, cgroup_root=root)
    assert not launcher.memory_by_cgroup
    reason = launcher.enforcement["cgroup"]
    assert "memory" in reason
    assert "not enabled" in reason


def test_own_cgroup_is_found_under_a_unified_mount(tmp_path: Path) -> None:
    mount = _fake_cgroup(tmp_path / "mnt")
    own = _fake_cgroup(mount / "user.slice" / "agentfleet.scope")
    proc_self = tmp_path / "proc-self-cgroup"
    proc_self.write_text("0::/user.slice/agentfleet.scope\n")
    assert find_root(mount=mount, proc_self_cgroup=proc_self) == (own, "")

    hybrid = tmp_path / "hybrid"
    hybrid.mkdir()
    found, reason = find_root(mount=hybrid, proc_self_cgroup=proc_self)
    assert found is None
    assert "no cgroup v2 unified hierarchy" in reason


def test_cgroup_detection_is_false_on_this_machine(state: Path) -> None:
    if Path("/sys/fs/cgroup/cgroup.controllers").exists():
        pytest.skip("a pure cgroup v2 machine; this test is for a v1 or hybrid layout")
    launcher = Launcher(state)
    assert not launcher.memory_by_cgroup
    assert launcher.enforcement["memory"] == "RLIMIT_AS on the agent process"
    assert launcher.enforcement["cpu"].startswith("CPU affinity")


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""
