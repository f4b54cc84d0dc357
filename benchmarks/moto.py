"""AWS on loopback for the benchmarks: moto in server mode with template.yaml provisioned into it.

    with provisioned() as deployment:
        ...  # this process's boto3 clients (crieur.aws) point at moto; so do the function environments

The same moto server and provisioning as the local stack (infra/local) and the integration tests.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from infra.local.provision import DEFAULT_REGION, Deployment, LocalFunction, provision
from infra.local.runtime import function_environment

HOST = "127.0.0.1"
AWS_ENV = {
    "AWS_DEFAULT_REGION": DEFAULT_REGION,
    "AWS_REGION": DEFAULT_REGION,
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "POWERTOOLS_METRICS_DISABLED": "true",
    "POWERTOOLS_TRACE_DISABLED": "true",
}


@contextmanager
def provisioned(stack_name: str | None = None) -> Iterator[Deployment]:
    """moto on a free loopback port, template.yaml provisioned; this process's environment points at it.

    moto keeps its state per process, shared by every server in it: each provisioning takes a stack name of
    its own (`crieur-bench-<random>` by default), so that several benchmarks can run in one process."""
    from crieur import aws
    from infra.local.motoserver import MotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's server logs every request otherwise

    server = MotoServer(ip_address=HOST, port=0, verbose=False)
    starter = threading.Thread(target=server.start, daemon=True)
    starter.start()
    starter.join(timeout=30)
    if starter.is_alive():
        raise RuntimeError("moto did not start")
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved = {name: os.environ.get(name) for name in (*AWS_ENV, "AWS_ENDPOINT_URL", "AWS_PROFILE")}
    os.environ.update(AWS_ENV, AWS_ENDPOINT_URL=endpoint)
    os.environ.pop("AWS_PROFILE", None)
    aws.reset()
    try:
        yield provision(
            endpoint, region=DEFAULT_REGION, stack_name=stack_name or f"crieur-bench-{uuid.uuid4().hex[:6]}"
        )
    finally:
        server.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        aws.reset()


def environment(deployment: Deployment, function: LocalFunction, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The function's Lambda environment (template variables, moto endpoint), as the local runtime builds it."""
    env = function_environment(function, endpoint_url=deployment.endpoint_url, region=deployment.region, extra=extra)
    env.update({name: value for name, value in AWS_ENV.items() if name.startswith("POWERTOOLS_")})
    return env


def deliver_function(deployment: Deployment, channel: str) -> LocalFunction:
    return next(
        function
        for function in deployment.functions.values()
        if function.logical_id.endswith("DeliverFunction") and function.environment.get("CHANNEL") == channel
    )


def function_named(deployment: Deployment, logical_id: str) -> LocalFunction:
    return next(function for function in deployment.functions.values() if function.logical_id == logical_id)
