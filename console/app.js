// The console's entry: the key first, then one view per address after the # (no key ever in the URL).

import { api, ApiError, session } from "./api.js";
import { h, field, showProblem, view } from "./dom.js";
import { composeView } from "./compose.js";
import { publicationView } from "./publication.js";
import { historyView } from "./history.js";
import { channelsView } from "./channels.js";
import { weatherView } from "./weather.js";
import { usageView } from "./usage.js";

const ROUTES = [
  [/^#\/ecrire$/, composeView],
  [/^#\/publications\/([\w-]+)$/, publicationView],
  [/^#\/publications$/, historyView],
  [/^#\/canaux$/, channelsView],
  [/^#\/meteo$/, weatherView],
  [/^#\/consommation$/, usageView],
];

// A view may leave a cleanup (e.g. stop polling) for when the address changes.
let leave = null;

async function route() {
  leave?.();
  leave = null;
  const menu = document.getElementById("menu");
  if (!session.key()) {
    menu.hidden = true;
    loginView();
    return;
  }
  menu.hidden = false;
  const hash = location.hash || "#/ecrire";
  for (const link of menu.querySelectorAll("a")) {
    const current = hash === link.hash || hash.startsWith(`${link.hash}/`);
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const found = ROUTES.map(([pattern, render]) => [hash.match(pattern), render]).find(([match]) => match);
  if (!found) {
    location.replace("#/ecrire");
    return;
  }
  const [match, render] = found;
  try {
    leave = (await render(...match.slice(1))) || null;
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    if (error.status === 401) {
      session.close();
      route();
      return;
    }
    view("Erreur", h("p", { class: "notice notice-error", role: "alert" }, error.message));
  }
}

function loginView() {
  const key = h("input", { type: "password", name: "key", autocomplete: "off", required: true, spellcheck: "false" });
  const form = h(
    "form",
    { class: "card narrow", novalidate: true },
    h("div", { class: "summary", tabindex: "-1", role: "alert" }),
    field("Clé d'API de la commune", key, {
      hint: "Elle est gardée dans cet onglet seulement et oubliée à sa fermeture.",
    }),
    h("button", { type: "submit", class: "primary" }, "Se connecter"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const typed = key.value.trim();
    try {
      if (!typed) throw new ApiError(422, { title: "Clé manquante", errors: [{ field: "key", message: "Saisissez la clé d'API." }] });
      await api("GET", "/v1/channels", { key: typed });
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      const errors = error.errors.length ? error.errors : [{ field: "key", message: error.message }];
      showProblem(form, new ApiError(error.status, { ...error.problem, errors }));
      return;
    }
    session.open(typed);
    history.replaceState(null, "", location.hash || "#/ecrire");
    route();
  });
  view("Se connecter", form);
}

document.getElementById("logout").addEventListener("click", () => {
  session.close();
  history.replaceState(null, "", location.pathname);
  route();
});
// The skip link moves the focus without touching the address (the views live after the #).
document.querySelector(".skip").addEventListener("click", (event) => {
  event.preventDefault();
  document.getElementById("main").focus();
});
window.addEventListener("hashchange", route);
route();
