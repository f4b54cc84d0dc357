"""A publish is one transaction and one SNS message (ARCHITECTURE.md §8): the publication, its deliveries and
its fee are written together; a release moves the publication and bills its fee together, and reads nothing
to know where to send it. A fan-out that fails credits the fee back: nothing went out, nothing is owed."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from crieur import config
from crieur.billing import billing_month
from crieur.credentials import KmsVault
from crieur.errors import Unavailable
from crieur.models import Delivery, FanoutMessage, Publication, PublicationRequest, ReleaseRequest, utc_now
from crieur.service import PublicationService
from crieur.store import Store
from infra.local.provision import Deployment

HOOK = "https://site.example/hooks/crieur"


class Fanout:
    def __init__(self, fails: bool = False) -> None:
        self.fails = fails
        self.sent: list[tuple[FanoutMessage, list[str]]] = []

    def send(self, message: FanoutMessage, channels: list[str]) -> None:
        if self.fails:
            raise RuntimeError("SNS unavailable")
        self.sent.append((message, channels))


def service(deployment: Deployment, fanout: Fanout) -> PublicationService:
    return PublicationService(
        store=Store(deployment.outputs["TableName"]), fanout=fanout, vault=KmsVault(None), http=config.http
    )


def with_channels(store: Store, commune: str) -> str:
    for channel in ("webhook", "website"):
        store.put_channel(commune, channel, True, {"url": HOOK} if channel == "webhook" else {}, None)  # type: ignore[arg-type]
    return commune


def usage(store: Store, commune: str, publication_id: str) -> list[dict[str, Any]]:
    lines = store.usage_lines(commune, billing_month(utc_now()))
    return [line for line in lines if line["publication_id"] == publication_id]


def test_the_answer_is_the_publication_as_written_with_its_fee(aws_env: None, deployment: Deployment) -> None:
    fanout = Fanout()
    publications = service(deployment, fanout)
    commune = with_channels(publications.store, "29019")
    answer = publications.publish(commune, PublicationRequest(title="Marché", body="Samedi matin, place de l'église."))
    assert answer == publications.get_publication(commune, answer.id)
    assert answer.billed_ht_eur == 0.02
    assert [(line["unit"], line["quantity"]) for line in usage(publications.store, commune, answer.id)] == [
        ("publication", 1)
    ]
    assert [channels for _, channels in fanout.sent] == [["webhook", "website"]]


def test_a_fan_out_that_fails_credits_the_fee_back(aws_env: None, deployment: Deployment) -> None:
    publications = service(deployment, Fanout(fails=True))
    commune = with_channels(publications.store, "29232")
    with pytest.raises(Unavailable):
        publications.publish(commune, PublicationRequest(title="Marché", body="Samedi matin, place de l'église."))
    [page] = [publications.list_publications(commune, 1, None, None).items]
    [failed] = page
    assert {delivery.status for delivery in failed.deliveries.values()} == {"failed"}
    lines = usage(publications.store, commune, failed.id)
    assert sorted(line["quantity"] for line in lines) == [-1, 1]
    assert sum(Decimal(str(line["amount"])) for line in lines) == 0
    assert failed.billed_ht_eur == 0


def scheduled(store: Store, commune: str) -> Publication:
    now = utc_now()
    publication = Publication(
        title="Conseil municipal",
        body="Jeudi à 20 h, salle du conseil.",
        id=f"pub_release_{commune}",
        commune=commune,
        status="scheduled",
        created_at=now,
        publish_at=now + timedelta(hours=1),
        channels=["webhook", "website"],
        deliveries={channel: Delivery(status="pending", updated_at=now) for channel in ("webhook", "website")},
    )
    store.create_publication(publication)
    return publication


@pytest.mark.parametrize("named", [True, False], ids=["channels in its input", "an older schedule's input"])
def test_a_release_bills_once_and_sends_once(
    aws_env: None, deployment: Deployment, monkeypatch: pytest.MonkeyPatch, named: bool
) -> None:
    fanout = Fanout()
    publications = service(deployment, fanout)
    commune = "29103" if named else "29104"
    publication = scheduled(publications.store, commune)
    reads: list[str] = []
    read = publications.store.get_publication

    def counted(commune: str, publication_id: str) -> Publication | None:
        reads.append(publication_id)
        return read(commune, publication_id)

    monkeypatch.setattr(publications.store, "get_publication", counted)
    release = ReleaseRequest(
        commune=commune, publication_id=publication.id, version=1, channels=["webhook", "website"] if named else None
    )
    assert publications.release(release) is True
    assert publications.release(release) is False  # a second firing
    assert reads == ([] if named else [publication.id])
    assert [channels for _, channels in fanout.sent] == [["webhook", "website"]]
    assert [line["quantity"] for line in usage(publications.store, commune, publication.id)] == [1]
    shown = read(commune, publication.id)
    assert shown is not None
    assert (shown.status, shown.billed_ht_eur) == ("publishing", 0.02)
