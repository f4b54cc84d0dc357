"""`crieur dlq redrive --channel X`: the channel's dead-letter messages go back to its queue, body and
attributes kept, and the command says how many (moto in server mode, resources of template.yaml)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crieur import aws, cli
from crieur.dlq import channel_queues
from infra.local.provision import Deployment
from tests.integration.test_cli import local_state  # noqa: F401 - the CLI's state-file fixture


def messages(url: str) -> list[dict[str, object]]:
    found: list[dict[str, object]] = []
    while (
        batch := aws.sqs()
        .receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=30)
        .get("Messages", [])
    ):
        found += batch
    return found


def test_redrive_moves_every_dead_letter_back_to_the_channel_queue(
    local_state: Path,  # noqa: F811
    deployment: Deployment,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cli._table_name(None)  # points the AWS clients at the local stack, as the command does
    webhook = channel_queues(deployment.outputs["TopicArn"], "webhook")
    mastodon = channel_queues(deployment.outputs["TopicArn"], "mastodon")
    assert webhook.queue_url != mastodon.queue_url
    assert "DeadLetter" in webhook.dead_letter_url
    for queue in (webhook.queue_url, webhook.dead_letter_url, mastodon.dead_letter_url):
        aws.sqs().purge_queue(QueueUrl=queue)
    bodies = [
        json.dumps({"action": "publish", "commune": "35238", "publication_id": f"pub_{n:02d}"}) for n in range(23)
    ]
    for body in bodies:
        aws.sqs().send_message(
            QueueUrl=webhook.dead_letter_url,
            MessageBody=body,
            MessageAttributes={"channels": {"DataType": "String.Array", "StringValue": '["webhook"]'}},
        )
    aws.sqs().send_message(QueueUrl=mastodon.dead_letter_url, MessageBody="{}")

    assert cli.main(["dlq", "redrive", "--channel", "webhook"]) == 0
    assert capsys.readouterr().out.strip().startswith("23 message(s) renvoyé(s)")
    moved = messages(webhook.queue_url)
    assert sorted(str(message["Body"]) for message in moved) == sorted(bodies)
    assert all(
        message["MessageAttributes"] == {"channels": {"DataType": "String.Array", "StringValue": '["webhook"]'}}
        for message in moved
    )
    assert messages(webhook.dead_letter_url) == []
    assert len(messages(mastodon.dead_letter_url)) == 1  # another channel's DLQ is left alone

    assert cli.main(["dlq", "redrive", "--channel", "webhook"]) == 0
    assert capsys.readouterr().out.startswith("0 message(s)")
    assert cli.main(["dlq", "redrive", "--channel", "pigeon"]) == 1
    assert "Aucune file" in capsys.readouterr().err
