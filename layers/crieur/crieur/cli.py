"""`crieur`: the operator's command line (communes and API keys).

With no flag it works against the running local stack (`make run` writes .crieur/local.json); with
`--stack NAME` against a deployed CloudFormation stack, using the usual AWS credentials.
A command that creates a secret prints it once, on its last line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from crieur import aws
from crieur.communes import CommuneService
from crieur.errors import CrieurError
from crieur.store import Store

LOCAL_STATE = Path(".crieur") / "local.json"
METEOFRANCE_PARAMETER = "/crieur/meteofrance/credentials"
"""The template's default MeteoFranceParameterName."""


def _local_state() -> dict[str, object]:
    override = os.environ.get("CRIEUR_LOCAL_STATE")
    candidates = (
        [Path(override)] if override else [folder / LOCAL_STATE for folder in (Path.cwd(), *Path.cwd().parents)]
    )
    for candidate in candidates:
        if candidate.is_file():
            return dict(json.loads(candidate.read_text()))
    raise SystemExit("Aucune pile locale en marche (lancez `make run`), ou précisez --stack NOM pour une pile AWS.")


def _table_name(stack: str | None) -> str:
    if stack:
        outputs = aws.session().client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]["Outputs"]
        return next(str(item["OutputValue"]) for item in outputs if item["OutputKey"] == "TableName")
    state = _local_state()
    os.environ["AWS_ENDPOINT_URL"] = str(state["aws_endpoint"])
    os.environ["AWS_DEFAULT_REGION"] = str(state["region"])
    os.environ["AWS_ACCESS_KEY_ID"] = "local"  # moto accepts any credentials
    os.environ["AWS_SECRET_ACCESS_KEY"] = "local"  # noqa: S105 - not a secret: moto
    # The local sandbox stands in for the vigilance APIs, as it does for the weather function.
    sandbox = str(state.get("sandbox_url", ""))
    for provider in ("meteofrance", "meteoalarm"):
        os.environ.setdefault(f"CRIEUR_{provider.upper()}_BASE_URL", f"{sandbox}/{provider}")
    os.environ.setdefault("CRIEUR_ALLOW_PRIVATE_TARGETS", "1")
    aws.reset()
    outputs = state["outputs"]
    assert isinstance(outputs, dict)
    return str(outputs["TableName"])


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="crieur", description="Administration de Crieur (communes, clés d'API).")
    root.add_argument("--stack", help="pile CloudFormation déployée (par défaut : la pile locale de `make run`)")
    nouns = root.add_subparsers(dest="noun", required=True)

    commune = nouns.add_parser("commune", help="communes").add_subparsers(dest="verb", required=True)
    create = commune.add_parser("create", help="créer une commune")
    create.add_argument("--insee", required=True, help="code INSEE (5 caractères, ex. 35238 ou 2A004)")
    create.add_argument("--name", required=True, help="nom de la commune")

    key = nouns.add_parser("key", help="clés d'API").add_subparsers(dest="verb", required=True)
    key_create = key.add_parser("create", help="créer une clé (affichée une seule fois)")
    key_create.add_argument("--commune", required=True, help="code INSEE de la commune")
    key_revoke = key.add_parser("revoke", help="révoquer une clé")
    key_revoke.add_argument("--commune", required=True, help="code INSEE de la commune")
    key_revoke.add_argument("--key", required=True, help="identifiant de la clé (ou la clé elle-même)")

    weather = nouns.add_parser("weather", help="vigilance météo").add_subparsers(dest="verb", required=True)
    check = weather.add_parser("check", help="la vigilance en cours d'un département et ce qui serait envoyé")
    check.add_argument("--dept", required=True, help="code du département (ex. 45, 2A)")
    return root


def weather_check(departement: str) -> int:
    """Prints the département's current vigilance and the alerts a commune that opted in would receive."""
    from crieur import config
    from crieur.weather.diff import diff
    from crieur.weather.errors import WeatherSourceError
    from crieur.weather.templates import format_period, render

    for name, make in config.vigilance_sources():
        try:
            snapshot = make().fetch_if_changed(None)
        except WeatherSourceError as failure:
            print(f"{name} : indisponible ({failure})")
            continue
        if snapshot is None:
            continue
        now = datetime.now(UTC)
        print(f"Vigilance en cours ({name}), département {departement} :")
        found = [v for v in snapshot.vigilances if v.departement == departement]
        for vigilance in sorted(found, key=lambda v: v.phenomenon.value):
            outlook = vigilance.outlook(now)
            period = format_period(outlook.begin, outlook.end, now=now) if outlook.begin else ""
            print(f"  {vigilance.phenomenon.label} : {outlook.color.label} {period}".rstrip())
        events = [event for event in diff([], snapshot, now).events if event.departement == departement]
        if not events:
            print("Rien ne serait envoyé (pas de vigilance orange ou rouge).")
        for event in events:
            message = render(event, now=now)
            print(f"\nSerait envoyé ({message.urgency}) : {message.title}\n{message.body}")
        return 0
    print("Aucune source de vigilance n'a répondu.", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    table = _table_name(args.stack)
    if args.noun == "weather":
        os.environ.setdefault("CRIEUR_METEOFRANCE_PARAMETER", METEOFRANCE_PARAMETER)
        return weather_check(args.dept.upper())
    service = CommuneService(Store(table))
    try:
        if (args.noun, args.verb) == ("commune", "create"):
            commune = service.create_commune(args.insee, args.name)
            print(f"Commune créée : {commune.name} ({commune.insee}), département {commune.departement}")
        elif (args.noun, args.verb) == ("key", "create"):
            key = service.create_key(args.commune.upper())
            print(f"Clé créée pour {args.commune} (identifiant {key.key_id}). Elle ne sera plus affichée :")
            print(key.key)
        else:
            service.revoke_key(args.commune.upper(), args.key)
            print(f"Clé révoquée pour {args.commune}.")
    except CrieurError as refused:
        details = "; ".join(f"{field} : {message}" for field, message in refused.errors)
        print(f"Refusé : {refused.detail} {details}".strip(), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
