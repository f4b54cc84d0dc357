"""Each Lambda function in a process of its own, as in a Lambda container.

Functions share module names (`app`) and read their settings from the environment (CHANNEL, table names…),
so they cannot share a process. The child (`python -m infra.local.runtime --handler app.lambda_handler
--result-fd N`, started with the function's environment and its code folder and layers on PYTHONPATH)
imports the handler once, then reads one JSON request per line on stdin and writes one JSON answer per
line on fd N. Whatever the function prints or logs goes to its stdout/stderr, which the parent reads and
shows prefixed by the function's name. An exception comes back Lambda-style (errorMessage, errorType,
stackTrace).

The parent side is `FunctionProcess`: `invoke(event)` is thread-safe and runs on a small pool of such
processes (a second one starts when the first is busy, like Lambda's concurrency), restarts a process that
crashed or timed out, and enforces the template's Timeout.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

from infra.local.provision import ROOT, LocalFunction

READY_TIMEOUT_SECONDS = 60.0
STOP_GRACE_SECONDS = 2.0


class LambdaError(Exception):
    """The function failed; `payload` is what Lambda's Invoke would return (errorMessage, errorType, stackTrace)."""

    def __init__(self, payload: dict[str, Any]) -> None:
        super().__init__(f"{payload.get('errorType')}: {payload.get('errorMessage')}")
        self.payload = payload


def error_payload(error: BaseException, error_type: str | None = None) -> dict[str, Any]:
    """An exception as the Python Lambda runtime reports it."""
    return {
        "errorMessage": str(error),
        "errorType": error_type or type(error).__name__,
        "requestId": "",
        "stackTrace": traceback.format_list(traceback.extract_tb(error.__traceback__)),
    }


# ---------------------------------------------------------------- child side


@dataclass
class LambdaContext:
    """What the Python runtime passes as `context` (the attributes powertools and handlers read)."""

    function_name: str
    function_version: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    aws_request_id: str
    log_group_name: str
    log_stream_name: str
    deadline_ms: int
    identity: Any = None
    client_context: Any = None
    tenant_id: str | None = None

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self.deadline_ms - int(time.time() * 1000))


class _HandlerNotFound(Exception):
    pass


def _load_handler(spec: str) -> Callable[[Any, Any], Any]:
    module_name, _, attribute = spec.rpartition(".")
    if not module_name:
        raise _HandlerNotFound(f"Bad handler '{spec}': expected module.function")
    module = importlib.import_module(module_name.replace("/", "."))
    handler = getattr(module, attribute, None)
    if not callable(handler):
        raise _HandlerNotFound(f"Handler '{attribute}' missing on module '{module_name}'")
    return handler  # type: ignore[no-any-return]


CRASH_AFTER_SEND = "CRIEUR_FAULT_CRASH_AFTER_SEND"
"""`make soak`: the probability that a deliver worker's process dies after the provider accepted a post (half
before the delivery's outcome is written with its usage line, in one transaction, half after it and before the
message is deleted), like a container killed mid-invocation. Its SQS batch then comes back after the visibility
timeout; on the message's last receive, the channel's dead-letter queue settles it."""


def _install_crash_fault() -> None:
    rate = float(os.environ.get(CRASH_AFTER_SEND) or 0)
    if rate <= 0 or not os.environ.get("CHANNEL"):
        return
    import random

    from crieur.store import Store

    finish = Store.finish_delivery

    def crash(where: str) -> None:
        print(f"CRASH injected {where}", file=sys.stderr, flush=True)
        os._exit(137)

    def crashing_finish(self: Store, *args: Any, **kwargs: Any) -> Any:
        posted = kwargs.get("metering") is not None  # the outcome of a post the provider accepted
        if posted and random.random() < rate / 2:  # noqa: S311 - fault injection
            crash("after the provider call, before the outcome's write")
        written = finish(self, *args, **kwargs)
        if posted and random.random() < rate / 2:  # noqa: S311 - fault injection
            crash("after the outcome's write, before the message is deleted")
        return written

    Store.finish_delivery = crashing_finish  # type: ignore[method-assign]


