"""Start the agent and watch it: streams, memory limit, deadline, and how it ended.

The agent gets its own session (process group), so a deadline or a stop ends everything it
started; a memory limit applies to the agent alone, so the runner can still report.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

from ..executors.base import Invocation
from .deadline import Deadline
from .process_group import (
    TERM_GRACE_SECONDS,
    exit_status,
    kill_group,
    reap_group,
    stop_requested,
    track,
    untrack,
)

STDERR_TAIL_LINES = 40
READER_JOIN_SECONDS = 5.0
# What programs print when an allocation fails; under RLIMIT_AS that is how they die.
OUT_OF_MEMORY_MARKERS = (
    "MemoryError",
    "Cannot allocate memory",
    "std::bad_alloc",
    "JavaScript heap out of memory",
    "runtime: out of memory",  # Go
    "memory allocation of",  # Rust: "memory allocation of N bytes failed"
)

LineHandler = Callable[[str], None]


@dataclass(frozen=True)
class AgentExit:
    """How the agent ended. `exit_code` follows the shell: killed by signal N is 128 + N."""

    exit_code: int | None
    duration_seconds: float
    stderr_tail: list[str]
    timed_out: bool = False
    stopped: bool = False
    out_of_memory: bool = False
    start_error: str = ""
    handler_error: str = ""


def _limit_memory(limit_bytes: int) -> Callable[[], None]:
    """RLIMIT_AS for the child alone, set between fork and exec.

    `resource` is imported at the top: an import in the forked child could wait forever on an
    import lock that a thread of the runner held at the fork.
    """

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))

    return apply


def _feed(stream: IO[bytes] | None, text: str) -> None:
    if stream is None:
        return
    # OSError: the agent exited, or closed stdin without reading the prompt.
    with contextlib.suppress(OSError):
        stream.write(text.encode("utf-8"))
    with contextlib.suppress(OSError):
        stream.close()


class _Reader(threading.Thread):
    """Reads one pipe line by line into a handler; the first handler error is kept, not raised."""

    def __init__(self, stream: IO[bytes] | None, handle: LineHandler) -> None:
        super().__init__(daemon=True)
        self._stream = stream
        self._handle = handle
        self.error = ""

    def run(self) -> None:
        if self._stream is None:
            return
        for raw in self._stream:
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            try:
                self._handle(line)
            except Exception as exc:  # a parser bug must not stall the agent on a full pipe
                self.error = self.error or f"{type(exc).__name__}: {exc}"


def _ran_out_of_memory(returncode: int, sent_kill: bool, stderr_tail: list[str]) -> bool:
    if returncode == 0:
        return False
    if returncode == -signal.SIGKILL and not sent_kill:
        return True  # the kernel's OOM killer, or a cgroup limit
    text = "\n".join(stderr_tail[-10:])
    return any(marker in text for marker in OUT_OF_MEMORY_MARKERS)


def run_agent(
    invocation: Invocation,
    cwd: str,
    deadline: Deadline,
    memory_limit_bytes: int | None,
    on_stdout: LineHandler,
    on_stderr: LineHandler,
) -> AgentExit:
    """Run the agent to its end, the deadline, or a stop request, and say how it ended."""
    started = time.monotonic()
    stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)

    def keep_stderr(line: str) -> None:
        stderr_tail.append(line)
        on_stderr(line)

    try:
        proc = subprocess.Popen(
            invocation.argv,
            cwd=cwd,
            env=invocation.environment(os.environ),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=_limit_memory(memory_limit_bytes) if memory_limit_bytes else None,
        )
    except OSError as exc:
        return AgentExit(
            exit_code=None,
            duration_seconds=time.monotonic() - started,
            stderr_tail=[],
            start_error=f"could not start {invocation.argv[0]!r}: {exc.strerror or exc}",
        )
    track(proc.pid)
    writer = threading.Thread(target=_feed, args=(proc.stdin, invocation.stdin_text), daemon=True)
    readers = [_Reader(proc.stdout, on_stdout), _Reader(proc.stderr, keep_stderr)]
    writer.start()
    for reader in readers:
        reader.start()

    timed_out = False
    try:
        proc.wait(timeout=deadline.remaining())
    except subprocess.TimeoutExpired:
        timed_out = True
        kill_group(proc.pid, TERM_GRACE_SECONDS, proc)
        proc.wait()
    finally:
        reap_group(proc.pid)  # leftovers would hold the pipes open and outlive the run
        untrack(proc.pid)
    for thread in (*readers, writer):
        thread.join(READER_JOIN_SECONDS)

    stopped = stop_requested()
    tail = list(stderr_tail)
    return AgentExit(
        exit_code=exit_status(proc.returncode),
        duration_seconds=time.monotonic() - started,
        stderr_tail=tail,
        timed_out=timed_out,
        stopped=stopped,
        out_of_memory=not stopped
        and not timed_out
        and _ran_out_of_memory(proc.returncode, timed_out or stopped, tail),
        handler_error=readers[0].error or readers[1].error,
    )
