"""Operator throughput: one TicketBatch of 500 tickets, how fast do its Pods appear?

The real operator (`Operator.build(...).run(...)`: kopf's watches, the reconciler thread,
`KubeApi`) runs in this process against the filled-in kmock emulator
(`tests/support/emulator.py`), which runs in a SEPARATE PROCESS so that serving the API
does not share the operator's GIL. One batch (refinement off, `parallelLimit` = tickets, no
dependencies, develop -> qa workflow) is applied, and the time until every ticket's first
Pod exists is measured with the operator's client limited to 20 QPS, to 50 QPS, and
unthrottled; each run with a fresh emulator and a fresh operator. See bench/README.md.

    .venv/bin/python bench/operator_throughput.py            # 500 tickets, 3 runs, ~3.5 min
    .venv/bin/python bench/operator_throughput.py --quick    # 100 tickets, ~50 s
    .venv/bin/python bench/operator_throughput.py --runs unthrottled --profile
    .venv/bin/python bench/operator_throughput.py --repeat 2 # each configuration twice

Progress goes to stdout; the last line is one JSON object (sorted keys).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import itertools
import json
import multiprocessing
import os
import platform
import pstats
import resource
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # for tests.support (the emulator) and tests.operator

NAMESPACE = "team-a"
BATCH = "bench"
QUIET_SECONDS = 1.0
"""The system is settled when the reconciler is idle and made no call for this long."""
RUN_QPS = {"qps20": 20.0, "qps50": 50.0, "unthrottled": 0.0}
CLK_TCK = os.sysconf("SC_CLK_TCK")

JSON = dict[str, Any]


def out(line: str = "") -> None:
    print(line, flush=True)


# --- the emulator, in its own process ---------------------------------------------------------


def emulator_process(conn: Any) -> None:
    """Child process: serve a FilledEmulator, answer commands on `conn` until told to stop."""
    asyncio.run(_serve(conn))


@contextlib.asynccontextmanager
async def _timed_emulator() -> AsyncIterator[Any]:
    import attrs
    import kmock
    from tests.support.emulator import FilledEmulator

    @attrs.define(kw_only=True)
    class TimedEmulator(FilledEmulator):
        """Records (monotonic time, plural, event) for every stored write."""

        writes: list[tuple[float, str, str]] = attrs.field(factory=list, init=False)

        def _publish(self, rtype: Any, kind: str, obj: JSON, old: JSON | None) -> None:
            self.writes.append((time.monotonic(), rtype.plural, kind))
            super()._publish(rtype, kind, obj, old)

    emu = TimedEmulator()
    async with emu, kmock.Server(emu):
        try:
            yield emu
        finally:
            emu.close_watches()
            await asyncio.sleep(0)


def _cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _serve(conn: Any) -> None:
    from agentfleet.crd import generate_crds

    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    async with _timed_emulator() as emu:
        for crd in generate_crds().values():
            emu.add_crd(crd)
        emu.write_object(
            "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
        )

        def answer() -> None:
            command, arg = conn.recv()
            if command == "stop":
                stopped.set()
                conn.send(None)
            elif command == "watches":
                conn.send(dict(emu.watch_requests))
            elif command == "cpu":
                conn.send((time.monotonic(), _cpu_self(), len(emu._requests)))
            elif command == "stats":
                conn.send(_stats(emu, arg))

        loop.add_reader(conn.fileno(), answer)
        conn.send(str(emu.url).rstrip("/"))
        await stopped.wait()
        loop.remove_reader(conn.fileno())


def _stats(emu: Any, since: float) -> JSON:
    pods = emu.list_objects("pods", NAMESPACE)
    tasks = emu.list_objects("agenttasks", NAMESPACE)
    batch = emu.get_object("ticketbatches", NAMESPACE, BATCH) or {}
    phases = Counter((t.get("status") or {}).get("phase") or "-" for t in tasks)
    pod_times = sorted(t for t, plural, kind in emu.writes if plural == "pods" and kind == "ADDED")
    writes_by = Counter(f"{kind} {plural}" for t, plural, kind in emu.writes if t >= since)
    reasons = Counter(
        f"{e.get('involvedObject', {}).get('kind')}/{e.get('reason')}"
        for e in emu.list_objects("events", NAMESPACE)
    )
    return {
        "pods": len(pods),
        "pod_added_times": pod_times,
        "tasks": len(tasks),
        "task_phases": dict(phases),
        "batch_phase": (batch.get("status") or {}).get("phase"),
        "last_write": max((t for t, _, _ in emu.writes), default=0.0),
        "writes": dict(writes_by),
        "requests": len(emu._requests),
        "event_reasons": dict(sorted(reasons.items())),
    }


class EmulatorProcess:
    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=emulator_process, args=(child,), daemon=True)
        self.proc.start()
        if not self.conn.poll(60):
            raise RuntimeError("the emulator process did not start")
        self.url: str = self.conn.recv()

    def ask(self, command: str, arg: Any = None) -> Any:
        self.conn.send((command, arg))
        return self.conn.recv()

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.ask("stop")
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)


# --- counting the operator's calls -------------------------------------------------------------


def call_kind(method: str, path: str) -> str:
    """`POST pods`, `PATCH agenttasks/status`, `LIST pods`, ... from a KubeApi request."""
    parts = [p for p in path.split("?", 1)[0].split("/") if p]
    rest = parts[2:] if parts[:1] == ["api"] else parts[3:]
    if len(rest) >= 3 and rest[0] == "namespaces":
        rest = rest[2:]
    plural = rest[0] if rest else "?"
    named = len(rest) >= 2
    sub = f"/{rest[2]}" if len(rest) >= 3 else ""
    verb = "LIST" if method == "GET" and not named else method
    return f"{verb} {plural}{sub}"


@dataclass
class CallLog:
    """Every KubeApi.request: (end time, kind, HTTP code); recorded by wrapping the instance."""

    target_pods: int
    records: list[tuple[float, str, int, float]] = field(default_factory=list)
    """(end, kind, HTTP code, start) of each call, in the order they ended."""
    pods_created: int = 0
    pods_done_at: float | None = None
    pods_done_index: int | None = None
    pods_done: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wrap(self, api: Any) -> None:
        from agentfleet.operator.client import ApiError

        original = api.request  # the bound method; KubeApi.create/patch/... call self.request

        def request(method: str, path: str, *args: Any, **kwargs: Any) -> Any:
            code = 200
            start = time.monotonic()
            try:
                return original(method, path, *args, **kwargs)
            except ApiError as exc:
                code = exc.code
                raise
            except Exception:
                code = -1
                raise
            finally:
                kind = call_kind(method, path)
                now = time.monotonic()
                with self.lock:
                    self.records.append((now, kind, code, start))
                    if kind == "POST pods" and 200 <= code < 300:
                        self.pods_created += 1
                        if self.pods_created == self.target_pods:
                            self.pods_done_at = now
                            self.pods_done_index = len(self.records)
                            self.pods_done.set()

        api.request = request

    def last_call(self) -> float:
        with self.lock:
            return self.records[-1][0] if self.records else 0.0


def thread_cpu() -> dict[str, float]:
    """CPU seconds of each thread of this process, by thread name (from /proc)."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    found: dict[str, float] = Counter()
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
        name = names.get(int(tid), "other")
        if name.startswith("ThreadPoolExecutor") or name.startswith("asyncio_"):
            name = "executor threads"
        found[name] += cpu
    return dict(found)