def _child(handler_spec: str, result_fd: int) -> int:
    # Ctrl-C in a terminal goes to the whole process group: the parent decides when this process stops
    # (it closes stdin); SIGTERM still ends it at once.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    results = os.fdopen(result_fd, "w", encoding="utf-8", buffering=1)
    requests = sys.stdin.buffer
    sys.stdin = open(os.devnull, encoding="utf-8")  # noqa: SIM115 - the handler must not read our requests
    name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "function")
    region = os.environ.get("AWS_REGION", "")
    arn = os.environ.get("CRIEUR_LOCAL_FUNCTION_ARN", f"arn:aws:lambda:{region}:000000000000:function:{name}")
    memory = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
    init_error: dict[str, Any] | None = None
    handler: Callable[[Any, Any], Any] | None = None
    try:
        handler = _load_handler(handler_spec)
    except Exception as failure:
        # The error types Lambda's Python runtime reports for a failed init.
        if isinstance(failure, SyntaxError):
            kind, message = "Runtime.UserCodeSyntaxError", f"Syntax error in module '{handler_spec}': {failure}"
        elif isinstance(failure, ImportError):
            kind, message = "Runtime.ImportModuleError", f"Unable to import module '{handler_spec}': {failure}"
        elif isinstance(failure, _HandlerNotFound):
            kind, message = "Runtime.HandlerNotFound", str(failure)
        else:
            kind, message = type(failure).__name__, str(failure)
        init_error = error_payload(failure, kind)
        init_error["errorMessage"] = message
        print(f"INIT ERROR {init_error['errorMessage']}", file=sys.stderr, flush=True)
        traceback.print_exc()
    else:
        _install_crash_fault()
    results.write(json.dumps({"ready": True, "init_error": init_error}) + "\n")
    for line in requests:
        request = json.loads(line)
        request_id = str(request["id"])
        answer: dict[str, Any] = {"id": request_id}
        if handler is None:
            answer["error"] = dict(init_error or {}, requestId=request_id)
        else:
            os.environ["_X_AMZN_TRACE_ID"] = (
                f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Parent={uuid.uuid4().hex[:16]};Sampled=0"
            )
            context = LambdaContext(
                function_name=name,
                function_version=os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
                invoked_function_arn=arn,
                memory_limit_in_mb=memory,
                aws_request_id=request_id,
                log_group_name=os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", f"/aws/lambda/{name}"),
                log_stream_name=os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", ""),
                deadline_ms=int(request["deadline_ms"]),
            )
            try:
                result = handler(request["event"], context)
            except Exception as failure:
                traceback.print_exc()
                answer["error"] = dict(error_payload(failure), requestId=request_id)
            else:
                try:
                    answer["result"] = json.loads(json.dumps(result))
                except (TypeError, ValueError) as unmarshallable:
                    answer["error"] = {
                        "errorMessage": f"Unable to marshal response: {unmarshallable}",
                        "errorType": "Runtime.MarshalError",
                        "requestId": request_id,
                        "stackTrace": [],
                    }
            sys.stdout.flush()
            sys.stderr.flush()
        results.write(json.dumps(answer) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Runs one Lambda handler: JSON events on stdin, results on a fd.")
    parser.add_argument("--handler", required=True, help="module.function, e.g. app.lambda_handler")
    parser.add_argument("--result-fd", type=int, required=True, help="file descriptor the results go to")
    args = parser.parse_args(argv)
    return _child(args.handler, args.result_fd)


# ---------------------------------------------------------------- parent side


class _Worker:
    """One child process running one function, one invocation at a time."""

    def __init__(self, function: LocalFunction, env: dict[str, str], log: Callable[[str], None]) -> None:
        self.function = function
        self._log = log
        read_end, write_end = os.pipe()
        try:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "infra.local.runtime",
                    "--handler",
                    function.handler,
                    "--result-fd",
                    str(write_end),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                pass_fds=(write_end,),
                cwd=function.code_dir,
                env=env,
                # Its own process group: a terminal's Ctrl-C reaches the parent only, which stops it cleanly.
                process_group=0,
            )
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)
        self._results = read_end
        self._buffer = b""
        self._closed = False
        """The child closed its end of the result pipe: it exited (or is exiting)."""
        self._logs = threading.Thread(target=self._pump_logs, name=f"logs {function.name}", daemon=True)
        self._logs.start()
        self.init_error: dict[str, Any] | None = None

    def _pump_logs(self) -> None:
        stream = self.process.stdout
        assert stream is not None
        for raw in iter(stream.readline, b""):
            self._log(raw.decode("utf-8", "replace").rstrip("\n"))
        stream.close()

    def _read_line(self, deadline: float) -> bytes | None:
        """The next line from the result pipe, or None at the deadline or when the child is gone."""
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([self._results], [], [], min(remaining, 1.0))
            if not ready:
                continue
            chunk = os.read(self._results, 65536)
            if not chunk:
                self._closed = True
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line

    def wait_ready(self, timeout: float) -> None:
        line = self._read_line(time.monotonic() + timeout)
        if line is None:
            raise RuntimeError(f"{self.function.name}: the function process did not start (exit {self.process.poll()})")
        self.init_error = json.loads(line).get("init_error")

    def invoke(self, request_id: str, event: Any) -> tuple[str, Any]:
        """("result", value) or ("error", Lambda error payload)."""
        timeout = self.function.timeout
        deadline_ms = int(time.time() * 1000) + timeout * 1000
        message = json.dumps({"id": request_id, "event": event, "deadline_ms": deadline_ms}) + "\n"
        stdin = self.process.stdin
        assert stdin is not None
        try:
            stdin.write(message.encode())
            stdin.flush()
        except (BrokenPipeError, ValueError):
            return "error", self._exited(request_id)
        line = self._read_line(time.monotonic() + timeout + 1.0)
        if line is None:
            if not self._closed and self.process.poll() is None:
                self.kill()
                stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
                return "error", {
                    "errorMessage": f"{stamp} {request_id} Task timed out after {timeout:.2f} seconds",
                    "errorType": "Sandbox.Timedout",
                    "requestId": request_id,
                    "stackTrace": [],
                }
            return "error", self._exited(request_id)
        answer = json.loads(line)
        if "error" in answer:
            return "error", answer["error"]
        return "result", answer.get("result")

    def _exited(self, request_id: str) -> dict[str, Any]:
        try:
            code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.process.returncode
        return {
            "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: exit status {code}",
            "errorType": "Runtime.ExitError",
            "requestId": request_id,
            "stackTrace": [],
        }

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """Closes stdin (the child exits after its current invocation), then terminates, then kills."""
        if self.process.stdin and not self.process.stdin.closed:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.kill()
        self._release()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._release()

    def _release(self) -> None:
        if self._results >= 0:
            os.close(self._results)
            self._results = -1
        self._logs.join(timeout=1.0)


