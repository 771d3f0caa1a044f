// JSON API calls from our own pages: the session cookie travels by itself, the CSRF token is
// echoed from its cookie, and a problem+json answer becomes an Error carrying its detail.
export class ApiError extends Error {
  constructor(status, body) {
    super((body && (body.detail || body.title)) || `request failed (${status})`);
    this.status = status;
    this.body = body;
  }
}

export function csrfToken() {
  const match = document.cookie.split("; ").find((c) => c.startsWith("sd_csrf="));
  return match ? decodeURIComponent(match.slice("sd_csrf=".length)) : "";
}

export async function api(method, path, body, { headers = {} } = {}) {
  const init = { method, headers: { accept: "application/json", ...headers }, credentials: "same-origin" };
  if (method !== "GET" && method !== "HEAD") init.headers["x-csrf-token"] = csrfToken();
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path.startsWith("/") ? path : `/api/v1/${path}`, init);
  if (response.status === 401) {
    location.assign(`/login?next=${encodeURIComponent(location.pathname + location.search)}`);
    throw new ApiError(401, { detail: "signed out" });
  }
  if (response.status === 204) return null;
  let data = null;
  const type = response.headers.get("content-type") || "";
  if (type.includes("json")) data = await response.json();
  else data = await response.text();
  if (!response.ok) throw new ApiError(response.status, typeof data === "object" ? data : { detail: data });
  return data;
}

// Server-rendered fragments (our own escaped HTML). DOMParser never runs scripts, and the page's
// CSP would refuse inline ones anyway.
export async function fragment(path) {
  const response = await fetch(path, { credentials: "same-origin", headers: { accept: "text/html" } });
  if (response.status === 401 || response.redirected) { location.reload(); throw new ApiError(401, null); }
  if (!response.ok) throw new ApiError(response.status, null);
  const doc = new DOMParser().parseFromString(await response.text(), "text/html");
  const out = document.createDocumentFragment();
  for (const node of Array.from(doc.body.childNodes)) out.appendChild(document.adoptNode(node));
  return out;
}

export function fileToBase64(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onerror = () => reject(reader.error);
    reader.onload = () => resolve(String(reader.result).split(",", 2)[1] || "");
    reader.readAsDataURL(file);
  });
}
