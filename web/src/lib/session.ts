// Who is signed in. The session itself is an HttpOnly cookie the page cannot read; the page keeps only the account,
// the CSRF token and the expiry, in memory. A reload asks the server (GET /api/v1/auth/session).
import { derived, writable } from "svelte/store";
import { errorOf, setCsrfToken, type components } from "./api/client";

export type Role = components["schemas"]["Role"];
export type Account = components["schemas"]["UserOut"];

export interface Session {
  user: Account;
  csrf_token: string;
  expires_at: string;
}

export const session = writable<Session | null>(null);
/** Why the last session ended, shown on the sign-in form ("expired", "signed out"). */
export const endedBecause = writable<string | null>(null);
export const roles = derived(session, (current) => new Set<Role>(current?.user.roles ?? []));

export function hasAnyRole(held: Set<Role>, wanted: readonly Role[] | undefined): boolean {
  if (!wanted || wanted.length === 0) return true;
  return wanted.some((role) => held.has(role));
}

function adopt(value: Session | null): Session | null {
  setCsrfToken(value?.csrf_token ?? null);
  session.set(value);
  return value;
}

export async function restoreSession(): Promise<Session | null> {
  const response = await fetch("/api/v1/auth/session", { credentials: "same-origin" });
  if (!response.ok) return adopt(null);
  return adopt((await response.json()) as Session);
}

export class SignInError extends Error {
  constructor(
    message: string,
    readonly field: string | null,
    readonly code: string,
  ) {
    super(message);
  }
}

export async function signIn(username: string, password: string): Promise<Session> {
  const response = await fetch("/api/v1/auth/session", {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ username, password }),
  });
  let body: unknown = null;
  try {
    body = await response.json();
  } catch {
    /* not JSON */
  }
  if (!response.ok) {
    const error = errorOf(body, response);
    throw new SignInError(error.message, error.field ?? null, error.code);
  }
  endedBecause.set(null);
  return adopt(body as Session) as Session;
}

export async function signOut(): Promise<void> {
  let token: string | null = null;
  session.update((current) => {
    token = current?.csrf_token ?? null;
    return current;
  });
  await fetch("/api/v1/auth/session", {
    method: "DELETE",
    credentials: "same-origin",
    headers: token ? { "X-CSRF-Token": token } : {},
  }).catch(() => undefined);
  endedBecause.set("signedOut");
  adopt(null);
}

export function sessionEnded(reason: string): void {
  endedBecause.set(reason);
  adopt(null);
}
