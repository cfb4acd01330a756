"""Worktree benchmark: how soon a ready task has a usable worktree, against `git worktree add`.

Builds a synthetic repository of many small files in a temporary folder, then measures in the
same run: a bare `git worktree add`, a `git clone --local`, `WorktreeManager.acquire` with a
warm pool (the pool refilled between measurements, as the background thread does off the
critical path), the same after the base moved, a cold acquire, 8 acquires at once from
threads (warm pool of 8, and cold), and the disk one worktree takes. See bench/README.md.

    .venv/bin/python bench/worktrees.py [--files N] [--trials N] [--dir DIR] [--keep]

Progress goes to stdout; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from agentfleet.local.worktrees import WorktreeManager

BASE = "main"


def out(line: str = "") -> None:
    print(line, flush=True)


def git(
    cwd: Path, *args: str, stdin: bytes | None = None, env: dict[str, str] | None = None
) -> str:
    return subprocess.run(
        ["git", *args],
        cwd=cwd,
        input=stdin,
        env={**os.environ, **(env or {})},
        check=True,
        capture_output=True,
    ).stdout.decode()


def file_path(i: int) -> str:
    return f"d{i // 1000:03d}/s{(i // 100) % 10}/f{i:06d}.txt"


def build_repo(repo: Path, files: int) -> dict[str, float]:
    """One commit of `files` small files through `git fast-import`, then the user's checkout."""
    began = time.perf_counter()
    git(repo.parent, "init", "-q", "-b", BASE, str(repo))
    for key, value in (("user.name", "bench"), ("user.email", "bench@example.com")):
        git(repo, "config", key, value)
    stream = [b"commit refs/heads/main\ncommitter bench <bench@example.com> 1700000000 +0000\n"]
    stream.append(b"data 4\nbase\n")
    for i in range(files):
        body = f"line {i} of a small source file\n".encode() * 3
        stream.append(
            b"M 100644 inline %s\ndata %d\n%s\n" % (file_path(i).encode(), len(body), body)
        )
    stream.append(b"done\n")
    git(repo, "fast-import", "--quiet", "--done", stdin=b"".join(stream))
    imported = time.perf_counter() - began
    began = time.perf_counter()
    git(repo, "checkout", "-q", "-f", BASE)
    return {
        "import_s": round(imported, 3),
        "user_checkout_s": round(time.perf_counter() - began, 3),
    }


def move_base(repo: Path, scratch: Path, k: int, files: int, changed: int = 10) -> str:
    """Commit `changed` modified files on main with plumbing only, as a merged task would."""
    env = {"GIT_INDEX_FILE": str(scratch / "bench-index")}
    git(repo, "read-tree", BASE, env=env)
    for i in range(changed):
        body = f"changed by move {k}\n".encode()
        blob = git(repo, "hash-object", "-w", "--stdin", stdin=body).strip()
        git(
            repo,
            "update-index",
            "--cacheinfo",
            f"100644,{blob},{file_path(i * 97 % files)}",
            env=env,
        )
    tree = git(repo, "write-tree", env=env).strip()
    commit = git(repo, "commit-tree", tree, "-p", BASE, "-m", f"move {k}").strip()
    git(repo, "update-ref", f"refs/heads/{BASE}", commit)
    return commit


def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    os.sync()  # writeback of the previous step must not land in this one
    began = time.perf_counter()
    result = call()
    return time.perf_counter() - began, result


def usable(path: Path, branch: str, commit: str, sample: str) -> bool:
    head = git(path, "symbolic-ref", "HEAD").strip()
    return (
        head == f"refs/heads/{branch}"
        and git(path, "rev-parse", "HEAD").strip() == commit
        and (path / sample).is_file()
        and git(path, "status", "--porcelain", "--untracked-files=normal") == ""
    )


