"""cgroup v2 for local runs: find a cgroup the kernel lets us limit, make one per run."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
from dataclasses import dataclass
from pathlib import Path

MOUNT = Path("/sys/fs/cgroup")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")
CONTROLLERS = ("memory", "cpu")
CPU_PERIOD_US = 100_000
_MIN_QUOTA_US = 1_000
_NAME_MAX = 255


def own_cgroup(proc_self_cgroup: Path = PROC_SELF_CGROUP) -> str | None:
    """This process's path in the unified hierarchy (the `0::` line), None when it has none."""
    try:
        text = proc_self_cgroup.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("0::"):
            return line[3:]
    return None


def find_root(
    explicit: Path | None = None,
    *,
    mount: Path = MOUNT,
    proc_self_cgroup: Path = PROC_SELF_CGROUP,
) -> tuple[Path | None, str]:
    """The cgroup to create run cgroups in, or None and why not, so the caller can say it.

    Without `explicit`, that is this process's own cgroup, and only on a pure cgroup v2 machine:
    on a v1 or hybrid layout the memory controller is not in the unified tree at all.
    """
    if explicit is None:
        if not (mount / "cgroup.controllers").is_file():
            return None, f"no cgroup v2 unified hierarchy mounted at {mount}"
        path = own_cgroup(proc_self_cgroup)
        if path is None:
            return None, "this process has no cgroup v2 path in /proc/self/cgroup"
        explicit = mount / path.lstrip("/")
    reason = _unusable(explicit)
    return (None, reason) if reason else (explicit, "")


def _words(path: Path) -> set[str]:
    try:
        return set(path.read_text().split())
    except OSError:
        return set()


def _unusable(root: Path) -> str:
    """Why run cgroups cannot be made under `root`; empty when they can."""
    available = _words(root / "cgroup.controllers")
    missing = [c for c in CONTROLLERS if c not in available]
    if missing:
        return f"controllers {', '.join(missing)} not available in {root}"
    enabled = _words(root / "cgroup.subtree_control")
    for controller in CONTROLLERS:
        if controller not in enabled:
            # Works for an empty delegated cgroup or the real root; EBUSY when processes sit here.
            with contextlib.suppress(OSError):
                (root / "cgroup.subtree_control").write_text(f"+{controller}")
    enabled = _words(root / "cgroup.subtree_control")
    missing = [c for c in CONTROLLERS if c not in enabled]
    if missing:
        return (
            f"{', '.join(missing)} not enabled in {root}/cgroup.subtree_control "
            "(a cgroup holding processes cannot delegate controllers; pass a delegated cgroup)"
        )
    if not os.access(root / "cgroup.procs", os.W_OK):
        return f"cannot move processes: {root}/cgroup.procs is not writable"
    probe = root / f"agentfleet-probe-{os.getpid()}"
    try:
        probe.mkdir(exist_ok=True)
        probe.rmdir()
    except OSError as error:
        return f"cannot create cgroups in {root}: {error}"
    return ""


def run_cgroup_name(state_dir: Path, run: str) -> str:
    """Directory name of a run's cgroup.

    Run names repeat across projects, so two state dirs on one machine must not share one.
    """
    tag = hashlib.sha256(str(state_dir).encode()).hexdigest()[:8]
    name = f"agentfleet-{tag}-{run}"
    if len(name) > _NAME_MAX:
        name = f"agentfleet-{tag}-{hashlib.sha256(run.encode()).hexdigest()[:32]}"
    return name


@dataclass(frozen=True)
class RunCgroup:
    """One run's cgroup: the kernel bounds memory and CPU of everything the run starts."""

    path: Path

    @classmethod
    def create(
        cls, root: Path, name: str, *, memory_mb: int | None, cpu_cores: float | None
    ) -> RunCgroup:
        path = root / name
        path.mkdir(exist_ok=True)
        if memory_mb is not None:
            (path / "memory.max").write_text(str(memory_mb * 1024 * 1024))
            swap = path / "memory.swap.max"
            if swap.exists():
                # Otherwise a run at its limit swaps instead of being OOM-killed.
                swap.write_text("0")
        if cpu_cores is not None:
            quota = max(_MIN_QUOTA_US, round(cpu_cores * CPU_PERIOD_US))
            (path / "cpu.max").write_text(f"{quota} {CPU_PERIOD_US}")
        return cls(path)

    def join_argv(self, argv: list[str]) -> list[str]:
        """`argv` behind a shell that moves itself into the cgroup, then execs it.

        The move happens in the child before the runner exists, so nothing it forks can start
        outside the cgroup; writing the pid from the parent after spawn would leave that window.
        A preexec_fn would do the same, but it is unsafe in a threaded driver.
        """
        return ["/bin/sh", "-c", 'echo $$ > "$0" || exit 125; exec "$@"', str(self.procs), *argv]

    @property
    def procs(self) -> Path:
        return self.path / "cgroup.procs"

    def oom_killed(self) -> bool:
        try:
            lines = (self.path / "memory.events").read_text().splitlines()
        except OSError:
            return False
        for line in lines:
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return value.strip() not in ("", "0")
        return False

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in self.procs.read_text().split()]
        except (OSError, ValueError):
            return []

    def signal(self, sig: int) -> None:
        """Signal every process of the run, also those that left its process group."""
        kill_file = self.path / "cgroup.kill"
        if sig == signal.SIGKILL and kill_file.exists():
            try:
                kill_file.write_text("1")
            except OSError:
                pass
            else:
                return
        for pid in self.pids():
            with contextlib.suppress(OSError):
                os.kill(pid, sig)

    def remove(self) -> bool:
        """Remove the cgroup; False while processes still hold it, so it is tried again."""
        try:
            self.path.rmdir()
        except FileNotFoundError:
            return True
        except OSError:
            return False
        return True
