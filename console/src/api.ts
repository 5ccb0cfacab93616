// The API on the same origin, with the same bearer-token login. The tokens live in sessionStorage
// (gone with the tab); an expired access token is renewed once with the refresh token.
import { localError, localFields } from './errors_i18n';

export interface Session {
  access: string;
  refresh: string;
  username: string;
  roles: string[];
}

export interface Me {
  username: string;
  displayName: string | null;
  roles: string[];
  scope: string | null;
  tenants: string[];
  maxPhotoBytes?: number;
  map?: { tilesUrl: string | null; tilesAttribution: string | null; tilesSubdomains: string };
}

const KEY = 'gridloop.session';

export function session(): Session | null {
  try {
    return JSON.parse(sessionStorage.getItem(KEY) || 'null');
  } catch {
    return null;
  }
}

function save(s: Session | null): void {
  if (s) sessionStorage.setItem(KEY, JSON.stringify(s));
  else sessionStorage.removeItem(KEY);
}

/** A refusal; `message` and `fields` are in the reader's language (errors_i18n), `serverMessage` as sent. */
export class ApiError extends Error {
  public serverMessage: string;
  constructor(public status: number, public code: string, message: string,
              public fields: Record<string, unknown> = {}, public details: Record<string, unknown> = {}) {
    super(localError(code, message));
    this.serverMessage = message;
    this.fields = localFields(fields);
  }
}

let onLoggedOut: () => void = () => {};
export function whenLoggedOut(f: () => void): void {
  onLoggedOut = f;
}

async function tokens(path: string, body: object): Promise<Response> {
  return fetch(`/api/v1/auth/${path}`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
  });
}

export async function login(username: string, password: string): Promise<void> {
  const r = await tokens('token', { username, password });
  if (!r.ok) throw await errorOf(r);
  const b = await r.json();
  save({ access: b.access_token, refresh: b.refresh_token, username, roles: b.roles || [] });
}

function dropSession(): void {
  save(null);
  onLoggedOut();
}

/** Log out: the server ends this login's session (its tokens stop at once), the tab forgets it. */
export function logout(): void {
  const s = session();
  dropSession();
  if (s) {
    fetch('/api/v1/auth/logout', { method: 'POST', headers: { Authorization: `Bearer ${s.access}` } }).catch(() => {});
  }
}

let refreshing: Promise<boolean> | null = null;

async function refresh(): Promise<boolean> {
  const s = session();
  if (!s) return false;
  refreshing ??= (async () => {
    try {
      const r = await tokens('refresh', { refresh_token: s.refresh });
      if (!r.ok) return false;
      const b = await r.json();
      save({ ...s, access: b.access_token, refresh: b.refresh_token, roles: b.roles || s.roles });
      return true;
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

async function errorOf(r: Response): Promise<ApiError> {
  try {
    const b = await r.json();
    const e = b.error || {};
    return new ApiError(r.status, e.code || String(r.status), e.message || r.statusText, e.fields || {}, e.details || {});
  } catch {
    return new ApiError(r.status, String(r.status), r.statusText);
  }
}

export interface Call {
  method?: string;
  json?: unknown;
  body?: BodyInit;
  headers?: Record<string, string>;
}

/** A raw response from /api/v1 (renewing the token once on 401); throws ApiError for any 4xx/5xx. */
export async function request(path: string, call: Call = {}): Promise<Response> {
  const send = () => {
    const s = session();
    const headers: Record<string, string> = { ...(call.headers || {}) };
    if (s) headers.Authorization = `Bearer ${s.access}`;
    let body = call.body;
    if (call.json !== undefined) {
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(call.json);
    }
    return fetch(`/api/v1${path}`, { method: call.method || 'GET', headers, body });
  };
  let r = await send();
  if (r.status === 401 && session()) {
    if (await refresh()) r = await send();
    else {
      dropSession();
      throw await errorOf(r);
    }
  }
  if (!r.ok) throw await errorOf(r);
  return r;
}

export async function api<T = any>(path: string, call: Call = {}): Promise<T> {
  const r = await request(path, call);
  return (r.status === 204 ? null : await r.json()) as T;
}

/** A blob: URL for an authenticated image (an <img src> cannot send the bearer token). */
export async function imageUrl(path: string): Promise<string> {
  const r = await request(path);
  return URL.createObjectURL(await r.blob());
}

export function hasRole(...roles: string[]): boolean {
  const s = session();
  return !!s && s.roles.some((r) => roles.includes(r));
}
