// One publication: its live status per channel (GET /v1/publications/{id}, polled while anything moves),
// "Réessayer" for failed channels (POST …/retry), cancel if scheduled or retract everywhere (DELETE).

import { api, ApiError } from "./api.js";
import { announce, format, h, view } from "./dom.js";
import { CATEGORIES, DELIVERY_STATUS, IN_FLIGHT, PUBLICATION_STATUS, channelName } from "./labels.js";

const POLL_MS = 1500;
const RETRACTABLE = new Set(["publishing", "published", "partially_published", "failed"]);

export async function publicationView(id) {
  let timer = null;
  let stopped = false;
  let lastStatus = null;
  const path = `/v1/publications/${encodeURIComponent(id)}`;
  const publication = await api("GET", path);

  const facts = h("p", { class: "facts" });
  const message = h("p", { role: "status", class: "hint" });
  const actions = h("div", { class: "actions" });
  const rows = h("tbody");
  const table = h(
    "table",
    {},
    h("caption", {}, "État de la diffusion par canal"),
    h("thead", {}, h("tr", {}, ["Canal", "État", "Détail", "Action"].map((title) => h("th", { scope: "col" }, title)))),
    rows,
  );

  async function act(method, suffix, done) {
    message.textContent = "Envoi de la demande…";
    try {
      render(await api(method, path + suffix));
      message.textContent = done;
      announce(done);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      message.textContent = error.message;
    }
    poll();
  }

  function render(shown) {
    const status = PUBLICATION_STATUS[shown.status] || shown.status;
    facts.replaceChildren(
      h("span", { class: `badge badge-${shown.status}` }, status),
      ` ${CATEGORIES[shown.category] || shown.category} · créée le ${format.date(shown.created_at)}`,
      shown.publish_at ? ` · programmée pour le ${format.date(shown.publish_at)}` : "",
      shown.cost_estimate_eur !== null ? ` · coût estimé ${format.euros(shown.cost_estimate_eur)} TTC` : "",
    );
    const buttons = [];
    if (shown.status === "scheduled") {
      buttons.push(button("Annuler la programmation", () => act("DELETE", "", "Programmation annulée.")));
    } else if (RETRACTABLE.has(shown.status)) {
      buttons.push(button("Retirer partout", () => {
        if (confirm("Retirer cette publication de tous les canaux qui le permettent ?")) act("DELETE", "", "Retrait demandé.");
      }));
    }
    actions.replaceChildren(...buttons);
    rows.replaceChildren(...Object.entries(shown.deliveries).map(([channel, delivery]) => row(channel, delivery)));
    if (lastStatus && lastStatus !== shown.status) announce(`Publication : ${status}.`);
    lastStatus = shown.status;
  }

  function row(channel, delivery) {
    const reason = delivery.error?.message;
    let detail = reason || "";
    if (delivery.status === "sent") {
      detail = delivery.url ? h("a", { href: delivery.url, target: "_blank", rel: "noopener" }, `Voir sur ${channelName(channel)}`) : "Envoyé";
    } else if (delivery.status === "retrying") {
      detail = `Nouvel essai automatique (essai ${delivery.attempts})${reason ? ` : ${reason}` : ""}`;
    }
    const retry = delivery.status === "failed"
      ? button(`Réessayer ${channelName(channel)}`, () => act("POST", "/retry", "Nouvel essai demandé."), "Réessayer")
      : "";
    return h(
      "tr",
      { "data-channel": channel, "data-status": delivery.status },
      h("th", { scope: "row" }, channelName(channel)),
      h("td", {}, h("span", { class: `badge badge-${delivery.status}` }, DELIVERY_STATUS[delivery.status] || delivery.status)),
      h("td", {}, detail),
      h("td", {}, retry),
    );
  }

  function moving(shown) {
    const statuses = Object.values(shown.deliveries).map((delivery) => delivery.status);
    const retracting = shown.status === "retracted" && statuses.includes("sent");
    return shown.status === "publishing" || retracting || statuses.some((status) => IN_FLIGHT.has(status));
  }

  function poll() {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      if (stopped) return;
      try {
        const shown = await api("GET", path);
        if (stopped) return;
        render(shown);
        if (moving(shown)) poll();
      } catch (error) {
        if (!(error instanceof ApiError)) throw error;
        message.textContent = `${error.message} Nouvel essai dans un instant.`;
        poll();
      }
    }, POLL_MS);
  }

  view(
    publication.title,
    facts,
    actions,
    message,
    h("div", { class: "scroll" }, table),
    h("p", {}, h("a", { href: "#/ecrire" }, "Écrire une autre publication"), " · ", h("a", { href: "#/publications" }, "Agenda et historique")),
  );
  render(publication);
  if (moving(publication)) poll();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

// `accessible` names the button for screen readers when its visible text is shared by several rows.
function button(accessible, onClick, visible = accessible) {
  const element = h("button", { type: "button", class: "secondary" }, visible);
  if (visible !== accessible) element.setAttribute("aria-label", accessible);
  element.addEventListener("click", onClick);
  return element;
}