def function_environment(
    function: LocalFunction, *, endpoint_url: str, region: str, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """What a Lambda container's environment holds, resolved for the local stack; nothing from AWS_* leaks in."""
    keep = (
        "PATH",
        "HOME",
        "LANG",
        "LC_ALL",
        "TMPDIR",
        "SYSTEMROOT",
        "PYTHONDONTWRITEBYTECODE",
        "COVERAGE_PROCESS_START",
    )
    env = {name: os.environ[name] for name in keep if name in os.environ}
    python_path = [str(function.code_dir), *(str(layer) for layer in function.layers)]
    stream = f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"
    env.update(
        {
            "AWS_ENDPOINT_URL": endpoint_url,
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_SESSION_TOKEN": "local",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_LAMBDA_FUNCTION_NAME": function.name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_size),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": stream,
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "LAMBDA_TASK_ROOT": str(function.code_dir),
            "_HANDLER": function.handler,
            "TZ": ":UTC",
            "PYTHONPATH": os.pathsep.join(python_path),
            "PYTHONUNBUFFERED": "1",
            "CRIEUR_LOCAL_FUNCTION_ARN": function.arn,
            # Only here: the sandbox and test receivers live on loopback; retries come back after seconds.
            "CRIEUR_ALLOW_PRIVATE_TARGETS": "1",
            "CRIEUR_RETRY_BASE_SECONDS": "1",
        }
    )
    # Deployment-wide knobs from the shell (CRIEUR_<PROVIDER>_BASE_URL…) reach every function and may override
    # the local defaults above; the local stack's own settings (CRIEUR_LOCAL_*, the demo key) do not.
    env.update(
        {
            name: value
            for name, value in os.environ.items()
            if name.startswith("CRIEUR_") and not name.startswith("CRIEUR_LOCAL_")
        }
    )
    env.update(function.environment)
    env.update(extra or {})
    # `python -m infra.local.runtime` runs from the function's folder: this repository comes last on the path.
    env["PYTHONPATH"] += os.pathsep + str(ROOT)
    return env


