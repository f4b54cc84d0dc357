"""The console's static files (console/, no build step) into a deployed stack's ConsoleBucket.

`make console-upload STACK=<name>` runs `python -m infra.console_upload --stack <name>` with the project's
virtualenv (boto3, the caller's AWS credentials and region): no AWS CLI needed. The local stack uploads
through the same function, so what `make run` serves is what a deployment serves.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crieur.console import PREFIX, content_type

CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console"
OUTPUT = "ConsoleBucketName"


class UploadError(RuntimeError):
    """The stack or its console bucket cannot be found."""


@dataclass(frozen=True)
class Uploaded:
    written: list[str]
    removed: list[str]


def upload_console(s3: Any, bucket: str, folder: Path = CONSOLE_DIR) -> Uploaded:
    """Puts every console file under `console/` with its content type and removes the keys of files that no
    longer exist (as `aws s3 sync --delete` would): a renamed module never lingers in the bucket."""
    files = {
        path.name: kind
        for path in sorted(folder.iterdir())
        if path.is_file() and (kind := content_type(path.name)) is not None
    }
    for name, kind in files.items():
        s3.put_object(Bucket=bucket, Key=PREFIX + name, Body=(folder / name).read_bytes(), ContentType=kind)
    stale = [
        item["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=PREFIX)
        for item in page.get("Contents", [])
        if item["Key"].removeprefix(PREFIX) not in files
    ]
    for key in stale:
        s3.delete_object(Bucket=bucket, Key=key)
    return Uploaded(written=[PREFIX + name for name in files], removed=stale)


def stack_bucket(cloudformation: Any, stack: str) -> str:
    """The ConsoleBucketName output of the stack `sam deploy` created."""
    from botocore.exceptions import ClientError

    try:
        stacks = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    except ClientError as error:
        raise UploadError(f"stack {stack!r} not found: {error.response['Error'].get('Message', error)}") from error
    outputs = {output["OutputKey"]: output["OutputValue"] for output in stacks[0].get("Outputs", [])}
    if OUTPUT not in outputs:
        raise UploadError(f"stack {stack!r} has no {OUTPUT} output: deploy template.yaml first (sam deploy)")
    return str(outputs[OUTPUT])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.console_upload", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True, help="the stack name given to sam deploy")
    args = parser.parse_args(argv)
    import boto3

    session = boto3.session.Session()
    try:
        bucket = stack_bucket(session.client("cloudformation"), args.stack)
    except UploadError as error:
        print(f"console-upload: {error}", file=sys.stderr)
        return 1
    done = upload_console(session.client("s3"), bucket)
    print(f"console-upload: {len(done.written)} files to s3://{bucket}/{PREFIX}, {len(done.removed)} removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
