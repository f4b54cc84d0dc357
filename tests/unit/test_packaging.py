import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_layer_requirements_match_the_project_runtime_dependencies() -> None:
    """The layer ships what the code needs on Lambda: the project's dependencies but boto3 (in the runtime)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    layer = [line for line in (ROOT / "layers/crieur/requirements.txt").read_text().splitlines() if line.strip()]
    assert sorted(layer) == sorted(dep for dep in project if not dep.startswith("boto3"))


def test_core_never_imports_handlers_or_local_infrastructure() -> None:
    for source in (ROOT / "layers/crieur/crieur").rglob("*.py"):
        text = source.read_text()
        assert "from functions" not in text and "import functions" not in text, source
        assert "from infra" not in text and "import infra" not in text, source
