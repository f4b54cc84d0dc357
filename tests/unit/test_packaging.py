import re
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
        imports = re.findall(r"^\s*(?:from|import)\s+([\w.]+)", source.read_text(), flags=re.MULTILINE)
        assert not [name for name in imports if name.split(".")[0] in ("functions", "infra")], source
