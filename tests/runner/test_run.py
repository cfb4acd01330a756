"""Whole runs through `main`: real agents (subprocesses), real git, the result and the log."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from agentfleet.models.agent import AgentConfigSpec, BaseExecutor, ExecutorType
from agentfleet.models.log import LogEvent
from agentfleet.models.meta import AgentType
from agentfleet.models.run import RunResult
from agentfleet.runner.spec import RunSpec

from .conftest import BRANCH, Repo, git, python_agent, run, run_spec_text

WRITE_HELLO = "open('hello.txt', 'w').write('hello\\n')"


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting for its reaper."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_agent_writes_a_file_criteria_pass_and_the_work_is_committed_on_the_branch(
    repo: Repo,
) -> None:
    before = repo.head()
    ran = run(
        repo,
        repo.spec(
            python_agent(WRITE_HELLO), criteria=[{"type": "file_created", "pattern": "*.txt"}]
        ),
    )

    assert ran.exit_code == 0
    result = RunResult.model_validate(ran.result)
    assert (result.outcome, result.reason) == ("Succeeded", "Succeeded")
    assert result.exit_code == 0
    assert [(c.type, c.passed) for c in result.criteria] == [("file_created", True)]
    assert result.commit == repo.head() != before
    assert result.diff_stat is not None
    assert (result.diff_stat.files_changed, result.diff_stat.insertions) == (1, 1)
    assert result.duration_seconds is not None
    assert result.duration_seconds > 0
    assert git(repo.worktree, "symbolic-ref", "--short", "HEAD").strip() == BRANCH
    assert git(repo.root, "rev-parse", "main").strip() == before  # main untouched
    message = git(repo.worktree, "log", "-1", "--format=%B")
    assert message.splitlines()[0] == "Add a greeting"
    assert "Ticket: T-1\nStage: dev\nRun: t1-dev-1\nAgent: scripted" in message
    assert git(repo.worktree, "log", "-1", "--format=%an <%ae>").strip() == (
        "agentfleet <agentfleet@localhost>"
    )


def test_the_log_is_json_lines_of_log_events_in_order(repo: Repo) -> None:
    agent = python_agent("import sys; print('working'); print('oops', file=sys.stderr)")
    ran = run(repo, repo.spec(agent, criteria=[{"type": "file_created", "pattern": "x"}]))

    events = [LogEvent.model_validate(e) for e in ran.events]
    assert {e.run for e in events} == {"t1-dev-1"}
    assert events[0].type == "runner"
    assert events[0].text == "started"
    assert events[-1].type == "runner"
    assert events[-1].text == "finished: CriteriaFailed"
    kinds = [e.type.value for e in events]
    assert kinds.index("criterion") < kinds.index("commit") < len(kinds) - 1
    texts = {(e.text, e.data.get("stream")) for e in events if e.type == "text"}
    assert texts == {("working", None), ("oops", "stderr")}


def test_the_context_files_are_written_outside_the_worktree_and_the_prompt_is_on_stdin(
    repo: Repo,
) -> None:
    copy_stdin = "import sys; open('seen.md', 'w').write(sys.stdin.read())"
    ran = run(repo, repo.spec(python_agent(copy_stdin)))

    assert ran.exit_code == 0
    prompt = (repo.context_dir / "prompt.md").read_text()
    assert (repo.worktree / "seen.md").read_text() == prompt
    assert "# Task: Add a greeting" in prompt
    assert "- hello.txt says hello" in prompt
    assert "Write hello.txt." in prompt
    assert "Write small, tested changes." in prompt
    for name in ("task.md", "stage.md", "agent.md"):
        assert (repo.context_dir / name).read_text() in prompt
    assert not (repo.context_dir / "tickets.json").exists()
    committed = git(repo.worktree, "show", "--name-only", "--format=", "HEAD").split()
    assert committed == ["seen.md"]


def test_the_agent_gets_the_run_in_its_environment(repo: Repo) -> None:
    dump = (
        "import json, os; json.dump({k: v for k, v in os.environ.items() "
        "if k.startswith(('AGENTFLEET_', 'EXTRA'))}, open('env.json', 'w'))"
    )
    spec = repo.spec(python_agent(dump))
    spec.agent.base_executor.env["EXTRA"] = "from the agent config"
    ran = run(repo, spec)

    assert ran.exit_code == 0
    seen = json.loads((repo.worktree / "env.json").read_text())
    inherited = {k: v for k, v in os.environ.items() if k.startswith("AGENTFLEET_")}
    assert {k: v for k, v in seen.items() if k not in inherited} == {
        "AGENTFLEET_CONTEXT_DIR": str(repo.context_dir),
        "AGENTFLEET_RUN": "t1-dev-1",
        "AGENTFLEET_TASK": "t1",
        "AGENTFLEET_STAGE": "dev",
        "AGENTFLEET_ATTEMPT": "1",
        "AGENTFLEET_AGENT": "scripted",
        "EXTRA": "from the agent config",
    }


def test_an_agent_exiting_1_fails_as_agent_failed_with_its_last_stderr_lines(repo: Repo) -> None:
    agent = python_agent("import sys; print('disk on fire', file=sys.stderr); sys.exit(1)")
    ran = run(repo, repo.spec(agent, criteria=[{"type": "file_created", "pattern": "*"}]))

    assert ran.exit_code == 1
    assert ran.result["outcome"] == "Failed"
    assert ran.result["reason"] == "AgentFailed"
    assert ran.result["exitCode"] == 1
    assert "exited 1" in ran.result["message"]
    assert "disk on fire" in ran.result["message"]
    assert ran.result["criteria"][0]["passed"] is False
    assert "not checked" in ran.result["criteria"][0]["message"]


def test_an_agent_that_cannot_start_fails_as_agent_failed(repo: Repo) -> None:
    ran = run(repo, repo.spec([str(repo.tmp / "no-such-agent")]))

    assert (ran.exit_code, ran.result["reason"]) == (1, "AgentFailed")
    assert "could not start" in ran.result["message"]


def test_failing_tests_fail_as_criteria_failed_but_the_work_is_still_committed(repo: Repo) -> None:
    failing = f"{sys.executable} -c \"import sys; print('1 failed'); sys.exit(1)\""
    criteria = [
        {"type": "file_created", "pattern": "hello.txt"},
        {"type": "tests_pass", "command": failing},
    ]
    ran = run(repo, repo.spec(python_agent(WRITE_HELLO), criteria=criteria))

    assert ran.exit_code == 1
    assert ran.result["reason"] == "CriteriaFailed"
    assert "tests_pass" in ran.result["message"]
    assert "file_created" not in ran.result["message"]
    assert [c["passed"] for c in ran.result["criteria"]] == [True, False]
    assert "1 failed" in ran.result["criteria"][1]["message"]
    assert ran.result["commit"] == repo.head()
    assert git(repo.worktree, "show", "--name-only", "--format=", "HEAD").split() == ["hello.txt"]
    assert len(ran.events_of("criterion")) == 2


def test_an_agent_over_its_memory_limit_fails_as_oom_killed(repo: Repo) -> None:
    hog = python_agent("data = bytearray(400 * 1024 * 1024)")
    ran = run(repo, repo.spec(hog, memory_limit_bytes=150 * 1024 * 1024))

    assert (ran.exit_code, ran.result["reason"]) == (1, "OOMKilled")
    assert "MemoryError" in ran.result["message"]


def test_an_agent_killed_by_sigkill_the_runner_did_not_send_counts_as_oom_killed(
    repo: Repo,
) -> None:
    ran = run(repo, repo.spec(python_agent("import os, signal; os.kill(os.getpid(), 9)")))

    assert (ran.result["reason"], ran.result["exitCode"]) == ("OOMKilled", 137)


def test_the_deadline_kills_the_agents_whole_process_group(repo: Repo) -> None:
    pid_file = repo.tmp / "grandchild.pid"
    agent = python_agent(
        "import subprocess, sys, time\n"
        "child = subprocess.Popen(['sleep', '300'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(300)\n"
    )
    began = time.monotonic()
    ran = run(repo, repo.spec(agent, timeout_seconds=2))

    assert time.monotonic() - began < 10
    assert (ran.exit_code, ran.result["reason"]) == (1, "DeadlineExceeded")
    grandchild = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchild)


def test_usage_lines_are_summed_and_not_shown_as_text(repo: Repo) -> None:
    agent = python_agent(
        'print(\'{"type": "usage", "tokens": {"input": 100, "output": 20}, '
        '"costUsd": 0.5}\')\n'
        "print('thinking')\n"
        'print(\'{"type": "usage", "tokens": {"input": 1, "output": 2}, '
        '"costUsd": 0.25}\')\n'
    )
    ran = run(repo, repo.spec(agent))

    assert ran.result["tokens"] == {"input": 101, "output": 22, "cacheRead": 0, "cacheCreation": 0}
    assert ran.result["costUsd"] == 0.75
    assert [e["text"] for e in ran.events_of("text")] == ["thinking"]


def test_a_title_with_shell_metacharacters_and_quotes_is_committed_verbatim(repo: Repo) -> None:
    title = "#1 Fix `rm -rf /` && echo \"$HOME\" 'quoted'; $(whoami) | tee > out"
    ran = run(repo, repo.spec(python_agent(WRITE_HELLO), title=title))

    assert ran.exit_code == 0
    assert git(repo.worktree, "log", "-1", "--format=%s").rstrip("\n") == title
    assert not (repo.worktree / "out").exists()


def test_nothing_changed_reports_the_current_head_and_zero_diff(repo: Repo) -> None:
    before = repo.head()
    ran = run(repo, repo.spec(["true"]))

    assert ran.exit_code == 0
    assert ran.result["commit"] == before == repo.head()
    assert ran.result["diffStat"] == {"filesChanged": 0, "insertions": 0, "deletions": 0}


def test_ignored_files_are_not_committed(repo: Repo) -> None:
    agent = python_agent("open('debug.log', 'w').write('x'); " + WRITE_HELLO)
    ran = run(repo, repo.spec(agent))

    assert ran.exit_code == 0
    assert git(repo.worktree, "show", "--name-only", "--format=", "HEAD").split() == ["hello.txt"]


def test_work_the_agent_committed_itself_counts_in_the_diff_stat(repo: Repo) -> None:
    agent = python_agent(
        "import subprocess\n"
        "open('a.txt', 'w').write('a\\nb\\n')\n"
        "subprocess.run(['git', 'add', 'a.txt'], check=True)\n"
        "subprocess.run(['git', '-c', 'user.name=A', '-c', 'user.email=a@x', 'commit', '-qm', "
        "'agent'], check=True)\n" + WRITE_HELLO
    )
    ran = run(repo, repo.spec(agent))

    assert ran.exit_code == 0
    assert ran.result["diffStat"] == {"filesChanged": 2, "insertions": 3, "deletions": 0}


def test_a_worktree_on_another_branch_fails_as_commit_failed(repo: Repo) -> None:
    agent = python_agent(
        "import subprocess; subprocess.run(['git', 'switch', '-q', '-c', 'elsewhere'], check=True);"
        + WRITE_HELLO
    )
    ran = run(repo, repo.spec(agent))

    assert (ran.exit_code, ran.result["reason"]) == (1, "CommitFailed")
    assert "elsewhere" in ran.result["message"]
    assert BRANCH in ran.result["message"]
    assert "hello.txt" in git(repo.worktree, "status", "--porcelain")  # nothing committed


def test_a_spec_that_is_not_a_run_spec_exits_2_with_invalid_spec(repo: Repo) -> None:
    ran = run_spec_text(repo.tmp, json.dumps({"name": "t1-dev-1", "stage": "dev"}))

    assert ran.exit_code == 2
    assert (ran.result["outcome"], ran.result["reason"]) == ("Failed", "InvalidSpec")
    assert "attempt" in ran.result["message"]
    assert ran.events[0]["run"] == "t1-dev-1"


def test_a_spec_that_is_not_json_exits_2_with_invalid_spec(repo: Repo) -> None:
    ran = run_spec_text(repo.tmp, "{not json")

    assert (ran.exit_code, ran.result["reason"]) == (2, "InvalidSpec")


def test_a_context_dir_inside_the_worktree_is_refused(repo: Repo) -> None:
    ran = run(repo, repo.spec(["true"], context_dir=str(repo.worktree / ".context")))

    assert (ran.exit_code, ran.result["reason"]) == (2, "InvalidSpec")


def test_an_agent_cli_that_is_not_installed_fails_as_executor_unavailable(repo: Repo) -> None:
    spec = repo.spec(["true"])
    spec.agent = AgentConfigSpec(
        agent_type=AgentType.DEVELOPMENT,
        base_executor=BaseExecutor(
            type=ExecutorType.CLAUDE_CODE, command=["claude-that-is-not-installed"]
        ),
    )
    ran = run(repo, spec)

    assert (ran.exit_code, ran.result["reason"]) == (1, "ExecutorUnavailable")
    assert "'claude-that-is-not-installed' (claude-code executor)" in ran.result["message"]
    assert "@anthropic-ai/claude-code@2.1.331" in ran.result["message"]
    assert not ran.events_of("commit"), "nothing ran, nothing to commit"


def _cli(spec: RunSpec, tmp: Path) -> tuple[subprocess.Popen[str], Path]:
    spec_path, result_path = tmp / "cli.json", tmp / "cli-result.json"
    spec_path.write_text(spec.model_dump_json(by_alias=True))
    argv = ["--spec", str(spec_path), "--result", str(result_path)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentfleet.runner.main", *argv],
        stdout=subprocess.PIPE,
        text=True,
    )
    return proc, result_path


def test_the_cli_runs_as_its_own_process_and_writes_the_result_file(repo: Repo) -> None:
    proc, result_path = _cli(repo.spec(python_agent(WRITE_HELLO)), repo.tmp)
    stdout, _ = proc.communicate(timeout=60)

    assert proc.returncode == 0
    lines = stdout.splitlines()
    assert json.loads(lines[0])["text"] == "started"
    assert json.loads(lines[-1])["text"] == "finished: Succeeded"
    assert json.loads(result_path.read_text())["commit"] == repo.head()
    assert not list(result_path.parent.glob(".cli-result.json.*"))  # no temporary file left


def test_sigterm_to_the_runner_ends_the_agent_and_reports_stopped(repo: Repo) -> None:
    pid_file = repo.tmp / "agent.pid"
    agent = python_agent(
        f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(300)"
    )
    proc, result_path = _cli(repo.spec(agent), repo.tmp)
    deadline = time.monotonic() + 30
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    agent_pid = int(pid_file.read_text())
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)

    assert proc.returncode == 1
    assert json.loads(result_path.read_text())["reason"] == "Stopped"
    assert not _alive(agent_pid)
    assert os.path.exists(repo.worktree)
