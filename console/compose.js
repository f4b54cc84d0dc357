// Écrire: the form, the side-by-side preview per channel (POST /v1/previews) and publish / schedule in one
// click. The draft lives in localStorage (a lost connection or a 5xx loses nothing) with its own
// Idempotency-Key, so a double click or a retry never publishes twice.

import { api, ApiError } from "./api.js";
import { announce, clearProblem, field, format, h, showProblem, view } from "./dom.js";
import { CATEGORIES, URGENCIES, channelName } from "./labels.js";

const DRAFT = "crieur.draft";

function newDraft() {
  return {
    key: crypto.randomUUID(),
    title: "",
    body: "",
    category: "news",
    urgency: "normal",
    links: [],
    media: [],
    event: { starts_at: "", ends_at: "", location: "" },
    channels: null, // null: every enabled channel
    overrides: {},
    when: "now",
    publish_at: "",
  };
}

const drafts = {
  load() {
    try {
      const saved = JSON.parse(localStorage.getItem(DRAFT));
      return saved && saved.key ? { ...newDraft(), ...saved } : null;
    } catch {
      return null;
    }
  },
  save: (draft) => localStorage.setItem(DRAFT, JSON.stringify(draft)),
  clear: () => localStorage.removeItem(DRAFT),
};

const filled = (value) => typeof value === "string" && value.trim() !== "";

// The API request for a draft: empty optional rows and fields left out.
function request(draft, enabled) {
  const channels = draft.channels ?? enabled;
  const body = {
    title: draft.title,
    body: draft.body,
    category: draft.category,
    urgency: draft.urgency,
    links: draft.links
      .filter((link) => filled(link.url) || filled(link.label))
      .map((link) => (filled(link.label) ? { url: link.url, label: link.label } : { url: link.url })),
    media: draft.media
      .filter((medium) => filled(medium.url) || filled(medium.alt))
      .map(({ url, alt, kind }) => ({ url, alt, kind })),
    channels,
    overrides: Object.fromEntries(
      Object.entries(draft.overrides)
        .filter(([channel, text]) => channels.includes(channel) && filled(text))
        .map(([channel, text]) => [channel, { text }]),
    ),
  };
  if (draft.category === "event") {
    body.event = Object.fromEntries(Object.entries(draft.event).filter(([, value]) => filled(value)));
  }
  if (draft.when === "later") body.publish_at = draft.publish_at;
  return body;
}

