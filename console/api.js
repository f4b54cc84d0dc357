// The Crieur API on this same origin, with the commune's key kept in sessionStorage (never in the URL).

const KEY = "crieur.key";

export class ApiError extends Error {
  // problem: RFC 9457 body {title, detail, errors: [{field, message}]}; status 0 when the network failed.
  constructor(status, problem) {
    super(problem.detail || problem.title || "Erreur");
    this.status = status;
    this.problem = problem;
  }
  get errors() {
    return this.problem.errors || [];
  }
}

export const session = {
  key: () => sessionStorage.getItem(KEY),
  open: (key) => sessionStorage.setItem(KEY, key),
  close: () => sessionStorage.removeItem(KEY),
};

export async function api(method, path, { body, headers = {}, key = session.key() } = {}) {
  const init = { method, headers: { Accept: "application/json", ...headers } };
  if (key) init.headers.Authorization = `Bearer ${key}`;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, {
      title: "Connexion perdue",
      detail: "Le serveur ne répond pas : vérifiez la connexion puis réessayez. Rien de ce que vous avez écrit n'est perdu.",
    });
  }
  const text = await response.text();
  const data = text ? parseJson(text) : null;
  if (response.ok) return data;
  if (response.status >= 500) {
    throw new ApiError(response.status, {
      title: "Service indisponible",
      detail: "Crieur n'a pas pu traiter la demande : réessayez dans un instant. Rien de ce que vous avez écrit n'est perdu.",
    });
  }
  if (response.status === 401 || response.status === 403) {
    throw new ApiError(response.status, {
      title: "Clé refusée",
      detail: "Cette clé d'API n'est pas reconnue : vérifiez-la ou demandez-en une nouvelle.",
      ...(data || {}),
    });
  }
  throw new ApiError(response.status, data || { title: "Erreur", detail: `Réponse ${response.status}.` });
}

function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return { detail: text };
  }
}
