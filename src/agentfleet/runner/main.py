"""`agentfleet runner --spec RUN.json --result RESULT.json`: one run, in a Pod or a local process.

Starts small: the first event is written before pydantic and the models load (they take most
of the start-up), and nothing here imports typer, rich, GitPython or the core.
Exit code: 0 the run succeeded, 1 it failed, 2 the spec could not be used.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from .events import EventSink, started_line

if TYPE_CHECKING:
    from ..models.run import RunResult
    from .deadline import Deadline

EXIT_SUCCEEDED = 0
EXIT_FAILED = 1
EXIT_INVALID_SPEC = 2


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="agentfleet runner", description="Run one attempt of one stage (or a refinement)."
    )
    parser.add_argument("--spec", required=True, help="the RunSpec JSON a driver wrote")
    parser.add_argument("--result", required=True, help="where to write the RunResult JSON")
    return parser.parse_args(argv)


def _peek(raw: str) -> dict[str, Any]:
    """The spec's raw fields, for the first event; validation comes later, with the models."""
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _invalid_spec(message: str, deadline: Deadline) -> RunResult:
    from .flow import failed
    from .result import Reason

    return failed(Reason.INVALID_SPEC, message, deadline)


def _validation_message(exc: Exception) -> str:
    from pydantic import ValidationError

    if not isinstance(exc, ValidationError):
        return str(exc)
    errors = exc.errors()
    shown = [f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in errors[:3]]
    more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
    return "invalid spec: " + "; ".join(shown) + more


def _finish(sink: EventSink, result_path: str, result: RunResult) -> int:
    from ..models.log import LogEventType
    from .result import Reason, write_result

    try:
        write_result(result_path, result)
        written = True
    except OSError as exc:
        print(f"agentfleet runner: cannot write {result_path}: {exc}", file=sys.stderr)
        written = False
    sink.emit(
        LogEventType.RUNNER,
        f"finished: {result.reason}",
        data={"result": result.to_wire(), "resultWritten": written},
        tokens=result.tokens,
        cost_usd=result.cost_usd,
    )
    if result.reason == Reason.INVALID_SPEC:
        return EXIT_INVALID_SPEC
    return EXIT_SUCCEEDED if result.reason == Reason.SUCCEEDED else EXIT_FAILED


def main(argv: list[str]) -> int:
    if argv[:1] == ["prepare"]:
        from .prepare import main as prepare_main

        return prepare_main(argv[1:])
    started = time.monotonic()
    args = _arguments(argv)
    try:
        with open(args.spec, encoding="utf-8") as handle:
            raw = handle.read()
        read_error = ""
    except (OSError, UnicodeDecodeError) as exc:
        raw, read_error = "", f"cannot read the spec {args.spec}: {exc}"
    peeked = _peek(raw)
    run = str(peeked.get("name") or "unknown")
    sink = EventSink(run, sys.stdout)
    sink.write_line(started_line(run, {"pid": os.getpid(), "spec": args.spec}))

    from .process_group import clear_stop, request_stop  # the models load after the event

    def stop(signum: int, _frame: object) -> None:
        request_stop()

    clear_stop()
    previous = {}
    if threading.current_thread() is threading.main_thread():  # signal handlers live there
        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return _run(sink, args.result, raw, read_error, started)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run(sink: EventSink, result_path: str, raw: str, read_error: str, started: float) -> int:
    from .deadline import Deadline
    from .spec import RunSpec

    if read_error:
        return _finish(sink, result_path, _invalid_spec(read_error, Deadline(None, started)))
    try:
        spec = RunSpec.model_validate_json(raw)
    except ValueError as exc:
        message = _validation_message(exc)
        return _finish(sink, result_path, _invalid_spec(message, Deadline(None, started)))

    from .flow import execute, failed
    from .result import Reason

    deadline = Deadline(spec.timeout_seconds, started)
    try:
        result = execute(spec, sink, deadline)
    except Exception as exc:  # the driver must get a result whatever went wrong
        import traceback

        traceback.print_exc(file=sys.stderr)
        result = failed(Reason.RUNNER_ERROR, f"{type(exc).__name__}: {exc}", deadline)
    # What the run was built from, in its record: the driver read the agent after decide() did.
    result = result.model_copy(update={"agent_generation": spec.agent_generation})
    return _finish(sink, result_path, result)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
