#!/usr/bin/env sh
# Prints the Python to build the virtualenvs with: 3.13 (the Lambda runtime, and what `sam build` needs
# without Docker) when one really runs, else the first python3 that is at least 3.11.
# pyenv keeps 3.13 under $(pyenv root)/versions and its bare `python3.13` shim fails unless that version is
# enabled, so each candidate is run, not only looked up.
pyenv_root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
for candidate in "$pyenv_root"/versions/3.13*/bin/python3 python3.13 python3.12 python3.11 python3; do
  if "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' >/dev/null 2>&1; then
    command -v "$candidate" 2>/dev/null || echo "$candidate"
    exit 0
  fi
done
echo "Crieur needs Python 3.11 or newer (3.13 preferred): none was found" >&2
exit 1
