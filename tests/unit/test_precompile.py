"""`make build` leaves bytecode in the artefacts that Lambda uses as is (hash-based, unchecked)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from infra.precompile import main, precompile, runtime_version

UNCHECKED_HASH = 0b01
"""PEP 552 flags: hash-based, source not checked."""


def test_the_bytecode_is_used_without_looking_at_the_source(tmp_path: Path) -> None:
    package = tmp_path / "python" / "paquet"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "module.py").write_text("VALUE = 'compilé'\n", encoding="utf-8")

    assert precompile(tmp_path)

    compiled = next((package / "__pycache__").glob("module.*.pyc"))
    assert int.from_bytes(compiled.read_bytes()[4:8], "little") == UNCHECKED_HASH
    # A deployment's sources get new modification times (the zip) but the same content: here even a changed
    # source shows the interpreter reads the bytecode without checking the source.
    (package / "module.py").write_text("VALUE = 'source'\n", encoding="utf-8")
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(tmp_path / "python")}
    read = subprocess.run(
        [sys.executable, "-c", "import paquet.module; print(paquet.module.VALUE)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert read.stdout.strip() == "compilé"


def test_a_module_that_does_not_compile_fails_the_build(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("def (:\n", encoding="utf-8")
    assert main([str(tmp_path)]) == 1


def test_the_runtime_version_comes_from_the_template() -> None:
    assert runtime_version() == (3, 13)
