"""`python -m infra.local` (what `make run` runs): the whole stack on loopback until Ctrl-C or SIGTERM.

Knobs (environment, all optional): CRIEUR_LOCAL_PORT (3000), CRIEUR_LOCAL_AWS_PORT (4566),
CRIEUR_LOCAL_SANDBOX_PORT (3001), CRIEUR_LOCAL_API_KEY, CRIEUR_LOCAL_DEMO_INSEE (35238),
CRIEUR_WEBHOOK_BASE_URL and CRIEUR_MASTODON_BASE_URL (seed the demo channels elsewhere than the sandbox),
CRIEUR_LOCAL_RAW_LOGS=1 (the functions' JSON logs as they are), CRIEUR_LOCAL_STATE (where to write the
state file the `crieur` CLI reads, default .crieur/local.json in the repository; the CLI honours it too).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from infra.local.stack import STATE_FILE, LocalStack, StackError


def _interrupt(signum: int, _: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    state = os.environ.get("CRIEUR_LOCAL_STATE")
    stack = LocalStack(state_file=Path(state) if state else STATE_FILE)
    code = 0
    try:
        stack.start()
        print(stack.banner(), flush=True)
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    except StackError as error:
        print(f"\n{error}", file=sys.stderr, flush=True)
        code = 1
    finally:
        # A second Ctrl-C must not cut the cleanup short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("\nArrêt… / stopping…", file=sys.stderr, flush=True)
        stack.stop()
    return code


if __name__ == "__main__":
    sys.exit(main())
