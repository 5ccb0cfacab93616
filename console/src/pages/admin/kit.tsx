// What every administration page shares: loading a resource, a labelled field that shows its
// errors, and a submit that puts a refused request's field errors next to their fields.
import { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, ApiError, Call } from '../../api';
import { fieldMessages } from '../../errors_i18n';
import { ta } from './strings';

export type Errors = Record<string, string[]>;

/** marshmallow's {name: [messages]} (nested for list items: "第 2 项（date）：…") as text per top-level field. */
export function flat(fields: Record<string, unknown>): Errors {
  const out: Errors = {};
  for (const [k, v] of Object.entries(fields)) out[k] = fieldMessages(v);
  return out;
}

/** GET `path` (again on `reload`). `data` is the last answer, kept while another path loads so a list does
 *  not flash; `current` says it answers the path asked now (a form that edits what it shows must wait for
 *  that). An answer to a path no longer asked is dropped, so a slow earlier request cannot overwrite a later one. */
export function useLoad<T>(path: string | null, deps: unknown[] = []) {
  const [got, setGot] = useState<{ key: string; data: T | null; error: string } | null>(null);
  const [n, setN] = useState(0);
  const key = JSON.stringify([path, ...deps]);
  useEffect(() => {
    if (!path) return undefined;
    let asked = true;
    api<T>(path).then((data) => { if (asked) setGot({ key, data, error: '' }); })
      .catch((e) => { if (asked) setGot({ key, data: null, error: e.message }); });
    return () => { asked = false; };
  }, [path, n, ...deps]);
  const current = got !== null && got.key === key;
  return { data: got ? got.data : null, error: current ? got.error : '', current, reload: () => setN((x) => x + 1) };
}

/** One form's submission: busy while in flight (a double click sends once), errors by field. */
export function useSubmit() {
  const [busy, setBusy] = useState(false);
  const [errors, setErrors] = useState<Errors>({});
  const [nested, setNested] = useState<Record<string, any>>({});  // the refusal's fields as sent (nested for items)
  const [problem, setProblem] = useState('');
  const root = useRef<HTMLFormElement>(null);
  const inFlight = useRef(false);
  async function send<T = any>(path: string, call: Call): Promise<T | undefined> {
    if (inFlight.current) return undefined;
    inFlight.current = true;
    setBusy(true); setErrors({}); setNested({}); setProblem('');
    try {
      return await api<T>(path, call);
    } catch (err) {
      if (err instanceof ApiError) {
        const fe = flat(err.fields);
        setErrors(fe);
        setNested(err.fields);
        setProblem(err.message);
        setTimeout(() => root.current?.querySelector<HTMLElement>('[aria-invalid="true"]')?.focus(), 0);
      } else setProblem(String((err as Error).message || err));
      return undefined;
    } finally {
      inFlight.current = false;
      setBusy(false);
    }
  }
  return { busy, errors, nested, problem, root, send, setProblem };
}

/** A labelled control; `name` is the API's field name, so a 422 about it shows here. */
export function Field(p: { id: string; label: string; name?: string; errors?: Errors; hint?: string;
                           children: (a: Record<string, unknown>) => ComponentChildren }) {
  const msgs = p.errors?.[p.name || p.id];
  const invalid = msgs && msgs.length ? true : undefined;
  const errId = `${p.id}-err`;
  return (
    <div class="field">
      <label for={p.id}>{p.label}</label>
      {p.children({ id: p.id, name: p.name || p.id, 'aria-invalid': invalid,
                    'aria-describedby': invalid ? errId : undefined })}
      {p.hint && <p class="hint">{p.hint}</p>}
      {invalid && <p class="field-error" id={errId}>{msgs!.join(' ')}</p>}
    </div>
  );
}

/** The message of a refusal, and the fields it names that have no control on the form. */
export function Problem(p: { problem: string; errors: Errors; shown: string[] }) {
  if (!p.problem) return null;
  const named = Object.keys(p.errors);
  const elsewhere = Object.entries(p.errors).filter(([k]) => !p.shown.includes(k));
  const head = named.length && !elsewhere.length ? ta('fixErrors') : p.problem;
  return <p class="error" role="alert">{[head, ...elsewhere.map(([k, m]) => `${k}: ${m.join(' ')}`)].join(' — ')}</p>;
}

export function value(e: Event): string {
  return (e.target as HTMLInputElement).value;
}

export function Loading(p: { error: string }) {
  return <p role="status" class={p.error ? 'error' : undefined}>{p.error || ta('loading')}</p>;
}
