"""The operator CLI against a running stack, found through the state file `make run` writes."""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from crieur import aws, cli
from crieur.communes import CommuneService
from crieur.store import Store
from infra.local.provision import Deployment


@pytest.fixture
def local_state(
    tmp_path: Path, moto_endpoint: str, deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    state = tmp_path / "local.json"
    state.write_text(
        json.dumps({"aws_endpoint": moto_endpoint, "region": deployment.region, "outputs": deployment.outputs})
    )
    monkeypatch.setenv("CRIEUR_LOCAL_STATE", str(state))
    # The CLI sets these from the state file; monkeypatch restores them after the test.
    for name in (
        "AWS_ENDPOINT_URL",
        "AWS_DEFAULT_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "CRIEUR_ALLOW_PRIVATE_TARGETS",
        "CRIEUR_METEOFRANCE_BASE_URL",
        "CRIEUR_METEOALARM_BASE_URL",
        "CRIEUR_METEOFRANCE_PARAMETER",
    ):
        monkeypatch.setenv(name, "unset-by-the-test")
    yield state
    aws.reset()


def test_commune_and_key_lifecycle(
    local_state: Path, deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["commune", "create", "--insee", "2a004", "--name", "Ajaccio"]) == 0
    assert "département 2A" in capsys.readouterr().out

    assert cli.main(["key", "create", "--commune", "2A004"]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    key = printed[-1]  # the secret, once, on the last line
    assert key.startswith("crieur_")
    communes = CommuneService(Store(deployment.outputs["TableName"]))
    assert communes.commune_for_authorization(f"Bearer {key}") == "2A004"

    key_id = printed[0].split("identifiant ")[1].split(")")[0]
    assert cli.main(["key", "revoke", "--commune", "2A004", "--key", key_id]) == 0
    assert communes.commune_for_authorization(f"Bearer {key}") is None


def test_refusals_are_explained_in_french(local_state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["commune", "create", "--insee", "123", "--name", "Nulle part"]) == 1
    assert "Code INSEE invalide" in capsys.readouterr().err
    assert cli.main(["key", "create", "--commune", "99998"]) == 1
    assert "Aucune commune 99998" in capsys.readouterr().err
    assert cli.main(["commune", "create", "--insee", "29134", "--name", "Locronan"]) == 0
    assert cli.main(["commune", "create", "--insee", "29134", "--name", "Locronan"]) == 1
    assert "existe déjà" in capsys.readouterr().err


def test_without_a_running_stack_it_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRIEUR_LOCAL_STATE", str(tmp_path / "absent.json"))
    with pytest.raises(SystemExit, match="make run"):
        cli.main(["key", "create", "--commune", "35238"])


def test_weather_check_prints_the_vigilance_and_what_would_be_sent(
    local_state: Path, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import boto3

    from infra.local.imitations.meteofrance import DEMO_API_KEY, MeteoFranceImitation
    from infra.local.sandbox import Sandbox

    with Sandbox() as sandbox:
        (meteofrance,) = [i for i in sandbox.imitations.values() if isinstance(i, MeteoFranceImitation)]
        meteofrance.set_vigilance("45", "orages", "orange", hours=12)
        monkeypatch.setenv("CRIEUR_METEOFRANCE_BASE_URL", f"{sandbox.url}/meteofrance")
        monkeypatch.setenv("CRIEUR_ALLOW_PRIVATE_TARGETS", "1")
        monkeypatch.setenv("CRIEUR_METEOFRANCE_PARAMETER", "/crieur/test/meteofrance")
        ssm = boto3.client("ssm", endpoint_url=moto_endpoint, region_name="eu-west-3")
        ssm.put_parameter(
            Name="/crieur/test/meteofrance",
            Type="SecureString",
            Value=json.dumps({"api_key": DEMO_API_KEY}),
            Overwrite=True,
        )
        assert cli.main(["weather", "check", "--dept", "45"]) == 0
    out = capsys.readouterr().out
    assert "Vigilance en cours (meteofrance), département 45" in out
    assert "Orages : orange" in out
    assert "Serait envoyé (high)" in out


def test_usage_and_budget_for_the_operator(
    local_state: Path, deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    from decimal import Decimal

    from crieur.billing import billing_month
    from crieur.models import utc_now

    assert cli.main(["commune", "create", "--insee", "56240", "--name", "Saint-Pierre-Quiberon"]) == 0
    store = Store(deployment.outputs["TableName"])
    month = billing_month(utc_now())
    store.meter("56240", "pub_cli", month, unit="publication", channel=None, unit_price=Decimal("0.0200"))
    capsys.readouterr()
    assert cli.main(["usage", "--commune", "56240", "--month", month]) == 0
    out = capsys.readouterr().out
    assert "publication : 1 × 0.0200 € = 0.0200 € HT" in out
    assert "0.02 € TTC" in out
    assert cli.main(["usage", "--all", "--month", month]) == 0
    export = capsys.readouterr().out.splitlines()
    assert export[0].startswith("Commune;Mois;")
    assert any(line.startswith(f"56240;{month};Publication") for line in export)
    assert cli.main(["budget", "set", "--commune", "56240", "--monthly-eur", "15"]) == 0
    assert store.budget("56240") == Decimal("15")
    assert cli.main(["budget", "set", "--commune", "56240", "--none"]) == 0
    assert store.budget("56240") is None