# --- one run ------------------------------------------------------------------------------------


def batch_manifest(tickets: int) -> JSON:
    from tests.operator import manifests as m

    items = [m.ticket(f"t{i:04d}") for i in range(tickets)]
    return m.batch(BATCH, items, parallel_limit=tickets)


def kopf_settings(settings: Any) -> None:
    """kopf's defaults, but a quick exit when the run is over (not measured)."""
    settings.background.instant_exit_timeout = 0.1
    if EXPERIMENTS.get("no_diffbase"):
        settings.persistence.diffbase_storage = _no_diffbase()


EXPERIMENTS: dict[str, bool] = {}
"""Diagnosis only (`--experiment-no-diffbase`); the reported numbers never use these."""


def _no_diffbase() -> Any:
    """A kopf diff-base storage that builds nothing: the operator has no change handlers.

    kopf builds (deep-copies) each event's body essence twice and clears its progress
    markers (two more deep copies) for every event, even when only event handlers exist.
    """
    import kopf

    class NoDiffBase(kopf.AnnotationsDiffBaseStorage):
        def build(self, *, body: Any, extra_fields: Any = None) -> Any:
            return None

        def fetch(self, *, body: Any) -> Any:
            return None

    return NoDiffBase()


def create(custom: Any, body: JSON) -> None:
    from tests.operator.harness import PLURALS

    from agentfleet.models import GROUP, VERSION

    body = json.loads(json.dumps(body))
    body["metadata"]["namespace"] = NAMESPACE
    plural = PLURALS[body["kind"]]
    custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, plural, body)


