// Writes made without a connection wait in IndexedDB and are replayed, in order, with the same
// Idempotency-Key and the exact same body bytes (a multipart photo included), so a write that
// did reach the server before the connection dropped acts once.
import { ApiError, request } from './api';

export interface Pending {
  id?: number;
  path: string;
  method: string;
  contentType: string;
  body: ArrayBuffer;
  key: string;
  label: string;
}

const DB = 'gridloop-console';
const STORE = 'writes';

function open(): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE, { keyPath: 'id', autoIncrement: true });
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function tx<T>(mode: IDBTransactionMode, f: (s: IDBObjectStore) => IDBRequest<T>): Promise<T> {
  const db = await open();
  return new Promise((resolve, reject) => {
    const t = db.transaction(STORE, mode);
    const req = f(t.objectStore(STORE));
    t.oncomplete = () => { db.close(); resolve(req.result); };
    t.onerror = () => { db.close(); reject(t.error); };
  });
}

const listeners = new Set<() => void>();
export function onQueue(f: () => void): () => void {
  listeners.add(f);
  return () => listeners.delete(f);
}
const changed = () => listeners.forEach((f) => f());

export const pending = (): Promise<Pending[]> => tx('readonly', (s) => s.getAll() as IDBRequest<Pending[]>);

export function newKey(): string {
  const b = crypto.getRandomValues(new Uint8Array(16)); // randomUUID needs a secure context
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

export interface Outcome {
  queued: boolean;
  response?: Response;
}

/** Send a write now; if the network is down, keep it for later. HTTP errors are thrown, not queued. */
export async function write(w: Omit<Pending, 'id'>): Promise<Outcome> {
  try {
    return { queued: false, response: await send(w) };
  } catch (e) {
    if (e instanceof ApiError) throw e;
    await tx('readwrite', (s) => s.add(w));
    changed();
    return { queued: true };
  }
}

function send(w: Omit<Pending, 'id'>): Promise<Response> {
  return request(w.path, {
    method: w.method, body: w.body, headers: { 'Content-Type': w.contentType, 'Idempotency-Key': w.key },
  });
}

let replaying = false;
export const failures: string[] = [];

/** Replay what waits, oldest first; stop at the first network failure. A refused write is dropped
 *  (kept in `failures` to show), since sending it again would be refused again. */
export async function replay(): Promise<void> {
  if (replaying) return;
  replaying = true;
  try {
    for (const w of await pending()) {
      try {
        await send(w);
      } catch (e) {
        if (!(e instanceof ApiError)) return;
        failures.push(`${w.label}: ${e.message}`);
      }
      await tx('readwrite', (s) => s.delete(w.id!));
      changed();
    }
  } finally {
    replaying = false;
  }
}

export function jsonWrite(path: string, json: unknown, label: string, key = newKey()): Omit<Pending, 'id'> {
  return { path, method: 'POST', contentType: 'application/json', key, label,
           body: new TextEncoder().encode(JSON.stringify(json)).buffer as ArrayBuffer };
}

export interface FilePart { field: string; blob: Blob; name: string }

/** A multipart body built byte by byte (form fields, then files), so that a retry resends exactly these bytes. */
export async function formWrite(path: string, fields: Record<string, string>, files: FilePart[], label: string,
                                key = newKey()): Promise<Omit<Pending, 'id'>> {
  const boundary = `gridloop-${newKey()}`;
  const enc = new TextEncoder();
  const chunks: Uint8Array[] = [];
  for (const [name, value] of Object.entries(fields)) {
    chunks.push(enc.encode(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`));
  }
  for (const f of files) {
    chunks.push(enc.encode(`--${boundary}\r\nContent-Disposition: form-data; name="${f.field}"; filename="${f.name}"\r\n`
      + `Content-Type: ${f.blob.type}\r\n\r\n`));
    chunks.push(new Uint8Array(await f.blob.arrayBuffer()));
    chunks.push(enc.encode('\r\n'));
  }
  chunks.push(enc.encode(`--${boundary}--\r\n`));
  const body = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    body.set(c, at);
    at += c.length;
  }
  return { path, method: 'POST', contentType: `multipart/form-data; boundary=${boundary}`, key, label,
           body: body.buffer };
}

export function photoWrite(path: string, photo: Blob, name: string, label: string): Promise<Omit<Pending, 'id'>> {
  return formWrite(path, {}, [{ field: 'file', blob: photo, name }], label);
}