export async function composeView() {
  const restored = drafts.load();
  const draft = restored || newDraft();
  const { items } = await api("GET", "/v1/channels");
  const configured = items.filter((item) => item.enabled);
  const enabled = configured.map((item) => item.channel);
  let previewTimer = null;
  let publishing = false;

  const save = () => {
    drafts.save(draft);
    schedulePreview();
  };
  // A control bound to one property of the draft (or of a row of it).
  const bind = (control, target, property) => {
    control.value = target[property] ?? "";
    control.name ||= property;
    control.addEventListener("input", () => {
      target[property] = control.value;
      save();
    });
    return control;
  };
  const text = (target, property, attrs = {}) => bind(h("input", { type: "text", ...attrs }), target, property);
  const select = (target, property, options) =>
    bind(h("select", {}, Object.entries(options).map(([value, label]) => h("option", { value }, label))), target, property);

  // --- the form ------------------------------------------------------------------------------------
  const summary = h("div", { class: "summary", tabindex: "-1", role: "alert" });
  const eventFields = h(
    "fieldset",
    { class: "group" },
    h("legend", {}, "L'événement"),
    field("Début (heure de Paris)", bind(h("input", { type: "datetime-local" }), draft.event, "starts_at"), { field: "event.starts_at" }),
    field("Fin (facultatif)", bind(h("input", { type: "datetime-local" }), draft.event, "ends_at"), { field: "event.ends_at" }),
    field("Lieu (facultatif)", text(draft.event, "location", { maxlength: "300" }), { field: "event.location" }),
  );
  const showEvent = () => (eventFields.hidden = draft.category !== "event");
  const category = select(draft, "category", CATEGORIES);
  category.addEventListener("change", showEvent);

  const rows = (list, kind) => {
    const container = h("div", { class: "rows" });
    const render = () =>
      container.replaceChildren(
        ...list.map((row, index) => {
          const what = kind === "links" ? `le lien ${index + 1}` : `le média ${index + 1}`;
          const remove = h("button", { type: "button", class: "secondary", "aria-label": `Retirer ${what}` }, "Retirer");
          remove.addEventListener("click", () => {
            list.splice(index, 1);
            save();
            render();
            addButton.focus();
          });
          const fields =
            kind === "links"
              ? [
                  field(`Adresse du lien ${index + 1}`, text(row, "url", { type: "url", inputmode: "url", name: `links[${index}].url` })),
                  field(`Texte du lien ${index + 1} (facultatif)`, text(row, "label", { name: `links[${index}].label`, maxlength: "200" })),
                ]
              : [
                  field(`Adresse de l'image ou de la vidéo ${index + 1}`, text(row, "url", { type: "url", inputmode: "url", name: `media[${index}].url` })),
                  field(`Texte alternatif ${index + 1} (obligatoire)`, text(row, "alt", { name: `media[${index}].alt`, required: true, maxlength: "1500" }), {
                    hint: "Décrivez ce que montre l'image pour les personnes qui ne la voient pas.",
                  }),
                  field(`Type ${index + 1}`, select(row, "kind", { image: "Image", video: "Vidéo" }), { field: `media[${index}].kind` }),
                ];
          return h("fieldset", { class: "row" }, h("legend", {}, kind === "links" ? `Lien ${index + 1}` : `Média ${index + 1}`), ...fields, remove);
        }),
      );
    const addButton = h("button", { type: "button", class: "secondary" }, kind === "links" ? "Ajouter un lien" : "Ajouter une image ou une vidéo");
    addButton.addEventListener("click", () => {
      list.push(kind === "links" ? { url: "", label: "" } : { url: "", alt: "", kind: "image" });
      save();
      render();
      container.querySelector("fieldset:last-of-type input")?.focus();
    });
    render();
    return [container, addButton];
  };

  const channelBoxes = configured.map(({ channel, needs_reconnect: reconnect, reconnect_reason: reason }) => {
    const box = h("input", { type: "checkbox", name: "channels", value: channel, id: `f-channel-${channel}` });
    box.dataset.field = "channels";
    box.checked = (draft.channels ?? enabled).includes(channel);
    box.addEventListener("change", () => {
      draft.channels = channelBoxes.filter(({ box: other }) => other.checked).map(({ box: other }) => other.value);
      save();
    });
    const warning = reconnect
      ? h("span", { class: "warn" }, ` : à reconnecter${reason ? ` (${reason})` : ""}`)
      : null;
    return { box, element: h("div", { class: "check" }, box, h("label", { for: box.id }, channelName(channel), warning)) };
  });
  const channelsSet = h(
    "fieldset",
    { class: "group" },
    h("legend", {}, "Canaux"),
    configured.length
      ? channelBoxes.map(({ element }) => element)
      : h("p", {}, "Aucun canal n'est configuré : ", h("a", { href: "#/canaux" }, "configurer les canaux"), "."),
  );

  const when = ["now", "later"].map((value) => {
    const radio = h("input", { type: "radio", name: "when", value, id: `f-when-${value}` });
    radio.checked = draft.when === value;
    radio.addEventListener("change", () => {
      draft.when = value;
      drafts.save(draft);
      syncWhen();
    });
    return h("div", { class: "check" }, radio, h("label", { for: radio.id }, value === "now" ? "Maintenant" : "À une date et une heure"));
  });
  const publishAt = bind(h("input", { type: "datetime-local" }), draft, "publish_at");
  const publishAtField = field("Date et heure de publication (heure de Paris)", publishAt, { field: "publish_at" });
  const submit = h("button", { type: "submit", class: "primary" });
  const syncWhen = () => {
    publishAtField.hidden = draft.when !== "later";
    submit.textContent = draft.when === "later" ? "Programmer" : "Publier maintenant";
  };

  const discard = h("button", { type: "button", class: "secondary" }, "Effacer le brouillon");
  discard.addEventListener("click", () => {
    drafts.clear();
    composeView();
  });

  const form = h(
    "form",
    { class: "compose", novalidate: true, "aria-labelledby": "compose-title" },
    h("h2", { id: "compose-title" }, "Message"),
    summary,
    restored && filled(restored.title + restored.body) ? h("p", { class: "notice" }, "Brouillon retrouvé : vous pouvez reprendre où vous en étiez.") : null,
    field("Titre", text(draft, "title", { maxlength: "140", required: true })),
    field("Texte", bind(h("textarea", { rows: "8", required: true }), draft, "body"), { field: "body" }),
    h("div", { class: "pair" }, field("Catégorie", category), field("Urgence", select(draft, "urgency", URGENCIES))),
    eventFields,
    h("fieldset", { class: "group" }, h("legend", {}, "Liens"), ...rows(draft.links, "links")),
    h("fieldset", { class: "group" }, h("legend", {}, "Images et vidéos"), ...rows(draft.media, "media")),
    channelsSet,
    h("fieldset", { class: "group" }, h("legend", {}, "Quand publier ?"), ...when, publishAtField),
    h("div", { class: "actions" }, submit, discard),
  );
  showEvent();
  syncWhen();

  // --- the preview ---------------------------------------------------------------------------------
  const previewStatus = h("p", { class: "hint", role: "status" });
  const cards = h("div", { class: "cards" });
  const refresh = h("button", { type: "button", class: "secondary" }, "Actualiser l'aperçu");
  const preview = h(
    "section",
    { class: "preview", "aria-labelledby": "preview-title" },
    h("h2", { id: "preview-title" }, "Aperçu par canal"),
    refresh,
    previewStatus,
    cards,
  );

  async function showPreview() {
    clearTimeout(previewTimer);
    if (!filled(draft.title) || !filled(draft.body)) {
      previewStatus.textContent = "Écrivez un titre et un texte pour voir l'aperçu.";
      return;
    }
    previewStatus.textContent = "Aperçu en cours…";
    const body = request(draft, enabled);
    delete body.publish_at; // the preview does not depend on when
    try {
      const answer = await api("POST", "/v1/previews", { body });
      previewStatus.textContent = `Coût estimé : ${format.euros(answer.cost_estimate_eur)} TTC.`;
      const order = (channel) => enabled.indexOf(channel);
      const shown = Object.entries(answer.channels).sort(([a], [b]) => order(a) - order(b));
      cards.replaceChildren(...shown.map(([channel, preview]) => card(channel, preview)));
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      const details = error.errors.map(({ field: name, message }) => `${name} : ${message}`).join(" ; ");
      previewStatus.textContent = `Aperçu impossible. ${error.message}${details ? ` ${details}` : ""}`;
    }
  }

  function card(channel, shown) {
    const over = shown.limit !== null && shown.length !== null && shown.length > shown.limit;
    const override = h("textarea", { rows: "5", name: `overrides.${channel}.text` });
    const overrideField = field(`Texte pour ${channelName(channel)}`, override, { field: `overrides.${channel}.text` });
    override.value = draft.overrides[channel] || shown.text || "";
    overrideField.hidden = !(channel in draft.overrides);
    override.addEventListener("input", () => {
      draft.overrides[channel] = override.value;
      save();
    });
    const toggle = h("button", { type: "button", class: "secondary", "aria-expanded": String(!overrideField.hidden) }, `Personnaliser pour ${channelName(channel)}`);
    toggle.addEventListener("click", () => {
      overrideField.hidden = !overrideField.hidden;
      toggle.setAttribute("aria-expanded", String(!overrideField.hidden));
      if (overrideField.hidden) delete draft.overrides[channel];
      else draft.overrides[channel] = override.value;
      save();
      if (!overrideField.hidden) override.focus();
    });
    const facts = [
      shown.length !== null ? `${shown.length}${shown.limit !== null ? ` / ${shown.limit}` : ""} caractères` : null,
      shown.encoding ? `encodage ${shown.encoding}` : null,
      shown.parts ? `${shown.parts} partie${shown.parts > 1 ? "s" : ""} SMS${shown.parts_without_shaping ? ` (${shown.parts_without_shaping} sans adaptation)` : ""}` : null,
      shown.recipients !== null && shown.recipients !== undefined ? `${shown.recipients} destinataire${shown.recipients > 1 ? "s" : ""}` : null,
    ].filter(Boolean);
    return h(
      "article",
      { class: "card", "data-channel": channel },
      h("h3", {}, channelName(channel)),
      shown.skipped
        ? h("p", { class: "notice notice-warn" }, `Ne sera pas envoyé : ${shown.skipped}`)
        : h("p", { class: "text" }, shown.text ?? ""),
      shown.recipients === 0 ? h("p", { class: "notice notice-warn" }, "Aucun abonné pour l'instant : rien ne partira sur ce canal.") : null,
      facts.length ? h("p", { class: over ? "count over" : "count" }, facts.join(" · "), over ? " : trop long" : "") : null,
      shown.media.length
        ? h("ul", { class: "media" }, shown.media.map((medium) =>
            h("li", {}, medium.kept ? `Média joint : ${medium.alt}` : `Média retiré : ${medium.reason || medium.alt}`)))
        : null,
      shown.warnings.length ? h("ul", { class: "warnings" }, shown.warnings.map((warning) => h("li", {}, warning))) : null,
      shown.skipped ? null : [toggle, overrideField],
    );
  }

  function schedulePreview() {
    clearTimeout(previewTimer);
    previewTimer = setTimeout(showPreview, 800);
  }
  refresh.addEventListener("click", showPreview);

  // --- publish ------------------------------------------------------------------------------------
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (publishing) return; // the button is disabled too; the Idempotency-Key covers what slips through
    clearProblem(form);
    if (draft.when === "later" && !filled(draft.publish_at)) {
      showProblem(form, new ApiError(422, {
        title: "Date manquante",
        errors: [{ field: "publish_at", message: "Choisissez la date et l'heure de publication." }],
      }));
      return;
    }
    publishing = true;
    submit.disabled = true;
    const label = submit.textContent;
    submit.textContent = "Envoi…";
    try {
      const publication = await api("POST", "/v1/publications", {
        body: request(draft, enabled),
        headers: { "Idempotency-Key": draft.key },
      });
      drafts.clear();
      announce(draft.when === "later" ? "Publication programmée." : "Publication envoyée.");
      location.hash = `#/publications/${publication.id}`;
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      // Refused for its content: nothing was created, so the corrected draft may go with a new key.
      if (error.status >= 400 && error.status < 500 && error.status !== 409) {
        draft.key = crypto.randomUUID();
        drafts.save(draft);
      }
      showProblem(form, error);
    } finally {
      publishing = false;
      submit.disabled = false;
      submit.textContent = label;
    }
  });

  view("Écrire une publication", h("div", { class: "compose-layout" }, form, preview));
  showPreview();
  return () => clearTimeout(previewTimer);
}
