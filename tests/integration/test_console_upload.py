"""`make console-upload`: the console's files into a deployed stack's bucket, with boto3 against moto."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import boto3
import pytest

from infra.console_upload import CONSOLE_DIR, UploadError, main, stack_bucket, upload_console

pytestmark = pytest.mark.usefixtures("aws_env")


def _stack_with_console_bucket() -> tuple[str, str]:
    """A CloudFormation stack in moto with a bucket and the ConsoleBucketName output, as sam deploy leaves."""
    name = f"console-{uuid.uuid4().hex[:8]}"
    template = {
        "Resources": {"ConsoleBucket": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": f"{name}-bucket"}}},
        "Outputs": {"ConsoleBucketName": {"Value": {"Ref": "ConsoleBucket"}}},
    }
    boto3.client("cloudformation").create_stack(StackName=name, TemplateBody=json.dumps(template))
    return name, f"{name}-bucket"


def _keys(bucket: str) -> dict[str, str]:
    s3 = boto3.client("s3")
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="console/").get("Contents", [])
    return {item["Key"]: s3.head_object(Bucket=bucket, Key=item["Key"])["ContentType"] for item in listed}


def test_every_console_file_goes_up_with_its_content_type_and_stale_files_go(tmp_path: Path) -> None:
    stack, bucket = _stack_with_console_bucket()
    s3 = boto3.client("s3")
    s3.put_object(Bucket=bucket, Key="console/old-module.js", Body=b"// renamed since")
    s3.put_object(Bucket=bucket, Key="elsewhere/kept.txt", Body=b"not the console's")

    assert main(["--stack", stack]) == 0

    keys = _keys(bucket)
    shipped = {path.name for path in CONSOLE_DIR.iterdir() if path.suffix in (".html", ".js", ".css")}
    assert set(keys) == {f"console/{name}" for name in shipped}
    assert keys["console/index.html"] == "text/html; charset=utf-8"
    assert keys["console/app.js"] == "text/javascript; charset=utf-8"
    assert keys["console/style.css"] == "text/css; charset=utf-8"
    assert s3.get_object(Bucket=bucket, Key="elsewhere/kept.txt")["Body"].read() == b"not the console's"


def test_files_the_console_does_not_serve_are_not_uploaded(tmp_path: Path) -> None:
    _, bucket = _stack_with_console_bucket()
    (tmp_path / "index.html").write_text("<!doctype html>", encoding="utf-8")
    (tmp_path / "notes.md").write_text("brouillon", encoding="utf-8")

    done = upload_console(boto3.client("s3"), bucket, tmp_path)

    assert done.written == ["console/index.html"]
    assert list(_keys(bucket)) == ["console/index.html"]


def test_an_unknown_stack_or_one_without_the_output_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--stack", "no-such-stack"]) == 1
    assert "stack 'no-such-stack' not found" in capsys.readouterr().err

    name = f"bare-{uuid.uuid4().hex[:8]}"
    template = {"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}}
    boto3.client("cloudformation").create_stack(StackName=name, TemplateBody=json.dumps(template))
    with pytest.raises(UploadError, match="has no ConsoleBucketName output"):
        stack_bucket(boto3.client("cloudformation"), name)
