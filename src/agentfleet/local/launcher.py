"""Start local runs as detached processes with OS-enforced limits, and find them again later."""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import psutil

from .cgroups import RunCgroup, find_root, run_cgroup_name

RUN_VAR = "AGENTFLEET_RUN"
STATE_DIR_VAR = "AGENTFLEET_STATE_DIR"
# psutil derives create_time from the boot time, which moves with clock adjustments.
_CREATE_TIME_TOLERANCE = 1.0
_REAP_AFTER_KILL_SECONDS = 1.0
# Someone else's waitpid(-1) took the status; Popen would otherwise report exit code 0.
_REAPED_ELSEWHERE = -(2**31)

# Children of closed launchers: kept so that they are reaped, not left as zombies.
_DETACHED: list[subprocess.Popen[bytes]] = []


@dataclass(frozen=True)
class Limits:
    memory_mb: int | None = None
    cpu_cores: float | None = None

    def __post_init__(self) -> None:
        if self.memory_mb is not None and self.memory_mb <= 0:
            raise ValueError(f"memory_mb must be positive, got {self.memory_mb}")
        if self.cpu_cores is not None and not self.cpu_cores > 0:
            raise ValueError(f"cpu_cores must be positive, got {self.cpu_cores}")


@dataclass(frozen=True)
class ProcessHandle:
    """What a driver stores to find the process again after it restarts."""

    run: str
    pid: int
    create_time: float
    cgroup: str | None
    cores: tuple[int, ...] | None


@dataclass(frozen=True)
class ProcessExit:
    exit_code: int | None
    signal: int | None
    oom_killed: bool


@dataclass
class _Run:
    handle: ProcessHandle
    popen: subprocess.Popen[bytes] | None
    cgroup: RunCgroup | None
    timer: threading.Timer | None = None
    exit: ProcessExit | None = None


def _reap_detached() -> None:
    _DETACHED[:] = [p for p in _DETACHED if p.poll() is None]


@contextlib.contextmanager
def _spawn_affinity(cores: tuple[int, ...] | None) -> Iterator[None]:
    """Pin the calling thread while it forks, so the child starts pinned.

    A child inherits the affinity of the thread that forks it: unlike a preexec_fn this is safe
    in a threaded driver, and unlike pinning after spawn it leaves no window in which the
    runner could fork an unpinned agent. Only this thread is affected, and only briefly.
    """
    if cores is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cores)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def _check_run_name(run: str) -> None:
    if not run or run in (".", "..") or any(c in run for c in "/\0\n"):
        raise ValueError(f"unusable run name {run!r}")


