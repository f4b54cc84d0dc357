"""Bytecode for everything `sam build` packaged, so that a Lambda cold start does not compile Python.

The python3.13 build method copies sources and unpacks wheels without compiling them, and Lambda's code
and layer folders are read-only: without `__pycache__` in the artefacts, every cold start compiles every
module it imports (pydantic, powertools, httpx, Crieur). `make build` runs this after `sam build`. The
bytecode is hash-based and unchecked (PEP 552), because the zip that `sam deploy` uploads does not keep the
sources' modification times that timestamp-based bytecode is checked against; it is written only by the
runtime's own Python version, whose bytecode format is the one Lambda reads.
"""

from __future__ import annotations

import argparse
import compileall
import py_compile
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def runtime_version(template: Path = ROOT / "template.yaml") -> tuple[int, int]:
    """The functions' Python version, from the template's `Runtime: python3.NN`."""
    found = re.search(r"^\s*Runtime:\s*python(\d+)\.(\d+)\s*$", template.read_text(encoding="utf-8"), re.MULTILINE)
    if found is None:
        raise RuntimeError(f"{template}: no `Runtime: python3.NN`")
    return int(found[1]), int(found[2])


def precompile(folder: Path) -> bool:
    """Compiles every module under `folder`; False when a module does not compile."""
    return bool(
        compileall.compile_dir(folder, quiet=1, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.precompile", description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, nargs="?", default=ROOT / ".aws-sam" / "build")
    args = parser.parse_args(argv)
    wanted = runtime_version()
    if sys.version_info[:2] != wanted:
        here = ".".join(map(str, sys.version_info[:2]))
        print(f"precompile: Python {here} is not the runtime's {wanted[0]}.{wanted[1]}: no bytecode written")
        return 0
    if not args.folder.is_dir():
        print(f"precompile: {args.folder} does not exist (run sam build first)", file=sys.stderr)
        return 1
    if not precompile(args.folder):
        return 1
    count = sum(1 for _ in args.folder.rglob("*.pyc"))
    print(f"precompile: {count} modules compiled under {args.folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
