// Canaux: each channel's settings and credentials (PUT /v1/channels/{channel}; credentials are write-only:
// never shown, left empty to keep), a test of the credentials (POST …/test) and what needs reconnecting.

import { api, ApiError } from "./api.js";
import { announce, clearProblem, field, h, showProblem, view } from "./dom.js";
import { channelName } from "./labels.js";

// ARCHITECTURE.md §5: what each channel needs.
const FIELDS = {
  webhook: { settings: ["url"], credentials: ["secret"] },
  mastodon: { settings: ["instance_url"], credentials: ["access_token"] },
  facebook: { settings: ["page_id"], credentials: ["page_access_token"] },
  instagram: { settings: ["ig_user_id"], credentials: ["access_token"] },
  x: { settings: [], credentials: ["consumer_key", "consumer_secret", "access_token", "access_token_secret"] },
  bluesky: { settings: ["handle", "pds_url"], credentials: ["app_password"] },
  wordpress: { settings: ["site_url", "username"], credentials: ["application_password"] },
  push: { settings: ["project_id"], credentials: ["service_account_json"] },
  webpush: { settings: ["vapid_subject"], credentials: ["vapid_private_key"] },
  sms: { settings: ["sender_id", "allow_gsm7_shaping"], credentials: [] },
  email: { settings: ["from_address", "reply_to"], credentials: [] },
  website: { settings: ["title", "site_url"], credentials: [] },
};
const FLAGS = new Set(["allow_gsm7_shaping", "allow_foreign_numbers"]);
const LABELS = {
  url: "Adresse de réception",
  secret: "Secret de signature (whsec_…)",
  instance_url: "Adresse de l'instance",
  access_token: "Jeton d'accès",
  page_id: "Identifiant de la page",
  page_access_token: "Jeton de la page",
  ig_user_id: "Identifiant du compte Instagram",
  consumer_key: "Clé de l'application (consumer key)",
  consumer_secret: "Secret de l'application (consumer secret)",
  access_token_secret: "Secret du jeton d'accès",
  handle: "Identifiant (handle)",
  pds_url: "Serveur (PDS)",
  app_password: "Mot de passe d'application",
  site_url: "Adresse du site",
  username: "Nom d'utilisateur",
  application_password: "Mot de passe d'application",
  project_id: "Projet Firebase",
  service_account_json: "Compte de service (JSON)",
  vapid_subject: "Contact VAPID (mailto: ou https:)",
  vapid_private_key: "Clé privée VAPID",
  sender_id: "Nom de l'expéditeur",
  allow_gsm7_shaping: "Adapter les caractères au GSM-7 (SMS moins chers)",
  allow_foreign_numbers: "Accepter les numéros étrangers",
  max_price_per_part: "Prix maximal par partie de SMS (€)",
  from_address: "Adresse d'expédition",
  reply_to: "Adresse de réponse",
  title: "Titre du fil",
};

export async function channelsView() {
  const { items, available } = await api("GET", "/v1/channels");
  const byName = Object.fromEntries(items.map((item) => [item.channel, item]));
  const names = [...new Set([...items.map((item) => item.channel), ...available])];
  view(
    "Canaux",
    h("p", {}, "Les identifiants ne sont jamais réaffichés : laissez un champ d'identifiant vide pour garder celui qui est enregistré."),
    h("div", { class: "cards" }, names.map((name) => channelCard(name, byName[name]))),
  );
}

function channelCard(name, item) {
  const known = FIELDS[name] || { settings: [], credentials: [] };
  const settingNames = [...new Set([...known.settings, ...Object.keys(item?.settings || {})])];
  const enabled = h("input", { type: "checkbox", name: "enabled", id: `f-${name}-enabled` });
  enabled.checked = item ? item.enabled : true;
  enabled.dataset.field = "enabled";
  const settings = settingNames.map((key) => {
    const value = item?.settings?.[key];
    const flag = FLAGS.has(key) || typeof value === "boolean";
    const control = flag
      ? h("input", { type: "checkbox", name: key })
      : h("input", { type: "text", name: key, spellcheck: "false" });
    if (flag) control.checked = Boolean(value);
    else control.value = value ?? "";
    control.id = `f-${name}-settings-${key}`;
    control.dataset.field = `settings.${key}`;
    const label = h("label", { for: control.id }, LABELS[key] || key);
    return { key, flag, control, element: h("div", { class: flag ? "check" : "field" }, flag ? [control, label] : [label, control]) };
  });
  const credentials = known.credentials.map((key) => {
    const control = h("input", {
      type: "password", name: key, autocomplete: "off",
      placeholder: item?.credentials_set ? "enregistré (vide : inchangé)" : "",
    });
    const wrapper = field(LABELS[key] || key, control, { field: `credentials.${key}` });
    control.id = `f-${name}-credentials-${key}`;
    wrapper.querySelector("label").htmlFor = control.id;
    return { key, control, element: wrapper };
  });
  const state = h("p", { class: "hint", role: "status" },
    item ? (item.enabled ? "Activé" : "Désactivé") : "Non configuré",
    item?.credentials_set ? " · identifiants enregistrés" : "");
  const reconnect = item?.needs_reconnect
    ? h("p", { class: "notice notice-warn" }, `À reconnecter${item.reconnect_reason ? ` : ${item.reconnect_reason}` : "."}`)
    : null;
  const save = h("button", { type: "submit", class: "primary" }, "Enregistrer");
  const test = h("button", { type: "button", class: "secondary", "aria-label": `Tester ${channelName(name)}` }, "Tester");
  const testResult = h("p", { role: "status" });
  const form = h("form", { class: "card", novalidate: true, "aria-labelledby": `channel-${name}`, "data-channel": name },
    h("h2", { id: `channel-${name}` }, channelName(name)),
    state, reconnect,
    h("div", { class: "summary", tabindex: "-1", role: "alert" }),
    h("div", { class: "check" }, enabled, h("label", { for: enabled.id }, "Activé")),
    settings.map(({ element }) => element),
    credentials.map(({ element }) => element),
    h("div", { class: "actions" }, save, item ? test : null),
    testResult);

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearProblem(form);
    const body = { enabled: enabled.checked, settings: {} };
    for (const { key, flag, control } of settings) {
      if (flag) body.settings[key] = control.checked;
      else if (control.value.trim()) body.settings[key] = control.value.trim();
    }
    const typed = credentials.filter(({ control }) => control.value);
    if (typed.length) body.credentials = Object.fromEntries(typed.map(({ key, control }) => [key, control.value]));
    save.disabled = true;
    try {
      const saved = await api("PUT", `/v1/channels/${name}`, { body });
      form.replaceWith(channelCard(name, saved));
      announce(`${channelName(name)} enregistré.`);
      document.querySelector(`form[data-channel="${name}"] h2`)?.setAttribute("tabindex", "-1");
      document.querySelector(`form[data-channel="${name}"] h2`)?.focus();
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      showProblem(form, error);
    } finally {
      save.disabled = false;
    }
  });
  test.addEventListener("click", async () => {
    testResult.textContent = "Test en cours…";
    try {
      const check = await api("POST", `/v1/channels/${name}/test`);
      testResult.textContent = `${check.ok ? "Fonctionne" : "Ne fonctionne pas"} : ${check.message}${check.account ? ` (${check.account})` : ""}`;
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      testResult.textContent = `Ne fonctionne pas : ${error.message}`;
    }
  });
  return form;
}
