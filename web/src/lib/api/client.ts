// The console's one way to the API: a typed openapi-fetch client (types generated from the OpenAPI document).
// Browser sessions are an HttpOnly, SameSite=Strict cookie set by POST /api/v1/auth/session; unsafe requests carry
// the session's CSRF token in X-CSRF-Token. No token is ever kept in storage or put in a URL.
import createClient, { type Middleware } from "openapi-fetch";
import type { paths } from "./schema";

export type { paths, components } from "./schema";

/** The error body every 4xx/5xx carries (tocsin/errors.py). */
export interface ErrorBody {
  error: { code: string; message: string; field?: string | null };
}

let csrfToken: string | null = null;
const unauthorisedListeners = new Set<() => void>();

export function setCsrfToken(token: string | null): void {
  csrfToken = token;
}

/** Called when the API answers 401 to a signed-in page: the session ended (expired, signed out elsewhere). */
export function onUnauthorised(listener: () => void): () => void {
  unauthorisedListeners.add(listener);
  return () => unauthorisedListeners.delete(listener);
}

const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);

export const sessionMiddleware: Middleware = {
  onRequest({ request }) {
    if (csrfToken !== null && UNSAFE.has(request.method)) request.headers.set("X-CSRF-Token", csrfToken);
    return request;
  },
  onResponse({ request, response }) {
    const signingIn = new URL(request.url).pathname === "/api/v1/auth/session";
    if (response.status === 401 && csrfToken !== null && !signingIn) {
      for (const listener of unauthorisedListeners) listener();
    }
    return response;
  },
};

export const api = createClient<paths>({ baseUrl: "", credentials: "same-origin" });
api.use(sessionMiddleware);

/** The server's error, or a readable stand-in when the body is not ours (network down, proxy page). */
export function errorOf(error: unknown, response?: Response): ErrorBody["error"] {
  if (typeof error === "object" && error !== null && "error" in error) {
    const inner = (error as { error: unknown }).error;
    if (typeof inner === "object" && inner !== null && "message" in inner && "code" in inner) {
      return inner as ErrorBody["error"];
    }
  }
  const status = response ? `${response.status} ${response.statusText}` : "no answer";
  return { code: "unexpected", message: `the server could not be reached or answered ${status}`, field: null };
}

/**
 * Maps the server's `field` (e.g. `body.info.0.headline`, `info[0].headline`) to the name a form uses
 * (`info.0.headline`), so the form can show the message beside that input and focus it.
 */
export function fieldPath(field: string | null | undefined): string | null {
  if (!field) return null;
  return field
    .replace(/^body\./, "")
    .replace(/\[(\d+)\]/g, ".$1")
    .replace(/^\./, "");
}

/** A file download through the API (cookies and CSRF as usual), saved under the server's file name. */
export async function download(path: string, fallbackName: string): Promise<void> {
  const response = await fetch(path, { credentials: "same-origin" });
  if (!response.ok) {
    let body: unknown = null;
    try {
      body = await response.json();
    } catch {
      /* not JSON */
    }
    throw new Error(errorOf(body, response).message);
  }
  const disposition = response.headers.get("content-disposition") ?? "";
  const match = /filename="?([^";]+)"?/.exec(disposition);
  const url = URL.createObjectURL(await response.blob());
  const link = document.createElement("a");
  link.href = url;
  link.download = match?.[1] ?? fallbackName;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
