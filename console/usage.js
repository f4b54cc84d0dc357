// Consommation: what the month cost so far (GET /v1/usage?month=YYYY-MM), line by line, with the budget.

import { api } from "./api.js";
import { field, format, h, view } from "./dom.js";
import { channelName } from "./labels.js";

export async function usageView() {
  const month = h("input", { type: "month", name: "month", value: currentMonth() });
  const result = h("div", { "aria-live": "polite" });
  const form = h("form", { class: "filters", "aria-label": "Choisir le mois" },
    field("Mois", month), h("button", { type: "submit", class: "secondary" }, "Afficher"));

  async function load() {
    const report = await api("GET", `/v1/usage?${new URLSearchParams({ month: month.value || currentMonth() })}`);
    const header = ["Unité", "Canal", "Quantité", "Prix unitaire HT", "Montant HT"];
    result.replaceChildren(
      report.lines.length
        ? h("div", { class: "scroll" }, h("table", {},
            h("caption", {}, `Consommation de ${report.month}`),
            h("thead", {}, h("tr", {}, header.map((title) => h("th", { scope: "col" }, title)))),
            h("tbody", {}, report.lines.map((line) => h("tr", {},
              h("th", { scope: "row" }, line.unit),
              h("td", {}, line.channel ? channelName(line.channel) : "—"),
              h("td", { class: "number" }, String(line.quantity)),
              h("td", { class: "number" }, format.euros(line.unit_price_eur)),
              h("td", { class: "number" }, format.euros(line.amount_ht_eur)))))))
        : h("p", {}, "Rien de consommé ce mois-ci."),
      h("dl", { class: "totals" },
        h("dt", {}, "Total HT"), h("dd", {}, format.euros(report.total_ht_eur)),
        h("dt", {}, `TVA (${Math.round(report.vat_rate * 100)} %)`), h("dd", {}, format.euros(report.vat_eur)),
        h("dt", {}, "Total TTC"), h("dd", {}, format.euros(report.total_ttc_eur)),
        h("dt", {}, "Budget mensuel"), h("dd", {}, report.budget_eur === null ? "aucun" : format.euros(report.budget_eur))),
    );
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    load();
  });
  view("Consommation", form, result);
  await load();
}

function currentMonth() {
  const parts = new Intl.DateTimeFormat("fr-FR", { timeZone: "Europe/Paris", year: "numeric", month: "2-digit" })
    .formatToParts(new Date());
  const value = (type) => parts.find((part) => part.type === type).value;
  return `${value("year")}-${value("month")}`;
}
