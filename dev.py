"""The project's two entry points, with nothing but Python 3.11+ and git installed.

    python3 dev.py demo    run the quickstart batch: scripted agents in git worktrees
    python3 dev.py test    lint, type-check and run the whole test suite
    python3 dev.py bench   the benchmarks (not part of the tests)

Each makes the virtual environment it needs in .venv/ (again when pyproject.toml changes).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
STAMP = VENV / ".installed"
DEMO_REPO = ROOT / "build" / "quickstart-repo"


def run(*argv: str | Path) -> None:
    print("+", " ".join(str(a) for a in argv), flush=True)
    code = subprocess.call([str(a) for a in argv], cwd=ROOT)
    if code != 0:
        sys.exit(code)


def ensure_venv(extras: str = "dev,chart") -> None:
    """Install the project with `extras`, again when pyproject.toml changed or more are asked."""
    pyproject = ROOT / "pyproject.toml"
    fresh = STAMP.exists() and STAMP.stat().st_mtime >= pyproject.stat().st_mtime
    wanted = {e for e in extras.split(",") if e}
    if fresh and wanted <= {e for e in STAMP.read_text().split(",") if e}:
        return
    if not (BIN / "python").exists():
        print(f"+ creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    run(BIN / "python", "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    target = f".[{','.join(sorted(wanted))}]" if wanted else "."
    run(BIN / "python", "-m", "pip", "install", "--quiet", "-e", target)
    STAMP.write_text(extras)


def ensure_agent_clis() -> None:
    """The pinned agent CLIs from npm into .venv/agent-clis, for the tests that drive them.

    Without npm the tests that need a CLI skip, naming it (`.ci/run` installs Node.js and
    makes them required).
    """
    specs = subprocess.run(
        [
            str(BIN / "python"),
            "-c",
            "from agentfleet.executors.versions import npm_specs; print(' '.join(npm_specs()))",
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    ).stdout.split()
    target = VENV / "agent-clis"
    stamp = target / ".installed"
    if stamp.exists() and stamp.read_text().split() == specs:
        return
    npm = shutil.which("npm")
    if npm is None:
        print("! npm not found: the tests that drive the real agent CLIs will skip", flush=True)
        return
    target.mkdir(parents=True, exist_ok=True)
    run(npm, "install", "--no-audit", "--no-fund", "--no-save", "--prefix", target, *specs)
    stamp.write_text(" ".join(specs))


def demo() -> None:
    run(BIN / "python", "examples/quickstart/make_sample_repo.py", "--force", DEMO_REPO)
    run(BIN / "agentfleet", "run", "-f", "examples/quickstart", "--repo", DEMO_REPO)


def test() -> None:
    ensure_agent_clis()
    run(BIN / "ruff", "check", "src", "tests", "bench", "examples", "images", "dev.py")
    run(BIN / "ruff", "format", "--check", "src", "tests", "bench", "examples", "images", "dev.py")
    run(BIN / "mypy")
    run(BIN / "lint-imports")
    run(BIN / "pytest")


def bench() -> None:
    for script in ("schedule.py", "worktrees.py", "runner_overhead.py", "operator_throughput.py"):
        run(BIN / "python", f"bench/{script}")


COMMANDS = {"demo": demo, "test": test, "bench": bench}


def main() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - this check is for older interpreters
        sys.exit(f"agentfleet needs Python >= 3.11, found {sys.version.split()[0]}")
    if len(sys.argv) != 2 or sys.argv[1] not in COMMANDS:
        sys.exit(__doc__)
    # The demo's criteria run pytest (in `dev`); only the tests need the large `chart` extra.
    ensure_venv("dev" if sys.argv[1] == "demo" else "dev,chart")
    COMMANDS[sys.argv[1]]()


if __name__ == "__main__":
    main()
