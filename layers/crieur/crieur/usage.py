"""A commune's monthly usage: lines re-computed from the append-only usage records, totals HT, VAT, TTC,
and the CSV the mairie's accountant asks for (French conventions: `;` between fields, decimal comma)."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from decimal import Decimal

from crieur.billing import PriceList
from crieur.models import UsageLine, UsageReport
from crieur.store import Store

UNIT_LABELS = {
    "publication": "Publication",
    "delivery": "Envoi",
    "x_post_with_url": "Envoi sur X avec lien",
    "sms_part": "SMS (partie)",
    "email": "E-mail",
    "push_message": "Notification de l'appli",
    "webpush_message": "Notification web",
}


def usage_report(store: Store, prices: PriceList, commune: str, month: str) -> UsageReport:
    """Adds up the month's usage lines, so the report always matches what was recorded, unit by unit."""
    grouped: dict[tuple[str, str, Decimal], list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for line in store.usage_lines(commune, month):
        key = (str(line["unit"]), str(line.get("channel") or ""), Decimal(str(line["unit_price"])))
        grouped[key][0] += Decimal(str(line["quantity"]))
        grouped[key][1] += Decimal(str(line["amount"]))
    lines = [
        UsageLine(
            unit=unit,
            channel=channel or None,
            quantity=int(quantity),
            unit_price_eur=float(price),
            amount_ht_eur=float(amount),
        )
        for (unit, channel, price), (quantity, amount) in sorted(grouped.items())
    ]
    total_ht = sum((amount for _, amount in grouped.values()), start=Decimal(0))
    total_ttc = prices.with_vat(total_ht)
    budget = store.budget(commune)
    return UsageReport(
        commune=commune,
        month=month,
        lines=lines,
        total_ht_eur=float(total_ht.quantize(Decimal("0.0001"))),
        vat_rate=float(prices.vat_rate),
        vat_eur=float(total_ttc - total_ht.quantize(Decimal("0.01"))),
        total_ttc_eur=float(total_ttc),
        budget_eur=float(budget) if budget is not None else None,
    )


def _fr(value: float, places: int) -> str:
    return f"{value:.{places}f}".replace(".", ",")


def usage_csv(report: UsageReport) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow(["Commune", "Mois", "Unité", "Canal", "Quantité", "Prix unitaire HT (€)", "Montant HT (€)"])
    for line in report.lines:
        writer.writerow(
            [
                report.commune,
                report.month,
                UNIT_LABELS.get(line.unit, line.unit),
                line.channel or "",
                line.quantity,
                _fr(line.unit_price_eur, 4),
                _fr(line.amount_ht_eur, 4),
            ]
        )
    writer.writerow([report.commune, report.month, "Total HT", "", "", "", _fr(report.total_ht_eur, 2)])
    writer.writerow([report.commune, report.month, f"TVA {report.vat_rate:.0%}", "", "", "", _fr(report.vat_eur, 2)])
    writer.writerow([report.commune, report.month, "Total TTC", "", "", "", _fr(report.total_ttc_eur, 2)])
    return buffer.getvalue()
