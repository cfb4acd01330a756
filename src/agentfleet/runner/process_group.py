"""Child programs in their own process group, so a timeout ends everything they started."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections import deque
from dataclasses import dataclass

TERM_GRACE_SECONDS = 3.0
TAIL_LINES = 20

# The groups this runner started and has not reaped: what a SIGTERM to the runner must end too,
# since each lives in its own session and would otherwise outlive the runner.
_live_groups: set[int] = set()
_stop_requested = threading.Event()


def stop_requested() -> bool:
    return _stop_requested.is_set()


def clear_stop() -> None:
    """Forget an earlier stop: main() may run more than once in one process (tests)."""
    _stop_requested.clear()


def request_stop(grace_seconds: float = TERM_GRACE_SECONDS) -> None:
    """End every live group (SIGTERM now, SIGKILL after the grace); safe in a signal handler."""
    _stop_requested.set()
    groups = list(_live_groups)
    for pgid in groups:
        _signal_group(pgid, signal.SIGTERM)
    if groups:
        timer = threading.Timer(grace_seconds, _kill_groups, args=(groups,))
        timer.daemon = True
        timer.start()


def _kill_groups(groups: list[int]) -> None:
    for pgid in groups:
        _signal_group(pgid, signal.SIGKILL)


def track(pgid: int) -> None:
    _live_groups.add(pgid)
    if _stop_requested.is_set():
        _signal_group(pgid, signal.SIGKILL)  # asked to stop while it was being started


def untrack(pgid: int) -> None:
    _live_groups.discard(pgid)


def kill_group(pgid: int, grace_seconds: float, proc: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM the group, give `proc` `grace_seconds` to exit, then SIGKILL what is left."""
    _signal_group(pgid, signal.SIGTERM)
    if proc is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace_seconds)
    _signal_group(pgid, signal.SIGKILL)


def reap_group(pgid: int) -> None:
    """SIGKILL whatever a finished program left running in its group (daemons, `cmd &`)."""
    _signal_group(pgid, signal.SIGKILL)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is gone
        os.killpg(pgid, sig)


def exit_status(returncode: int) -> int:
    """A Popen return code as a shell and Kubernetes report it: killed by signal N is 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


@dataclass(frozen=True)
class CommandResult:
    exit_code: int | None
    output_tail: str
    timed_out: bool = False
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and not self.error


def run_command(argv: list[str], cwd: str, timeout: float | None) -> CommandResult:
    """Run `argv` (no shell) to completion or `timeout`; stdout and stderr merged, tail kept."""
    if timeout is not None and timeout <= 0:
        return CommandResult(exit_code=None, output_tail="", timed_out=True)
    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        return CommandResult(exit_code=None, output_tail="", error=f"could not start: {exc}")
    track(proc.pid)
    timed_out = False
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        kill_group(proc.pid, TERM_GRACE_SECONDS, proc)
        output, _ = proc.communicate()
    finally:
        reap_group(proc.pid)
        untrack(proc.pid)
    return CommandResult(
        exit_code=exit_status(proc.returncode),
        output_tail=tail(output.decode("utf-8", errors="replace")),
        timed_out=timed_out,
    )


def tail(text: str, lines: int = TAIL_LINES, chars: int = 1500) -> str:
    """The end of some output: what a human needs to see why a command failed."""
    kept = deque(text.rstrip().splitlines(), maxlen=lines)
    joined = "\n".join(kept)
    return joined[-chars:]
