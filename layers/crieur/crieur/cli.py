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
from decimal import Decimal
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


def _stack_output(stack: str | None, name: str) -> str:
    """Another output of the stack (after `_table_name` has pointed the clients at it)."""
    if stack:
        outputs = aws.session().client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]["Outputs"]
        return next(str(item["OutputValue"]) for item in outputs if item["OutputKey"] == name)
    local = _local_state()["outputs"]
    assert isinstance(local, dict)
    return str(local[name])


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

    usage = nouns.add_parser("usage", help="consommation du mois (facturation)")
    usage.add_argument("--month", required=True, help="mois AAAA-MM")
    whose = usage.add_mutually_exclusive_group(required=True)
    whose.add_argument("--commune", help="code INSEE de la commune")
    whose.add_argument("--all", action="store_true", help="toutes les communes (export CSV du mois)")
    usage.add_argument("--csv", action="store_true", help="au format CSV (toujours avec --all)")

    budget = nouns.add_parser("budget", help="budget mensuel TTC d'une commune").add_subparsers(
        dest="verb", required=True
    )
    budget_set = budget.add_parser("set", help="fixer (ou retirer avec --none) le budget mensuel")
    budget_set.add_argument("--commune", required=True, help="code INSEE de la commune")
    amount = budget_set.add_mutually_exclusive_group(required=True)
    amount.add_argument("--monthly-eur", type=Decimal, help="montant TTC par mois, en euros")
    amount.add_argument("--none", action="store_true", help="aucun budget")

    inbound = nouns.add_parser("inbound", help="webhooks entrants (sites de la commune)").add_subparsers(
        dest="verb", required=True
    )
    source = inbound.add_parser("create-source", help="autoriser un site à publier (secret affiché une seule fois)")
    source.add_argument("--commune", required=True, help="code INSEE de la commune")
    source.add_argument("--name", required=True, help="nom du site, ex. « Site de la mairie »")
    source.add_argument("--signed-only", action="store_true", help="refuser le repli par clé dans l'adresse")

    weather = nouns.add_parser("weather", help="vigilance météo").add_subparsers(dest="verb", required=True)
    check = weather.add_parser("check", help="la vigilance en cours d'un département et ce qui serait envoyé")
    check.add_argument("--dept", required=True, help="code du département (ex. 45, 2A)")

    dlq = nouns.add_parser("dlq", help="files de messages en échec (dead-letter queues)").add_subparsers(
        dest="verb", required=True
    )
    redrive = dlq.add_parser("redrive", help="renvoyer les messages en échec d'un canal vers sa file")
    redrive.add_argument("--channel", required=True, help="nom du canal (webhook, mastodon, sms…)")
    return root


def dlq_redrive(stack: str | None, channel: str) -> int:
    """Moves the channel's dead-letter messages back to its queue, and says how many."""
    from crieur.dlq import channel_queues, redrive

    try:
        queues = channel_queues(_stack_output(stack, "TopicArn"), channel)
    except LookupError:
        print(f"Aucune file pour le canal « {channel} » dans cette pile.", file=sys.stderr)
        return 1
    moved = redrive(queues.dead_letter_url, queues.queue_url)
    print(f"{moved} message(s) renvoyé(s) de la file en échec vers la file du canal {channel}.")
    return 0


def print_usage(store: Store, month: str, commune: str | None, as_csv: bool) -> int:
    """One commune's usage (a table, or CSV), or every commune's as one CSV export for the month."""
    from crieur.billing import price_list
    from crieur.usage import usage_csv, usage_report

    prices = price_list()
    communes = [commune] if commune else store.list_communes()
    for index, insee in enumerate(communes):
        report = usage_report(store, prices, insee, month)
        if as_csv:
            text = usage_csv(report)
            print(text if index == 0 else text.split("\r\n", 1)[1], end="")
            continue
        print(f"Consommation de {insee} en {month} :")
        for line in report.lines:
            channel = f" ({line.channel})" if line.channel else ""
            price = f"{line.quantity} × {line.unit_price_eur:.4f} € = {line.amount_ht_eur:.4f} € HT"
            print(f"  {line.unit}{channel} : {price}")
        print(f"  Total {report.total_ht_eur:.2f} € HT, TVA {report.vat_eur:.2f} €, {report.total_ttc_eur:.2f} € TTC")
    return 0


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
    if args.noun == "dlq":
        return dlq_redrive(args.stack, args.channel.lower())
    store = Store(table)
    if args.noun == "usage":
        return print_usage(store, args.month, None if args.all else args.commune.upper(), args.csv or args.all)
    if args.noun == "budget":
        store.set_budget(args.commune.upper(), None if args.none else args.monthly_eur)
        print(f"Budget de {args.commune} : {'aucun' if args.none else f'{args.monthly_eur} € TTC par mois'}.")
        return 0
    service = CommuneService(store)
    try:
        if (args.noun, args.verb) == ("commune", "create"):
            commune = service.create_commune(args.insee, args.name)
            print(f"Commune créée : {commune.name} ({commune.insee}), département {commune.departement}")
        elif (args.noun, args.verb) == ("key", "create"):
            key = service.create_key(args.commune.upper())
            print(f"Clé créée pour {args.commune} (identifiant {key.key_id}). Elle ne sera plus affichée :")
            print(key.key)
        elif (args.noun, args.verb) == ("inbound", "create-source"):
            from crieur.inbound.cli import create_source

            key_arn = _stack_output(args.stack, "CredentialsKeyArn")
            create_source(store, key_arn, args.commune.upper(), args.name, args.signed_only)
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