def disk_mb(path: Path) -> float:
    seen: set[tuple[int, int]] = set()
    blocks = 0
    for root, dirs, names in os.walk(path):
        for name in dirs + names:
            st = os.lstat(os.path.join(root, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                blocks += st.st_blocks
    return round(blocks * 512 / 2**20, 1)


def median(values: Sequence[float]) -> float:
    return round(statistics.median(values), 4)


def bench_checkouts(repo: Path, work: Path, trials: int, files: int) -> dict[str, Any]:
    """Full checkouts: plain git, and the manager without a pool, in alternation.

    Nothing is deleted until the end: on the disk of the reference machine (ext4 mounted with
    `discard`) deleting 50,000 files slows the writes that follow for many seconds, which would
    charge one measurement for the cleanup of the one before.
    """
    adds, clones, cold = [], [], []
    cold_manager = WorktreeManager(repo, work / "cold-state", pool_size=0)
    commit = cold_manager.base_commit(BASE)
    problems = 0
    for k in range(trials):
        target, branch = work / f"add-{k}", f"bench/add-{k}"
        seconds, _ = timed(
            lambda t=target, b=branch: git(repo, "worktree", "add", "-q", "-b", b, str(t), BASE)
        )
        adds.append(seconds)
        task, branch = f"cold-{k}", f"agentfleet/bench/cold-{k}"
        seconds, path = timed(lambda t=task, b=branch: cold_manager.acquire(t, b, BASE))
        cold.append(seconds)
        problems += not usable(path, branch, commit, file_path(files - 1))
    out(f"  git worktree add: {', '.join(f'{s:.2f}' for s in adds)} s")
    out(f"  acquire without a pool: {', '.join(f'{s:.2f}' for s in cold)} s")
    for k in range(trials):
        target = work / f"clone-{k}"
        seconds, _ = timed(lambda t=target: git(work, "clone", "-q", "--local", str(repo), str(t)))
        clones.append(seconds)
    out(f"  git clone --local: {', '.join(f'{s:.2f}' for s in clones)} s")
    start = threading.Barrier(8)

    def one(k: int) -> tuple[float, float, bool]:
        start.wait()
        began = time.perf_counter()
        try:
            git(repo, "worktree", "add", "-q", "-b", f"bench/par-{k}", str(work / f"par-{k}"), BASE)
        except subprocess.CalledProcessError:
            return began, time.perf_counter(), False
        return began, time.perf_counter(), True

    os.sync()
    with ThreadPoolExecutor(8) as pool:
        done = list(pool.map(one, range(8)))
    parallel = max(end for _, end, _ in done) - min(began for began, _, _ in done)
    failed = sum(not ok for _, _, ok in done)
    out(f"  8 x git worktree add at once: {parallel:.2f} s, {failed} failed")
    for k in range(trials):
        git(repo, "worktree", "remove", "--force", str(work / f"add-{k}"))
        shutil.rmtree(work / f"clone-{k}")
        cold_manager.remove(f"cold-{k}")
    cold_manager.close()
    for k in range(8):
        shutil.rmtree(work / f"par-{k}", ignore_errors=True)
    git(repo, "worktree", "prune")
    return {
        "worktree_add_s": median(adds),
        "worktree_add_s_max": round(max(adds), 4),
        "clone_local_s": median(clones),
        "cold_acquire_s": median(cold),
        "parallel8_worktree_add_seconds": round(parallel, 4),
        "parallel8_worktree_add_failures": failed,
        "usable_problems": problems,
    }


def bench_ready(repo: Path, work: Path, trials: int, files: int) -> dict[str, Any]:
    sample = file_path(files - 1)
    result: dict[str, Any] = {}
    with WorktreeManager(repo, repo / ".agentfleet", pool_size=2, base=BASE) as manager:
        seconds, ready = timed(manager.refill)
        out(f"  pool of 2 filled in {seconds:.2f} s ({ready} ready)")
        result["pool_fill_2_s"] = round(seconds, 3)
        latencies, problems = [], 0
        for k in range(trials):
            task, branch = f"ready-{k}", f"agentfleet/bench/ready-{k}"
            commit = manager.base_commit(BASE)
            seconds, path = timed(lambda t=task, b=branch: manager.acquire(t, b, BASE))
            latencies.append(seconds)
            problems += not usable(path, branch, commit, sample)
            if k == 0:
                index = Path(
                    git(path, "rev-parse", "--path-format=absolute", "--git-path", "index").strip()
                )
                result["disk_mb_per_worktree"] = disk_mb(path)
                result["index_mb"] = round(index.stat().st_size / 2**20, 1)
            manager.remove(task)
            manager.refill()
        out(f"  warm acquire: {', '.join(f'{s * 1000:.0f}' for s in latencies)} ms")
        stale = []
        for k in range(3):
            commit = move_base(repo, work, k, files)
            task, branch = f"stale-{k}", f"agentfleet/bench/stale-{k}"
            seconds, path = timed(lambda t=task, b=branch: manager.acquire(t, b, BASE))
            stale.append(seconds)
            problems += not usable(path, branch, commit, sample)
            manager.remove(task)
            manager.refill()
        out(
            f"  acquire after the base moved (10 files): "
            f"{', '.join(f'{s * 1000:.0f}' for s in stale)} ms"
        )
    result.update(
        {
            "ready_latency_s": median(latencies),
            "ready_latency_s_max": round(max(latencies), 4),
            "stale_pool_latency_s": median(stale),
            "usable_problems": problems,
        }
    )
    return result


def parallel(manager: WorktreeManager, prefix: str, sample: str) -> tuple[float, int]:
    start = threading.Barrier(8)
    commit = manager.base_commit(BASE)

    def one(k: int) -> tuple[float, float, Path]:
        start.wait()
        began = time.perf_counter()
        path = manager.acquire(f"{prefix}-{k}", f"agentfleet/bench/{prefix}-{k}", BASE)
        return began, time.perf_counter(), path

    os.sync()
    with ThreadPoolExecutor(8) as pool:
        done = list(pool.map(one, range(8)))
    seconds = max(end for _, end, _ in done) - min(began for began, _, _ in done)
    problems = sum(
        not usable(path, f"agentfleet/bench/{prefix}-{k}", commit, sample)
        for k, (_, _, path) in enumerate(done)
    )
    return seconds, problems


def bench_parallel(repo: Path, work: Path, sample: str) -> dict[str, Any]:
    with WorktreeManager(repo, work / "warm8-state", pool_size=8, base=BASE) as manager:
        fill, ready = timed(manager.refill)
        out(f"  pool of 8 filled in {fill:.2f} s ({ready} ready)")
        warm, warm_problems = parallel(manager, "warm8", sample)
        out(f"  8 acquires at once, warm pool of 8: {warm:.3f} s")
    with WorktreeManager(repo, work / "cold8-state", pool_size=0) as manager:
        cold, cold_problems = parallel(manager, "cold8", sample)
        out(f"  8 acquires at once, no pool: {cold:.2f} s")
    return {
        "pool_fill_8_s": round(fill, 3),
        "parallel8_seconds": round(warm, 4),
        "parallel8_cold_seconds": round(cold, 4),
        "parallel_problems": warm_problems + cold_problems,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=50_000, help="files in the repo (50,000)")
    parser.add_argument("--trials", type=int, default=5, help="timed runs per measurement (5)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--dir", type=Path, help="where to make the temporary folder")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    git_version = git(Path.cwd(), "--version").strip()
    out(
        f"python {platform.python_version()}, {git_version}, {os.cpu_count()} CPUs, "
        f"{time.strftime('%Y-%m-%d')}"
    )
    work = Path(tempfile.mkdtemp(prefix="agentfleet-bench-worktrees-", dir=args.dir))
    repo = work / "repo"
    sample = file_path(args.files - 1)
    result: dict[str, Any] = {"files": args.files, "trials": args.trials, "git": git_version}
    df = subprocess.run(["df", "--output=fstype", str(work)], capture_output=True, text=True)
    result["filesystem"] = (df.stdout.split() or ["?"])[-1]
    try:
        out(f"building a repository of {args.files:,} files in {work} ...")
        result.update(build_repo(repo, args.files))
        out(f"  fast-import {result['import_s']:.2f} s, checkout {result['user_checkout_s']:.2f} s")
        out("full checkouts (plain git; WorktreeManager without a pool):")
        result.update(checkouts := bench_checkouts(repo, work, args.trials, args.files))
        out("WorktreeManager with a warm pool:")
        result.update(ready := bench_ready(repo, work, args.trials, args.files))
        result["usable_problems"] = checkouts["usable_problems"] + ready["usable_problems"]
        result.update(bench_parallel(repo, work, sample))
    finally:
        if args.keep:
            out(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    result["ready_vs_worktree_add_ratio"] = round(
        result["ready_latency_s"] / result["worktree_add_s"], 4
    )
    result["elapsed_seconds"] = round(time.perf_counter() - began, 1)
    out(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
