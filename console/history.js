// Agenda et historique: what is scheduled (soonest first), then every publication, newest first, filtered
// by status (by the API) and by category (here).

import { api } from "./api.js";
import { field, format, h, view } from "./dom.js";
import { CATEGORIES, PUBLICATION_STATUS } from "./labels.js";

const PAGE = 25;

export async function historyView() {
  const scheduled = await listAll("scheduled");
  scheduled.sort((a, b) => (a.publish_at || "").localeCompare(b.publish_at || ""));

  const status = h("select", { name: "status" },
    h("option", { value: "" }, "Tous"),
    Object.entries(PUBLICATION_STATUS).map(([value, label]) => h("option", { value }, label)));
  const category = h("select", { name: "category" },
    h("option", { value: "" }, "Toutes"),
    Object.entries(CATEGORIES).map(([value, label]) => h("option", { value }, label)));
  const rows = h("tbody");
  const more = h("button", { type: "button", class: "secondary" }, "Afficher plus");
  const count = h("p", { role: "status", class: "hint" });
  let cursor = null;
  let shown = [];

  async function load(reset) {
    if (reset) {
      cursor = null;
      shown = [];
    }
    const query = new URLSearchParams({ limit: String(PAGE) });
    if (status.value) query.set("status", status.value);
    if (cursor) query.set("cursor", cursor);
    const page = await api("GET", `/v1/publications?${query}`);
    shown = shown.concat(page.items);
    cursor = page.next_cursor;
    render();
  }

  function render() {
    const kept = shown.filter((item) => !category.value || item.category === category.value);
    rows.replaceChildren(...kept.map((item) => line(item, item.created_at)));
    more.hidden = !cursor;
    count.textContent = `${kept.length} publication${kept.length > 1 ? "s" : ""} affichée${kept.length > 1 ? "s" : ""}.`;
  }

  status.addEventListener("change", () => load(true));
  category.addEventListener("change", render);
  more.addEventListener("click", () => load(false));

  view(
    "Agenda et historique",
    h("section", { "aria-labelledby": "agenda-title" },
      h("h2", { id: "agenda-title" }, "À venir"),
      scheduled.length
        ? table("Publications programmées", "Publication prévue le", scheduled.map((item) => line(item, item.publish_at)))
        : h("p", {}, "Aucune publication programmée.")),
    h("section", { "aria-labelledby": "history-title" },
      h("h2", { id: "history-title" }, "Historique"),
      h("form", { class: "filters", role: "search", "aria-label": "Filtrer l'historique" },
        field("État", status), field("Catégorie", category)),
      count,
      table("Toutes les publications", "Créée le", rows),
      more),
  );
  await load(true);
}

async function listAll(status) {
  const items = [];
  let cursor = null;
  do {
    const query = new URLSearchParams({ limit: "100", status });
    if (cursor) query.set("cursor", cursor);
    const page = await api("GET", `/v1/publications?${query}`);
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor);
  return items;
}

function table(caption, dateTitle, body) {
  const tbody = body instanceof HTMLElement ? body : h("tbody", {}, body);
  return h("div", { class: "scroll" }, h("table", {},
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, [dateTitle, "Titre", "Catégorie", "État"].map((title) => h("th", { scope: "col" }, title)))),
    tbody));
}

function line(item, when) {
  return h("tr", { "data-id": item.id },
    h("td", {}, format.date(when)),
    h("th", { scope: "row" }, h("a", { href: `#/publications/${item.id}` }, item.title)),
    h("td", {}, CATEGORIES[item.category] || item.category),
    h("td", {}, h("span", { class: `badge badge-${item.status}` }, PUBLICATION_STATUS[item.status] || item.status)));
}