class FunctionProcess:
    """Invokes one function in its own process(es): thread-safe, up to `max_workers` concurrent invocations."""

    def __init__(
        self,
        function: LocalFunction,
        env: dict[str, str],
        *,
        max_workers: int = 2,
        log: Callable[[str, str], None] | None = None,
        label: str | None = None,
    ) -> None:
        self.function = function
        self.label = label or function.logical_id
        self.env = env
        self.max_workers = max(1, max_workers)
        self._log = log or _stderr_log
        self._idle: list[_Worker] = []
        self._count = 0
        self._condition = threading.Condition()
        self._stopped = False
        self._busy: set[_Worker] = set()

    @property
    def name(self) -> str:
        return self.function.name

    def _spawn(self) -> _Worker:
        worker = _Worker(self.function, self.env, lambda line: self._log(self.label, line))
        try:
            worker.wait_ready(READY_TIMEOUT_SECONDS)
        except BaseException:
            worker.kill()
            raise
        return worker

    def start(self) -> None:
        """Starts one process and waits until its handler is imported (a cold start done ahead of time)."""
        with self._condition:
            if self._count:
                return
            self._count += 1
        try:
            worker = self._spawn()
        except BaseException:
            with self._condition:
                self._count -= 1
            raise
        with self._condition:
            self._idle.append(worker)
            self._condition.notify()

    def _acquire(self) -> _Worker:
        with self._condition:
            while True:
                if self._stopped:
                    raise LambdaError(
                        {
                            "errorMessage": "The local stack is stopping.",
                            "errorType": "Runtime.Stopped",
                            "stackTrace": [],
                        }
                    )
                if self._idle:
                    worker = self._idle.pop()
                    self._busy.add(worker)
                    return worker
                if self._count < self.max_workers:
                    self._count += 1
                    break
                self._condition.wait()
        try:
            worker = self._spawn()
        except BaseException:
            with self._condition:
                self._count -= 1
                self._condition.notify()
            raise
        with self._condition:
            self._busy.add(worker)
        return worker

    def _release(self, worker: _Worker) -> None:
        with self._condition:
            self._busy.discard(worker)
            keep = worker.alive and not self._stopped
            if keep:
                self._idle.append(worker)
            else:
                self._count -= 1  # the next invocation that needs it starts a fresh process
            self._condition.notify()
        if not keep:
            worker.close(grace=0.5)

    def invoke(self, event: Any) -> Any:
        """The handler's result; raises LambdaError with Lambda's error payload when the function fails."""
        request_id = str(uuid.uuid4())
        try:
            worker = self._acquire()
        except RuntimeError as failure:  # the process died before its handler was imported
            raise LambdaError(
                {
                    "errorMessage": f"RequestId: {request_id} Error: {failure}",
                    "errorType": "Runtime.ExitError",
                    "requestId": request_id,
                    "stackTrace": [],
                }
            ) from failure
        try:
            outcome, value = worker.invoke(request_id, event)
        finally:
            self._release(worker)
        if outcome == "error":
            raise LambdaError(value)
        return value

    def stop(self) -> None:
        with self._condition:
            self._stopped = True
            idle, self._idle = self._idle, []
            busy = list(self._busy)
            self._condition.notify_all()
        for worker in idle:
            worker.close()
        for worker in busy:
            worker.kill()

    def pids(self) -> list[int]:
        with self._condition:
            return [worker.process.pid for worker in (*self._idle, *self._busy)]


_print_lock = threading.Lock()


def _stderr_log(function: str, line: str, stream: IO[str] | None = None) -> None:
    with _print_lock:
        print(f"{function} | {line}", file=stream or sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