def wait_until(check: Any, timeout: float, what: str, step: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(step)


def longest_pause(records: list[tuple[float, str, int, float]]) -> str | None:
    """Which calls the longest pause of the reconciler came between: `POST agenttasks #500 ->
    POST persistentvolumeclaims #1` is the step from the round that creates the tasks to the
    round that starts their Pods."""
    if len(records) < 2:
        return None
    seen: Counter[str] = Counter()
    numbered = []
    for record in records:
        seen[record[1]] += 1
        numbered.append(f"{record[1]} #{seen[record[1]]}")
    i = max(range(1, len(records)), key=lambda j: records[j][3] - records[j - 1][0])
    return f"{numbered[i - 1]} -> {numbered[i]}"


def one_run(label: str, qps: float, tickets: int, profile: bool) -> JSON:
    import kubernetes.client
    from tests.operator import manifests as m

    from agentfleet.operator.main import Operator
    from agentfleet.operator.settings import OperatorSettings

    burst = 1 if qps > 0 else 100
    emu = EmulatorProcess()
    api_client = None
    running: tuple[Any, threading.Thread, threading.Event] | None = None
    profiles: dict[str, cProfile.Profile] = {}
    try:
        configuration = kubernetes.client.Configuration()
        configuration.host = emu.url
        api_client = kubernetes.client.ApiClient(configuration)
        custom = kubernetes.client.CustomObjectsApi(api_client)
        for doc in m.base():
            create(custom, doc)

        settings = OperatorSettings(
            namespaces=(NAMESPACE,), liveness="", metrics_port=0, qps=qps, burst=burst
        )
        op_config = kubernetes.client.Configuration()
        op_config.host = emu.url
        operator = Operator.build(settings, op_config)
        log = CallLog(target_pods=tickets)
        log.wrap(operator.api)
        if profile:
            inner = operator.run_reconciler

            def profiled_reconciler(stop: threading.Event) -> None:
                prof = profiles["reconciler"] = cProfile.Profile()
                prof.enable()
                try:
                    inner(stop)
                finally:
                    prof.disable()

            operator.run_reconciler = profiled_reconciler

        stop, ready = threading.Event(), threading.Event()

        def run() -> None:
            prof = None
            if profile:
                prof = profiles["kopf"] = cProfile.Profile()
                prof.enable()
            try:
                operator.run(
                    stop_flag=stop,
                    ready_flag=ready,
                    kopf_settings=kopf_settings,
                    serve_metrics=False,
                )
            finally:
                if prof is not None:
                    prof.disable()

        thread = threading.Thread(target=run, name="kopf", daemon=True)
        thread.start()
        running = (operator, thread, stop)
        if not ready.wait(20):
            raise RuntimeError("kopf did not get ready")
        wait_until(
            lambda: all(emu.ask("watches").get(p, 0) >= 1 for p in ("pods", "ticketbatches")),
            20,
            "kopf's watches",
        )
        # The reconciler lists everything once, then has nothing to do: wait for that.
        wait_until(
            lambda: (
                operator.reconciler.idle.is_set()
                and operator.reconciler.rounds > 0
                and time.monotonic() - log.last_call() > 0.3
            ),
            20,
            "the reconciler's first round",
        )
        calls_before = len(log.records)
        counter_before = operator.api.calls
        rounds_before = operator.reconciler.rounds
        body = batch_manifest(tickets)

        cpu_before = thread_cpu()
        emu_t0, emu_cpu0, emu_req0 = emu.ask("cpu")
        t0 = time.monotonic()
        create(custom, body)
        applied = time.monotonic()
        out(f"  [{label}] batch of {tickets} applied in {applied - t0:.3f} s")
        timeout = max(120.0, tickets * 4 / qps if qps else 0)
        if not log.pods_done.wait(timeout):
            raise RuntimeError(f"only {log.pods_created} of {tickets} Pods after {timeout} s")
        pods_at = log.pods_done_at
        assert pods_at is not None
        assert log.pods_done_index is not None
        emu_t1, emu_cpu1, emu_req1 = emu.ask("cpu")
        cpu_pods = thread_cpu()
        out(f"  [{label}] {tickets} Pods created after {pods_at - t0:.2f} s")

        def quiet() -> bool:
            last = log.last_call()
            return (
                operator.reconciler.idle.is_set()
                and time.monotonic() - last >= QUIET_SECONDS
                and operator.api.calls == counter_before + len(log.records) - calls_before
            )

        wait_until(quiet, timeout + 60, "the operator to settle", step=0.05)
        settled_at = log.last_call()
        cpu_settled = thread_cpu()
        _, emu_cpu2, emu_req2 = emu.ask("cpu")
        stats = emu.ask("stats", t0)
        counter_after = operator.api.calls
        rounds = operator.reconciler.rounds - rounds_before
        with log.lock:
            records = list(log.records)
    finally:
        if running is not None:
            running[2].set()
            running[1].join(20)
        if api_client is not None:
            api_client.close()
        emu.stop()

    until_pods = records[calls_before : log.pods_done_index]
    until_settled = records[calls_before:]
    durations = sorted((end - start) * 1000 for end, _, _, start in until_pods)
    gaps = sorted((b[3] - a[0]) * 1000 for a, b in itertools.pairwise(until_pods))
    pod_times = stats["pod_added_times"]
    emulator_pods_at = pod_times[tickets - 1] if len(pod_times) >= tickets else None
    elapsed = pods_at - t0
    settled = settled_at - t0
    calls = len(until_pods)
    result: JSON = {
        "label": label,
        "qps": qps,
        "burst": burst if qps else None,
        "tickets": tickets,
        "apply_seconds": round(applied - t0, 4),
        "first_call_seconds": round(until_pods[0][3] - t0, 3) if until_pods else None,
        "first_pod_seconds": round(pod_times[0] - t0, 3) if pod_times else None,
        "pods_seconds": round(elapsed, 3),
        "pods_seconds_emulator": round(emulator_pods_at - t0, 3) if emulator_pods_at else None,
        "pods_per_second": round(tickets / elapsed, 2),
        "calls_until_pods": calls,
        "api_calls_per_pod": round(calls / tickets, 3),
        "calls_per_second": round(calls / elapsed, 2),
        "budget_use": round(calls / (qps * elapsed + burst), 4) if qps else None,
        "settled_seconds": round(settled, 3),
        "calls_until_settled": len(until_settled),
        "api_calls_per_pod_settled": round(len(until_settled) / tickets, 3),
        "reconciler_rounds_until_settled": rounds,
        "counter_matches": counter_after - counter_before == len(until_settled),
        "failed_calls": sum(1 for _, _, code, _ in until_settled if not 200 <= code < 300),
        "calls_by_kind_until_pods": dict(sorted(Counter(r[1] for r in until_pods).items())),
        "calls_by_kind_settled": dict(sorted(Counter(r[1] for r in until_settled).items())),
        "request_ms_median": round(statistics.median(durations), 2),
        "request_ms_p95": round(durations[int(len(durations) * 0.95)], 2),
        "in_requests_share": round(sum(durations) / 1000 / elapsed, 3),
        "between_calls_ms_median": round(statistics.median(gaps), 2) if gaps else None,
        "between_calls_s_total": round(sum(gaps) / 1000, 3),
        "between_calls_ms_max": round(max(gaps), 1) if gaps else None,
        "longest_pause_between": longest_pause(until_pods),
        "emulator_pods": stats["pods"],
        "emulator_tasks": stats["tasks"],
        "task_phases": stats["task_phases"],
        "batch_phase": stats["batch_phase"],
        "emulator_requests_until_pods": emu_req1 - emu_req0,
        "emulator_cpu_until_pods": round(emu_cpu1 - emu_cpu0, 3),
        "emulator_busy_until_pods": round((emu_cpu1 - emu_cpu0) / max(emu_t1 - emu_t0, 1e-9), 3),
        "emulator_cpu_until_settled": round(emu_cpu2 - emu_cpu0, 3),
        "operator_cpu_until_pods": {
            k: round(v - cpu_before.get(k, 0.0), 3) for k, v in sorted(cpu_pods.items())
        },
        "operator_cpu_until_settled": {
            k: round(v - cpu_before.get(k, 0.0), 3) for k, v in sorted(cpu_settled.items())
        },
        "emulator_writes_settled": stats["writes"],
        "event_reasons": stats["event_reasons"],
        "emulator_requests_until_settled": emu_req2 - emu_req0,
    }
    result["operator_busy_until_pods"] = round(
        sum(result["operator_cpu_until_pods"].values()) / elapsed, 3
    )
    if profiles:
        result["profile"] = {name: prof for name, prof in profiles.items()}
    return result


def show(result: JSON) -> None:
    label = result["label"]
    out(
        f"  [{label}] {result['pods_per_second']} Pods/s, {result['calls_until_pods']} calls "
        f"({result['api_calls_per_pod']}/Pod, {result['calls_per_second']}/s"
        + (f", budget use {result['budget_use']}" if result["budget_use"] is not None else "")
        + f"); settled after {result['settled_seconds']} s with "
        f"{result['calls_until_settled']} calls ({result['api_calls_per_pod_settled']}/Pod)"
    )
    out(
        f"  [{label}] last Pod: {result['pods_seconds']} s by the operator's clock, "
        f"{result['pods_seconds_emulator']} s by the emulator's"
    )
    out(
        f"  [{label}] first call after {result['first_call_seconds']} s, "
        f"first Pod after {result['first_pod_seconds']} s; "
        f"{result['reconciler_rounds_until_settled']} reconciler rounds until settled"
    )
    out(
        f"  [{label}] until Pods: a call took {result['request_ms_median']} ms (median; p95 "
        f"{result['request_ms_p95']}), {result['between_calls_ms_median']} ms between calls "
        f"(in all {result['between_calls_s_total']} s, longest "
        f"{result['between_calls_ms_max']} ms, {result['longest_pause_between']}); "
        f"{result['in_requests_share']} of the time in a call"
    )
    out(f"  [{label}] calls until Pods:   {result['calls_by_kind_until_pods']}")
    out(f"  [{label}] calls until settled: {result['calls_by_kind_settled']}")
    out(f"  [{label}] Events posted (involved kind/reason): {result['event_reasons']}")
    out(
        f"  [{label}] emulator: {result['emulator_pods']} Pods, {result['emulator_tasks']} tasks "
        f"{result['task_phases']}, batch {result['batch_phase']}; its CPU until Pods "
        f"{result['emulator_cpu_until_pods']} s (busy {result['emulator_busy_until_pods']})"
    )
    out(
        f"  [{label}] operator CPU until Pods: {result['operator_cpu_until_pods']} "
        f"(busy {result['operator_busy_until_pods']} of one core)"
    )


def print_profile(name: str, prof: cProfile.Profile, limit: int) -> None:
    for key in ("tottime", "cumulative"):
        buf = io.StringIO()
        stats = pstats.Stats(prof, stream=buf)
        stats.strip_dirs().sort_stats(key).print_stats(limit)
        out(f"--- cProfile, thread {name}, by {key} ---")
        lines = buf.getvalue().splitlines()
        start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
        for line in lines[max(0, start - 3) :]:
            if line.strip():
                out(line)


def calibrate() -> float:
    """Milliseconds of a fixed pure-Python workload (JSON and dict work, as the operator does).

    Not a target: it tells how fast this machine was at the time, so that runs made at
    different moments on a shared VM can be compared (slower CPU, fewer Pods/s unthrottled).
    """
    body = {"metadata": {"name": "x", "labels": {f"k{i}": f"v{i}" for i in range(20)}}}
    body["spec"] = {
        "containers": [{"env": [{"name": f"E{i}", "value": "x" * 40} for i in range(40)]}]
    }
    times = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(300):
            json.loads(json.dumps(body))
        times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tickets", type=int, default=500)
    parser.add_argument("--quick", action="store_true", help="100 tickets: a smoke run")
    parser.add_argument(
        "--runs", default=",".join(RUN_QPS), help=f"comma-separated subset of {list(RUN_QPS)}"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs of each configuration")
    parser.add_argument(
        "--profile", action="store_true", help="cProfile kopf's and the reconciler's threads"
    )
    parser.add_argument("--profile-lines", type=int, default=30)
    parser.add_argument(
        "--experiment-no-diffbase",
        action="store_true",
        help="diagnosis only: give kopf a diff-base storage that copies nothing",
    )
    parser.add_argument(
        "--switch-interval",
        type=float,
        default=None,
        help="diagnosis only: sys.setswitchinterval() for the operator's process (default 0.005)",
    )
    args = parser.parse_args()
    tickets = 100 if args.quick else args.tickets
    labels = [label.strip() for label in args.runs.split(",") if label.strip()]
    for label in labels:
        if label not in RUN_QPS:
            parser.error(f"unknown run {label!r}")

    EXPERIMENTS["no_diffbase"] = args.experiment_no_diffbase
    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval)
    began = time.monotonic()
    load = os.getloadavg()
    calibration = calibrate()
    out(
        f"operator throughput: {tickets} tickets, runs {labels} x{args.repeat}, "
        f"{os.cpu_count()} CPUs, load {load[0]:.2f}, emulator in its own process"
    )
    results: dict[str, list[JSON]] = {label: [] for label in labels}
    for attempt in range(args.repeat):
        for label in labels:
            out(f"run {label} (qps={RUN_QPS[label] or 'unlimited'}) #{attempt + 1}")
            result = one_run(label, RUN_QPS[label], tickets, args.profile)
            profiles = result.pop("profile", {})
            show(result)
            for name, prof in profiles.items():
                print_profile(name, prof, args.profile_lines)
            results[label].append(result)

    summary: JSON = {
        "tickets": tickets,
        "quick": args.quick,
        "repeat": args.repeat,
        "emulator": "separate process",
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_at_start": round(load[0], 2),
        "calibration_ms": calibration,
        "profiled": args.profile,
        "switch_interval": sys.getswitchinterval(),
        "experiment_no_diffbase": args.experiment_no_diffbase,
    }

    def median(label: str, key: str) -> Any:
        values = [r[key] for r in results[label] if r[key] is not None]
        return round(statistics.median(values), 4) if values else None

    for label in labels:
        summary[f"pods_per_second_{label}"] = median(label, "pods_per_second")
        summary[f"pods_seconds_{label}"] = median(label, "pods_seconds")
        summary[f"settled_seconds_{label}"] = median(label, "settled_seconds")
        summary[f"calls_per_second_{label}"] = median(label, "calls_per_second")
        if RUN_QPS[label]:
            summary[f"{label}_budget_use"] = median(label, "budget_use")
        summary[f"api_calls_per_pod_{label}"] = median(label, "api_calls_per_pod")
        summary[f"api_calls_per_pod_settled_{label}"] = median(label, "api_calls_per_pod_settled")
        summary[f"emulator_busy_{label}"] = median(label, "emulator_busy_until_pods")
        summary[f"operator_busy_{label}"] = median(label, "operator_busy_until_pods")
    all_runs = [r for runs in results.values() for r in runs]
    summary["api_calls_per_pod"] = max(r["api_calls_per_pod"] for r in all_runs)
    summary["api_calls_per_pod_settled"] = max(r["api_calls_per_pod_settled"] for r in all_runs)
    last = all_runs[-1]
    summary["calls_by_kind_until_pods"] = last["calls_by_kind_until_pods"]
    summary["calls_by_kind_settled"] = last["calls_by_kind_settled"]
    summary["event_reasons"] = last["event_reasons"]
    summary["calls_by_kind_from"] = f"{last['label']} #{len(results[last['label']])}"
    summary["problems"] = sum(
        (r["emulator_pods"] != tickets)
        + (r["emulator_tasks"] != tickets)
        + (r["task_phases"].get("Running") != tickets)
        + (not r["counter_matches"])
        + r["failed_calls"]
        for r in all_runs
    )
    summary["load_at_end"] = round(os.getloadavg()[0], 2)
    summary["calibration_ms_at_end"] = calibrate()
    summary["elapsed_seconds"] = round(time.monotonic() - began, 1)
    print(json.dumps(summary, sort_keys=True), flush=True)


if __name__ == "__main__":
    main()
