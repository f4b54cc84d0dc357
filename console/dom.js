// Small DOM helpers: build elements, show API problems next to their fields, format for France.

export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name in element && typeof value !== "string") element[name] = value;
    else element.setAttribute(name, value === true ? "" : value);
  }
  element.append(...children.flat().filter((child) => child !== null && child !== undefined && child !== false));
  return element;
}

// A labelled form control whose errors land next to it: the API's `errors[].field` is `field`.
export function field(label, control, { field: name = control.name, hint } = {}) {
  const id = fieldId(name);
  control.id = id;
  control.dataset.field = name;
  const hintElement = hint ? h("p", { class: "hint", id: `${id}-hint` }, hint) : null;
  if (hintElement) control.setAttribute("aria-describedby", hintElement.id);
  const labelElement = h("label", { for: id }, label);
  return h("div", { class: "field" }, labelElement, hintElement, control);
}

export function fieldId(name) {
  return `f-${name.replace(/[^\w]+/g, "-").replace(/-+$/, "")}`;
}

export function clearProblem(form) {
  form.querySelectorAll(".error").forEach((element) => element.remove());
  form.querySelectorAll("[aria-invalid]").forEach((control) => {
    control.removeAttribute("aria-invalid");
    const kept = (control.getAttribute("aria-describedby") || "").split(" ").filter((id) => !id.endsWith("-error"));
    if (kept.length) control.setAttribute("aria-describedby", kept.join(" "));
    else control.removeAttribute("aria-describedby");
  });
  form.querySelector(".summary")?.replaceChildren();
}

// Each error next to its field (aria-describedby), all of them in the form's summary, which gets the focus.
export function showProblem(form, error) {
  clearProblem(form);
  const summary = form.querySelector(".summary");
  const items = error.errors.map(({ field: name, message }) => {
    const control = controlFor(form, name);
    if (!control) return h("li", {}, message);
    const errorId = `${control.id}-error`;
    const existing = document.getElementById(errorId);
    if (existing) existing.append(" ", message);
    else control.insertAdjacentElement("afterend", h("p", { class: "error", id: errorId }, message));
    control.setAttribute("aria-invalid", "true");
    const describedBy = new Set((control.getAttribute("aria-describedby") || "").split(" ").filter(Boolean));
    describedBy.add(errorId);
    control.setAttribute("aria-describedby", [...describedBy].join(" "));
    const grouped = ["checkbox", "radio"].includes(control.type) && control.closest("fieldset");
    const label = (grouped ? grouped.querySelector("legend") : form.querySelector(`label[for="${control.id}"]`))?.textContent;
    const text = label ? `${label} : ${message}` : message;
    return h("li", {}, h("a", { href: `#${control.id}`, onclick: focusField(control) }, text));
  });
  summary.replaceChildren(
    h("h2", {}, error.problem.title || "Erreur"),
    error.problem.detail ? h("p", {}, error.problem.detail) : null,
    items.length ? h("ul", {}, items) : null,
  );
  summary.focus();
}

// `media[0].alt` → its control; else the closest parent that has one (`overrides.x.text` → `overrides.x`);
// a group (`event`, `channels`) → its first control.
function controlFor(form, name) {
  for (let path = name; path; path = path.replace(/(\.[^.[\]]+|\[\d+\])$/, "")) {
    const quoted = JSON.stringify(path);
    const control =
      form.querySelector(`[data-field=${quoted}]`) ||
      form.querySelector(`[data-field^=${JSON.stringify(`${path}.`)}], [data-field^=${JSON.stringify(`${path}[`)}]`);
    if (control) return control;
    if (!/[.[]/.test(path)) break;
  }
  return null;
}

function focusField(control) {
  return (event) => {
    event.preventDefault();
    control.focus();
  };
}

export function announce(text) {
  const region = document.getElementById("announce");
  region.textContent = "";
  setTimeout(() => (region.textContent = text), 50);
}

const PARIS = "Europe/Paris";
const dateTime = new Intl.DateTimeFormat("fr-FR", { dateStyle: "short", timeStyle: "short", timeZone: PARIS });
const euros = new Intl.NumberFormat("fr-FR", { style: "currency", currency: "EUR", maximumFractionDigits: 3 });

export const format = {
  date: (iso) => (iso ? dateTime.format(new Date(iso)) : ""),
  euros: (value) => euros.format(value ?? 0),
  // An ISO instant as the value of an <input type="datetime-local"> on Paris time.
  localInput(iso) {
    if (!iso) return "";
    const parts = Object.fromEntries(
      new Intl.DateTimeFormat("fr-FR", {
        timeZone: PARIS, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
        hourCycle: "h23",
      }).formatToParts(new Date(iso)).map((part) => [part.type, part.value]),
    );
    return `${parts.year}-${parts.month}-${parts.day}T${parts.hour}:${parts.minute}`;
  },
};

// The page's heading gets the focus on every view change (not on the first, where Tab meets the skip link
// first), so screen readers start there.
let first = true;
export function view(title, ...children) {
  const heading = h("h1", { tabindex: "-1" }, title);
  document.title = `${title} · Crieur`;
  const main = document.getElementById("main");
  main.replaceChildren(heading, ...children);
  if (!first) heading.focus();
  first = false;
  return main;
}
