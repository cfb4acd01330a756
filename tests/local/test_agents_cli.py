"""`agentfleet agents import|set|list` against a real store in a real repository in tmp."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from agentfleet.agents.cli import agents_app
from agentfleet.local.store import Store
from agentfleet.models.agent import AgentConfig

from .conftest import git

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "agents"
SAMPLES = ROOT / "tests" / "unit" / "agents" / "samples"

app = typer.Typer()


@app.callback()
def _root() -> None:
    """A stand-in for `agentfleet`, mounting the agents commands as `agentfleet agents`."""


app.add_typer(agents_app, name="agents")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "README.md").write_text("demo\n")
    git(path, "add", "README.md")
    git(path, "commit", "-q", "-m", "initial")
    return path


def agents(repo: Path, *args: str | Path) -> Result:
    return CliRunner().invoke(app, ["agents", *map(str, args), "--repo", str(repo)])


def stored(repo: Path) -> dict[str, AgentConfig]:
    """What the store holds, read straight from it; nothing when no store was ever made."""
    state = repo / ".agentfleet"
    if not (state / "state.db").exists():
        return {}
    with Store(state) as store:
        return {a.name: a for a in store.list("AgentConfig") if isinstance(a, AgentConfig)}


def generation(repo: Path, name: str) -> int | None:
    return stored(repo)[name].metadata.generation


def rows(result: Result) -> dict[str, list[str]]:
    """The import table as NAME -> [KIND, RESULT, GENERATION]."""
    table: dict[str, list[str]] = {}
    for line in result.stdout.splitlines()[1:]:
        kind, name, outcome, gen = line.split()
        table[name] = [kind, outcome, gen]
    return table


def copy(source: Path, tmp_path: Path) -> Path:
    target = tmp_path / "import" / source.name
    shutil.copytree(source, target)
    return target


# --- import --------------------------------------------------------------------------------


def test_import_stores_yaml_configs_and_claude_agents_and_shows_their_generations(
    repo: Path,
) -> None:
    result = agents(repo, "import", SAMPLES / "mixed")

    assert result.exit_code == 0, result.output
    assert rows(result) == {
        "builder": ["AgentConfig", "created", "1"],
        "release-helper": ["AgentConfig", "created", "1"],
        "security-reviewer": ["AgentConfig", "created", "1"],
        "doc-writer": ["AgentConfig", "created", "1"],
    }
    assert "skipped:" in result.stderr
    agents_in_store = stored(repo)
    assert sorted(agents_in_store) == [
        "builder",
        "doc-writer",
        "release-helper",
        "security-reviewer",
    ]
    reviewer = agents_in_store["security-reviewer"].spec
    assert reviewer.specialized_instructions == "Review the diff for security problems only."
    assert reviewer.tools_enabled == ["Read", "Grep", "Glob"]


def test_importing_the_same_folder_again_changes_nothing(repo: Path) -> None:
    agents(repo, "import", SAMPLES / "mixed")

    again = agents(repo, "import", SAMPLES / "mixed")

    assert again.exit_code == 0, again.output
    assert {name: row[1:] for name, row in rows(again).items()} == {
        "builder": ["unchanged", "1"],
        "release-helper": ["unchanged", "1"],
        "security-reviewer": ["unchanged", "1"],
        "doc-writer": ["unchanged", "1"],
    }


def test_an_edited_claude_file_updates_its_agent_and_bumps_its_generation(
    repo: Path, tmp_path: Path
) -> None:
    folder = copy(SAMPLES / "mixed", tmp_path)
    agents(repo, "import", folder)
    path = folder / ".claude" / "agents" / "security-reviewer.md"
    path.write_text(path.read_text().replace("security problems only", "secrets only"))

    result = agents(repo, "import", folder)

    assert rows(result)["security-reviewer"] == ["AgentConfig", "updated", "2"]
    assert rows(result)["builder"] == ["AgentConfig", "unchanged", "1"]
    assert generation(repo, "security-reviewer") == 2


def test_an_invalid_file_stores_nothing_and_every_error_is_reported(repo: Path) -> None:
    result = agents(repo, "import", SAMPLES / "invalid")

    assert result.exit_code == 2
    assert stored(repo) == {}
    for expected in (
        "broken.yaml (document 1): spec.agentType: required field is missing",
        "broken.yaml (document 1): spec.maxParallelTasks: Input should be greater than 0",
        "broken-yaml.md: front matter: invalid YAML at line 4",
        "Bad_Name.md: front matter: name: 'Code_Reviewer' is not a valid name",
        "Bad_Name.md: front matter: agentType: 'Reviewer' is not one of",
        "no-description.md: front matter: missing required field 'description'",
        "6 error(s)",
        "nothing was stored",
    ):
        assert expected in result.stderr, result.stderr


def test_an_invalid_file_leaves_a_store_that_had_agents_untouched(
    repo: Path, tmp_path: Path
) -> None:
    agents(repo, "import", SAMPLES / "mixed")
    before = stored(repo)
    folder = copy(SAMPLES / "mixed", tmp_path)
    (folder / "agents" / "doc-writer.md").write_text(
        "---\nname: doc-writer\n---\nNo description.\n"
    )
    (folder / "fleet.yaml").write_text(
        (folder / "fleet.yaml").read_text().replace("maxParallelTasks: 2", "maxParallelTasks: 5")
    )

    result = agents(repo, "import", folder)

    assert result.exit_code == 2
    assert "doc-writer.md: front matter: missing required field 'description'" in result.stderr
    assert stored(repo) == before


def test_a_name_in_two_files_is_refused_naming_both(repo: Path) -> None:
    result = agents(repo, "import", SAMPLES / "duplicate")

    assert result.exit_code == 2
    assert "AgentConfig 'reviewer' is defined twice" in result.stderr
    assert "reviewer.md" in result.stderr
    assert "reviewer.yaml" in result.stderr
    assert stored(repo) == {}


def test_a_dry_run_shows_what_would_change_and_creates_no_store(repo: Path) -> None:
    result = agents(repo, "import", SAMPLES / "mixed", "--dry-run")

    assert result.exit_code == 0, result.output
    assert rows(result)["builder"] == ["AgentConfig", "created", "1"]
    assert "WOULD BE" in result.stdout
    assert "dry run: nothing was stored" in result.stderr
    assert not (repo / ".agentfleet").exists()


def test_a_dry_run_predicts_the_generation_an_update_would_get(repo: Path, tmp_path: Path) -> None:
    folder = copy(SAMPLES / "mixed", tmp_path)
    agents(repo, "import", folder)
    (folder / "fleet.yaml").write_text(
        (folder / "fleet.yaml").read_text().replace("maxParallelTasks: 2", "maxParallelTasks: 5")
    )

    result = agents(repo, "import", folder, "--dry-run")

    assert rows(result)["builder"] == ["AgentConfig", "updated", "2"]
    assert generation(repo, "builder") == 1


def test_an_empty_folder_is_an_error(repo: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()

    result = agents(repo, "import", tmp_path / "empty")

    assert result.exit_code == 1
    assert "no AgentConfig manifests nor Claude agent files found" in result.stderr


def test_an_unknown_agent_type_option_is_bad_input(repo: Path) -> None:
    result = agents(repo, "import", SAMPLES / "mixed", "--agent-type", "Tester")

    assert result.exit_code == 2
    assert "--agent-type: 'Tester' is not one of" in result.stderr


def test_the_agent_type_option_types_claude_files_that_name_none(repo: Path) -> None:
    agents(repo, "import", SAMPLES / "mixed", "--agent-type", "Development")

    assert str(stored(repo)["security-reviewer"].spec.agent_type) == "Development"
    assert str(stored(repo)["doc-writer"].spec.agent_type) == "Documentation"


# --- import --subagents-of -----------------------------------------------------------------


def test_subagents_of_an_existing_agent_adds_them_and_bumps_its_generation_once(
    repo: Path, tmp_path: Path
) -> None:
    yaml_only = tmp_path / "yaml-only"
    yaml_only.mkdir()
    shutil.copy(EXAMPLES / "developer.yaml", yaml_only)
    agents(repo, "import", yaml_only)
    claude = EXAMPLES / ".claude" / "agents"

    result = agents(repo, "import", claude, "--subagents-of", "developer")

    assert result.exit_code == 0, result.output
    assert rows(result) == {
        "developer": ["AgentConfig", "updated", "2"],
        "developer/code-reviewer": ["SubAgent", "created", "2"],
        "developer/test-writer": ["SubAgent", "created", "2"],
    }
    developer = stored(repo)["developer"]
    assert developer.metadata.generation == 2
    assert sorted(developer.spec.sub_agents) == ["code-reviewer", "test-writer"]
    assert developer.spec.sub_agents["code-reviewer"].model == "opus"
    assert "code-reviewer" not in stored(repo)

    again = agents(repo, "import", claude, "--subagents-of", "developer")

    assert rows(again)["developer"] == ["AgentConfig", "unchanged", "2"]
    assert rows(again)["developer/test-writer"] == ["SubAgent", "unchanged", "2"]


def test_subagents_of_an_agent_defined_in_the_same_folder_creates_it_with_them(
    repo: Path,
) -> None:
    result = agents(repo, "import", EXAMPLES, "--subagents-of", "developer")

    assert result.exit_code == 0, result.output
    in_store = stored(repo)
    assert sorted(in_store) == ["developer", "platform-engineer"]
    assert in_store["developer"].metadata.generation == 1
    assert sorted(in_store["developer"].spec.sub_agents) == ["code-reviewer", "test-writer"]


def test_subagents_of_an_unknown_agent_fails_naming_it_and_the_known_ones(repo: Path) -> None:
    agents(repo, "import", SAMPLES / "mixed")

    result = agents(repo, "import", EXAMPLES / ".claude" / "agents", "--subagents-of", "lead")

    assert result.exit_code == 1
    assert "AgentConfig 'lead' not found" in result.stderr
    assert "builder, doc-writer, release-helper, security-reviewer" in result.stderr


def test_subagents_of_keeps_the_sub_agents_it_already_had(repo: Path, tmp_path: Path) -> None:
    agents(repo, "import", EXAMPLES, "--subagents-of", "developer")
    other = tmp_path / "more" / "agents"
    other.mkdir(parents=True)
    (other / "planner.md").write_text("---\nname: planner\ndescription: Plans.\n---\nPlan.\n")

    result = agents(repo, "import", other.parent, "--subagents-of", "developer")

    assert result.exit_code == 0, result.output
    assert sorted(stored(repo)["developer"].spec.sub_agents) == [
        "code-reviewer",
        "planner",
        "test-writer",
    ]


# --- set -----------------------------------------------------------------------------------


@pytest.fixture
def imported(repo: Path) -> Path:
    result = agents(repo, "import", EXAMPLES)
    assert result.exit_code == 0, result.output
    return repo


def test_set_changes_only_the_named_fields_and_bumps_the_generation(imported: Path) -> None:
    before = stored(imported)["developer"]

    result = agents(
        imported, "set", "developer", "--max-parallel-tasks", "5", "--memory-mb", "4096"
    )

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "agentconfig/developer: generation 2"
    after = stored(imported)["developer"]
    assert after.spec.max_parallel_tasks == 5
    assert after.spec.environment_requirements.resource_limits.memory_mb == 4096
    assert after.spec.environment_requirements.resource_limits.cpu_cores == 1.5
    assert after.spec.tools_enabled == before.spec.tools_enabled
    assert after.spec.specialized_instructions == before.spec.specialized_instructions
    assert after.metadata.creation_timestamp == before.metadata.creation_timestamp


def test_set_to_the_values_it_already_has_is_unchanged_and_keeps_the_generation(
    imported: Path,
) -> None:
    result = agents(imported, "set", "developer", "--max-parallel-tasks", "3", "--model", "sonnet")

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "agentconfig/developer: unchanged"
    assert generation(imported, "developer") == 1


def test_set_every_setting_at_once(imported: Path, tmp_path: Path) -> None:
    instructions = tmp_path / "instructions.md"
    instructions.write_text("Review like a hawk.\n")

    result = agents(
        imported,
        "set",
        "code-reviewer",
        "--instructions-file",
        instructions,
        "--tools-enabled",
        "Read, Bash(git diff:*, git log:*)",
        "--tool-restrictions",
        "Edit,Write",
        "--model",
        "",
        "--permission-mode",
        "plan",
        "--max-turns",
        "20",
        "--cpu-cores",
        "0.5",
        "--disk-mb",
        "512",
        "--timeout-seconds",
        "600",
    )

    assert result.exit_code == 0, result.output
    spec = stored(imported)["code-reviewer"].spec
    assert spec.specialized_instructions == "Review like a hawk.\n"
    assert spec.tools_enabled == ["Read", "Bash(git diff:*, git log:*)"]
    assert spec.tool_restrictions == ["Edit", "Write"]
    assert spec.base_executor.model is None
    assert spec.base_executor.permission_mode == "plan"
    assert spec.base_executor.max_turns == 20
    limits = spec.environment_requirements.resource_limits
    assert (limits.cpu_cores, limits.disk_mb) == (0.5, 512)
    assert spec.timeout_seconds == 600
    assert stored(imported)["code-reviewer"].metadata.generation == 2


def test_set_an_empty_list_clears_the_tools(imported: Path) -> None:
    agents(imported, "set", "developer", "--tools-enabled", "")

    assert stored(imported)["developer"].spec.tools_enabled == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-parallel-tasks", "0"], "--max-parallel-tasks: Input should be greater than 0"),
        (["--cpu-cores", "-1"], "--cpu-cores: Input should be greater than 0"),
        (["--permission-mode", "yolo"], "--permission-mode: permissionMode 'yolo' is not one of"),
    ],
)
def test_set_a_bad_value_is_bad_input_naming_the_option_and_stores_nothing(
    imported: Path, args: list[str], message: str
) -> None:
    before = stored(imported)

    result = agents(imported, "set", "developer", *args)

    assert result.exit_code == 2
    assert message in result.stderr, result.stderr
    assert stored(imported) == before


def test_set_a_permission_mode_of_another_cli_names_the_executors_modes(imported: Path) -> None:
    result = agents(imported, "set", "platform-engineer", "--permission-mode", "plan")

    assert result.exit_code == 2
    assert "codex's modes: read-only, workspace-write, danger-full-access" in result.stderr


def test_set_an_unknown_agent_fails_naming_it_and_listing_the_known_ones(imported: Path) -> None:
    result = agents(imported, "set", "nobody", "--max-turns", "3")

    assert result.exit_code == 1
    assert (
        "AgentConfig 'nobody' not found; known agents: code-reviewer, developer, "
        "platform-engineer, test-writer"
    ) in result.stderr


def test_set_without_a_store_says_the_agent_is_not_found(repo: Path) -> None:
    result = agents(repo, "set", "developer", "--max-turns", "3")

    assert result.exit_code == 1
    assert "AgentConfig 'developer' not found (no store in" in result.stderr


def test_set_without_any_setting_is_bad_input(imported: Path) -> None:
    result = agents(imported, "set", "developer")

    assert result.exit_code == 2
    assert "nothing to set" in result.stderr


def test_set_instructions_given_twice_is_bad_input(imported: Path, tmp_path: Path) -> None:
    (tmp_path / "i.md").write_text("x")

    result = agents(
        imported,
        "set",
        "developer",
        "--instructions",
        "y",
        "--instructions-file",
        tmp_path / "i.md",
    )

    assert result.exit_code == 2
    assert "give one, not both" in result.stderr


# --- list ----------------------------------------------------------------------------------


def test_list_shows_each_agent_with_type_executor_model_generation_and_cap(imported: Path) -> None:
    agents(imported, "set", "developer", "--max-parallel-tasks", "4")

    result = agents(imported, "list")

    assert result.exit_code == 0, result.output
    lines = [line.split() for line in result.stdout.splitlines()]
    assert lines[0] == [
        "NAME",
        "TYPE",
        "EXECUTOR",
        "MODEL",
        "GENERATION",
        "MAX-PARALLEL",
        "SUB-AGENTS",
    ]
    assert lines[1:] == [
        ["code-reviewer", "CodeReview", "claude-code", "opus", "1", "-", "-"],
        ["developer", "Development", "claude-code", "sonnet", "2", "4", "-"],
        ["platform-engineer", "Infrastructure", "codex", "gpt-5-codex", "1", "1", "-"],
        ["test-writer", "QualityAssurance", "claude-code", "-", "1", "-", "-"],
    ]


def test_list_as_json_gives_the_same_columns_as_data(repo: Path) -> None:
    agents(repo, "import", EXAMPLES, "--subagents-of", "developer")

    result = agents(repo, "list", "-o", "json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [
        {
            "name": "developer",
            "agentType": "Development",
            "executor": "claude-code",
            "model": "sonnet",
            "generation": 1,
            "maxParallelTasks": 3,
            "subAgents": ["code-reviewer", "test-writer"],
        },
        {
            "name": "platform-engineer",
            "agentType": "Infrastructure",
            "executor": "codex",
            "model": "gpt-5-codex",
            "generation": 1,
            "maxParallelTasks": 1,
            "subAgents": [],
        },
    ]


def test_list_without_a_store_says_so_and_creates_none(repo: Path) -> None:
    result = agents(repo, "list")

    assert result.exit_code == 0
    assert "No agents found." in result.stderr
    assert not (repo / ".agentfleet").exists()
    assert json.loads(agents(repo, "list", "-o", "json").stdout) == []


def test_list_with_an_unknown_output_format_is_bad_input(repo: Path) -> None:
    assert agents(repo, "list", "-o", "xml").exit_code == 2


# --- the real command ----------------------------------------------------------------------


def test_the_agentfleet_command_imports_the_examples_and_lists_them(repo: Path) -> None:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    env.pop("AGENTFLEET_STATE_DIR", None)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "agentfleet", "agents", *args, "--repo", str(repo)],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )

    imported = run("import", str(EXAMPLES))
    assert imported.returncode == 0, imported.stderr
    listed = run("list", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    assert [a["name"] for a in json.loads(listed.stdout)] == [
        "code-reviewer",
        "developer",
        "platform-engineer",
        "test-writer",
    ]
