// The platform's API at the same origin. The token lives in sessionStorage (gone with the tab, never in
// localStorage); its claims (agency, roles, area) only choose which pages to offer: the API decides what is shown.

const TOKEN = "huhang.token";

function decodeClaims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const bytes = Uint8Array.from(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), "=")), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return null;
  }
}

export const session = {
  get token() {
    return sessionStorage.getItem(TOKEN);
  },
  get claims() {
    const token = this.token;
    const claims = token ? decodeClaims(token) : null;
    if (!claims || (claims.exp && claims.exp * 1000 < Date.now())) return null;
    return claims;
  },
  has(role) {
    const claims = this.claims;
    return Boolean(claims && (claims.roles || []).includes(role));
  },
  set(token) {
    sessionStorage.setItem(TOKEN, token);
  },
  clear() {
    sessionStorage.removeItem(TOKEN);
  },
};

export class Unauthorized extends Error {}

// POST /v1/oauth/token with the password grant (people). Answers {ok, error}.
export async function signIn(username, password) {
  const body = new URLSearchParams({ grant_type: "password", username, password });
  const answer = await fetch("/v1/oauth/token", {
    method: "POST", body, headers: { "content-type": "application/x-www-form-urlencoded" },
  });
  const json = await answer.json().catch(() => ({}));
  if (!answer.ok) return { ok: false, status: answer.status, error: json.error || "invalid_grant" };
  session.set(json.access_token);
  return { ok: true };
}

// One API call: {ok, status, body, etag, replayed}. A 401 signs out (the token lapsed) and throws Unauthorized.
export async function api(path, { method = "GET", body, headers = {} } = {}) {
  const token = session.token;
  const sent = { ...headers, accept: "application/json, application/problem+json" };
  if (token) sent.authorization = `Bearer ${token}`;
  if (body !== undefined) sent["content-type"] = "application/json";
  const answer = await fetch(path, { method, headers: sent, body: body === undefined ? undefined : JSON.stringify(body) });
  const json = await answer.json().catch(() => null);
  if (answer.status === 401) {
    session.clear();
    throw new Unauthorized(path);
  }
  return {
    ok: answer.ok, status: answer.status, body: json, etag: answer.headers.get("etag"),
    replayed: answer.headers.get("idempotent-replayed") === "true",
  };
}

export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (Array.isArray(value)) value.forEach((v) => search.append(name, v));
    else if (value !== undefined && value !== null && value !== "" && value !== false) search.append(name, value);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}
