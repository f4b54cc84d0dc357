// Alertes météo: which official vigilances the commune relays, from which colour, on which channels
// (GET/PUT /v1/alerts/weather).

import { api, ApiError } from "./api.js";
import { announce, clearProblem, h, showProblem, view } from "./dom.js";
import { channelName } from "./labels.js";

const PHENOMENA = {
  "vent-violent": "Vent violent",
  "pluie-inondation": "Pluie-inondation",
  orages: "Orages",
  crues: "Crues",
  "neige-verglas": "Neige-verglas",
  canicule: "Canicule",
  "grand-froid": "Grand froid",
  avalanches: "Avalanches",
  "vagues-submersion": "Vagues-submersion",
};
const COLOURS = { orange: "Vigilance orange", red: "Vigilance rouge" };

export async function weatherView() {
  const [settings, { items }] = await Promise.all([api("GET", "/v1/alerts/weather"), api("GET", "/v1/channels")]);
  const channels = items.filter((item) => item.enabled).map((item) => item.channel);

  const check = (name, value, label, checked, fieldName) => {
    const box = h("input", { type: "checkbox", name, value, id: `f-${name}-${value}` });
    box.checked = checked;
    if (fieldName) box.dataset.field = fieldName;
    return h("div", { class: "check" }, box, h("label", { for: box.id }, label));
  };
  const radio = (value, label) => {
    const input = h("input", { type: "radio", name: "min_color", value, id: `f-min_color-${value}` });
    input.checked = settings.min_color === value;
    input.dataset.field = "min_color";
    return h("div", { class: "check" }, input, h("label", { for: input.id }, label));
  };
  const group = (legend, ...children) => h("fieldset", { class: "group" }, h("legend", {}, legend), ...children);

  const form = h("form", { class: "card", novalidate: true },
    h("div", { class: "summary", tabindex: "-1", role: "alert" }),
    check("enabled", "on", "Relayer les vigilances météo de Météo-France", settings.enabled, "enabled"),
    group("À partir de", radio("orange", "Vigilance orange et rouge"), radio("red", "Vigilance rouge seulement")),
    group("Phénomènes (aucun coché : tous)", Object.entries(PHENOMENA).map(([value, label]) =>
      check("phenomena", value, label, (settings.phenomena || []).includes(value), "phenomena"))),
    Object.entries(COLOURS).map(([colour, label]) =>
      group(`Canaux pour la ${label.toLowerCase()} (aucun coché : tous les canaux activés)`, channels.map((channel) =>
        check(`channels-${colour}`, channel, channelName(channel), (settings.channels[colour] || []).includes(channel), `channels.${colour}`)))),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Enregistrer")));

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearProblem(form);
    const checked = (name) => [...form.querySelectorAll(`input[name="${name}"]:checked`)].map((box) => box.value);
    const phenomena = checked("phenomena");
    const body = {
      enabled: form.querySelector('input[name="enabled"]').checked,
      min_color: checked("min_color")[0] || "orange",
      phenomena: phenomena.length ? phenomena : null,
      channels: Object.fromEntries(
        Object.keys(COLOURS).map((colour) => [colour, checked(`channels-${colour}`)]).filter(([, list]) => list.length),
      ),
    };
    try {
      await api("PUT", "/v1/alerts/weather", { body });
      announce("Réglages des alertes météo enregistrés.");
      form.querySelector(".summary").replaceChildren(h("p", { class: "notice" }, "Réglages enregistrés."));
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      showProblem(form, error);
    }
  });
  view("Alertes météo", form);
}