class Launcher:
    """Runs as session leaders with output in files, so they outlive a driver that is killed.

    Each run is found again through its handle (pid + create_time, safe against pid reuse) or,
    when the driver died before storing the handle, through the environment every run carries.
    """

    def __init__(
        self, state_dir: Path, *, cgroup_root: Path | None = None, grace_seconds: float = 5.0
    ) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.grace_seconds = grace_seconds
        self._root, self._no_cgroup_reason = find_root(cgroup_root)
        self._lock = threading.RLock()
        self._runs: dict[str, _Run] = {}
        self._cores: dict[str, tuple[int, ...]] = {}
        self._stale: list[RunCgroup] = []

    @property
    def memory_by_cgroup(self) -> bool:
        """False tells the driver to have the runner set RLIMIT_AS on its agent instead."""
        return self._root is not None

    @property
    def enforcement(self) -> dict[str, str]:
        grace = f"{self.grace_seconds:g}"
        timeout = (
            "the driver ends the run's process group when the stage timeout passes "
            f"(SIGTERM, SIGKILL {grace} s later)"
        )
        if self._root is not None:
            return {
                "memory": "cgroup v2 memory.max",
                "cpu": "cgroup v2 cpu.max",
                "time": timeout,
                "cgroup": str(self._root),
            }
        cores = len(os.sched_getaffinity(0))
        return {
            "memory": "RLIMIT_AS on the agent process",
            "cpu": f"CPU affinity to ceil(cpuCores) of the {cores} allowed cores",
            "time": timeout,
            "cgroup": f"not used: {self._no_cgroup_reason}",
        }

    def start(
        self,
        run: str,
        argv: list[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        limits: Limits,
        stdout: Path,
        stderr: Path,
    ) -> ProcessHandle:
        """Launch `argv` with exactly `env` plus the run's markers.

        The directory of sys.executable goes first on PATH: a driver started as
        `.venv/bin/agentfleet` without an activated venv would otherwise have its runs resolve
        `python` and `agentfleet` to another installation, without this one's packages.
        """
        _check_run_name(run)
        if not argv:
            raise ValueError("empty argv")
        with self._lock:
            _reap_detached()
            self._retry_stale()
            current = self._runs.get(run)
            if current is not None and current.exit is None:
                raise ValueError(f"run {run!r} is already running (pid {current.handle.pid})")
            child_env = dict(env)
            child_env[RUN_VAR] = run
            child_env[STATE_DIR_VAR] = str(self.state_dir)
            path = child_env.get("PATH") or os.defpath
            child_env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), path])
            program = self._resolve(argv[0], cwd=cwd, path=child_env["PATH"])
            command = [program, *argv[1:]]

            cgroup: RunCgroup | None = None
            cores: tuple[int, ...] | None = None
            if self._root is not None:
                cgroup = RunCgroup.create(
                    self._root,
                    run_cgroup_name(self.state_dir, run),
                    memory_mb=limits.memory_mb,
                    cpu_cores=limits.cpu_cores,
                )
                command = cgroup.join_argv(command)
            elif limits.cpu_cores is not None:
                cores = self._choose_cores(math.ceil(limits.cpu_cores))

            try:
                popen = self._spawn(
                    command, cwd=cwd, env=child_env, cores=cores, out=stdout, err=stderr
                )
            except BaseException:
                if cgroup is not None:
                    cgroup.remove()
                raise
            try:
                create_time = psutil.Process(popen.pid).create_time()
            except psutil.Error:
                create_time = 0.0
            handle = ProcessHandle(
                run=run,
                pid=popen.pid,
                create_time=create_time,
                cgroup=str(cgroup.path) if cgroup is not None else None,
                cores=cores,
            )
            self._runs[run] = _Run(handle, popen, cgroup)
            if cores is not None:
                self._cores[run] = cores
            return handle

    @staticmethod
    def _resolve(program: str, *, cwd: Path, path: str) -> str:
        """Resolve here, so a missing program fails start() itself, shim or no shim."""
        if os.sep in program:
            candidate = Path(cwd, program)
            if not os.access(candidate, os.X_OK) or candidate.is_dir():
                raise FileNotFoundError(f"not an executable: {candidate}")
            return str(candidate)
        found = shutil.which(program, path=path)
        if found is None:
            raise FileNotFoundError(f"{program!r} not found on PATH {path}")
        return str(Path(cwd, found)) if not os.path.isabs(found) else found

    @staticmethod
    def _spawn(
        command: list[str],
        *,
        cwd: Path,
        env: dict[str, str],
        cores: tuple[int, ...] | None,
        out: Path,
        err: Path,
    ) -> subprocess.Popen[bytes]:
        out.parent.mkdir(parents=True, exist_ok=True)
        err.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "ab") as out_file, open(err, "ab") as err_file, _spawn_affinity(cores):
            return subprocess.Popen(
                command,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out_file,
                stderr=err_file,
                start_new_session=True,
            )

    def _choose_cores(self, count: int) -> tuple[int, ...]:
        """The least-assigned allowed cores, so concurrent runs spread over the machine."""
        allowed = sorted(os.sched_getaffinity(0))
        load = Counter(core for cores in self._cores.values() for core in cores)
        chosen = sorted(allowed, key=lambda core: (load[core], core))[: min(count, len(allowed))]
        return tuple(sorted(chosen))

    def poll(self, handle: ProcessHandle) -> ProcessExit | None:
        with self._lock:
            _reap_detached()
            self._retry_stale()
            record = self._record(handle)
            if record.exit is not None:
                return record.exit
            exit_code: int | None = None
            sig: int | None = None
            if record.popen is not None:
                if not self._child_exited(record.popen):
                    return None
                self._end_leftovers(record)
                code = record.popen.returncode
                if code is None:
                    code = record.popen.wait()
                if code != _REAPED_ELSEWHERE:
                    exit_code, sig = (code, None) if code >= 0 else (None, -code)
            elif self._alive(handle):
                return None
            else:
                self._end_leftovers(record)
            oom = record.cgroup.oom_killed() if record.cgroup is not None else False
            record.exit = ProcessExit(exit_code=exit_code, signal=sig, oom_killed=oom)
            self._finish(record)
            return record.exit

    @staticmethod
    def _child_exited(popen: subprocess.Popen[bytes]) -> bool:
        """Has our child exited? Checked without reaping it, when it still needs reaping.

        An unreaped zombie keeps its pid, so its process group can still be signalled safely.
        """
        if popen.returncode is not None:
            return True
        try:
            status = os.waitid(os.P_PID, popen.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            popen.returncode = _REAPED_ELSEWHERE
            return True
        return status is not None

    def kill(self, handle: ProcessHandle) -> None:
        """SIGTERM the run now and SIGKILL it after the grace, from a timer: never blocks."""
        with self._lock:
            record = self._record(handle)
            if record.exit is not None or record.timer is not None:
                return
            self._signal(record, signal.SIGTERM)
            timer = threading.Timer(self.grace_seconds, self._escalate, (record,))
            timer.daemon = True
            record.timer = timer
            timer.start()

    def _escalate(self, record: _Run) -> None:
        with self._lock:
            if record.exit is None:
                self._signal(record, signal.SIGKILL)
                self._sweep(record.handle.run)

    def _signal(self, record: _Run, sig: int) -> None:
        """Signal the run's process group, which works while any member lives, leader or not."""
        handle = record.handle
        group: int | None = None
        if record.popen is not None:
            if record.popen.returncode is None:
                group = handle.pid
        elif self._alive(handle):
            with contextlib.suppress(OSError):
                group = os.getpgid(handle.pid)
        else:
            self._sweep(handle.run, sig)
        if group is not None and group > 1 and group != os.getpgid(0):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, sig)
        if record.cgroup is not None:
            record.cgroup.signal(sig)

    def _end_leftovers(self, record: _Run) -> None:
        """After the run's main process is gone, nothing it started may outlive it."""
        if record.popen is not None:
            self._signal(record, signal.SIGKILL)
        elif record.cgroup is not None:
            record.cgroup.signal(signal.SIGKILL)
        self._sweep(record.handle.run)

    def _sweep(self, run: str, sig: int = signal.SIGKILL) -> None:
        """Signal processes carrying this run's markers, also those that left its group."""
        for proc in self._marked():
            if proc.info["environ"].get(RUN_VAR) == run:
                with contextlib.suppress(psutil.Error):
                    proc.send_signal(sig)

    def _marked(self) -> Iterator[psutil.Process]:
        me = os.getpid()
        for proc in psutil.process_iter(["environ", "ppid", "status"]):
            environ = proc.info["environ"]
            if (
                proc.pid != me
                and environ
                and environ.get(STATE_DIR_VAR) == str(self.state_dir)
                and proc.info["status"] != psutil.STATUS_ZOMBIE
            ):
                yield proc

    def _finish(self, record: _Run) -> None:
        if record.timer is not None:
            record.timer.cancel()
        self._cores.pop(record.handle.run, None)
        if record.cgroup is not None and not record.cgroup.remove():
            self._stale.append(record.cgroup)

    def _retry_stale(self) -> None:
        self._stale = [cgroup for cgroup in self._stale if not cgroup.remove()]

    def _record(self, handle: ProcessHandle) -> _Run:
        """Our record of the run; a handle from an earlier driver gets one on first use."""
        record = self._runs.get(handle.run)
        if record is None or record.handle.pid != handle.pid:
            cgroup = RunCgroup(Path(handle.cgroup)) if handle.cgroup else None
            record = _Run(handle, None, cgroup)
            self._runs[handle.run] = record
        return record

    def _alive(self, handle: ProcessHandle) -> bool:
        """Is that exact process running: pid, creation time and, when readable, its markers."""
        try:
            proc = psutil.Process(handle.pid)
            if abs(proc.create_time() - handle.create_time) > _CREATE_TIME_TOLERANCE:
                return False
            if proc.status() == psutil.STATUS_ZOMBIE:
                return False
            try:
                environ = proc.environ()
            except psutil.AccessDenied:
                return True
        except psutil.Error:
            return False
        return environ.get(RUN_VAR) == handle.run and environ.get(STATE_DIR_VAR) == str(
            self.state_dir
        )

    def adopt(self, handle: ProcessHandle) -> bool:
        """After a driver restart: take the run over if that exact process still runs."""
        with self._lock:
            record = self._runs.get(handle.run)
            if record is not None and record.popen is not None and record.handle.pid == handle.pid:
                return self.poll(handle) is None
            if not self._alive(handle):
                return False
            self._record(handle)
            if handle.cores is not None:
                self._cores[handle.run] = handle.cores
            return True

    def find_orphans(self, known: Collection[str]) -> list[tuple[str, int]]:
        """(run, pid) of the topmost live process of every run of this state dir not in `known`.

        These are runs a dead driver started but never recorded; the caller ends them.
        """
        known = set(known)
        runs: dict[int, tuple[str, int]] = {}
        for proc in self._marked():
            run = proc.info["environ"].get(RUN_VAR)
            if run:
                runs[proc.pid] = (run, proc.info["ppid"])
        orphans = [
            (run, pid)
            for pid, (run, ppid) in runs.items()
            if run not in known and runs.get(ppid, ("", 0))[0] != run
        ]
        return sorted(orphans)

    def close(self) -> None:
        """Forget all runs but leave them running: they must outlive the driver.

        A kill still in its grace is completed at once, since no one remains to complete it.
        """
        with self._lock:
            for record in self._runs.values():
                if record.timer is not None and record.exit is None:
                    record.timer.cancel()
                    self._escalate(record)
                    deadline = time.monotonic() + _REAP_AFTER_KILL_SECONDS
                    while self.poll(record.handle) is None and time.monotonic() < deadline:
                        time.sleep(0.01)
                if record.exit is None and record.popen is not None:
                    self.poll(record.handle)
                    if record.exit is None:
                        _DETACHED.append(record.popen)
            self._retry_stale()
            self._runs.clear()
            self._cores.clear()
