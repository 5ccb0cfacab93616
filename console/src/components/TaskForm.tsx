// A task's form rendered from GET /task/{id}/form (JSON Schema with x- hints) and completed with
// POST /task/{id}/complete; a 422's field errors are shown next to their fields.
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, ApiError } from '../api';
import { fieldMessages } from '../errors_i18n';
import { chinaInput, fromChinaInput, label, t } from '../i18n';
import { jsonWrite, newKey, write } from '../queue';
import { holds } from '../rules';

interface FieldSchema {
  type?: string;
  format?: string;
  enum?: string[];
  title?: string;
  minimum?: number;
  maximum?: number;
  maxLength?: number;
  default?: unknown;
  'x-label'?: unknown;
  'x-labels'?: Record<string, unknown>;
  'x-widget'?: string;
  'x-reference'?: { kind: string; role?: string; [k: string]: unknown };
  'x-rules'?: { shownWhen?: string; requiredWhen?: string };
}

interface FormAnswer {
  element: string;
  name: string;
  taskId: string;
  values: Record<string, unknown>;
  schema: { properties: Record<string, FieldSchema>; required?: string[]; 'x-order'?: string[] };
}

type Errors = Record<string, string[]>;

function flatErrors(fields: Record<string, unknown>): Errors {
  const src = (fields.variables && typeof fields.variables === 'object' && !Array.isArray(fields.variables))
    ? { ...fields, ...(fields.variables as Record<string, unknown>) } : fields;
  const out: Errors = {};
  for (const [k, v] of Object.entries(src)) {
    if (k === 'variables' && typeof v === 'object' && !Array.isArray(v)) continue;
    out[k] = fieldMessages(v);
  }
  return out;
}

function toInput(s: FieldSchema, v: unknown): string {
  if (v === undefined || v === null) return '';
  if (s.format === 'date-time' && typeof v === 'string') return chinaInput(v);
  return String(v);
}

function fromInput(s: FieldSchema, raw: string): unknown {
  if (raw === '') return undefined;
  if (s.type === 'boolean') return raw === 'true';
  if (s.type === 'integer') return Number.isInteger(Number(raw)) ? Number(raw) : raw;
  if (s.type === 'number') return Number.isFinite(Number(raw)) ? Number(raw) : raw;
  if (s.format === 'date-time') return fromChinaInput(raw);
  return raw;
}

export function TaskForm(props: { taskId: string; queued?: boolean; onDone: (queued: boolean) => void }) {
  const [form, setForm] = useState<FormAnswer | null>(null);
  const [raw, setRaw] = useState<Record<string, string>>({});
  const [errors, setErrors] = useState<Errors>({});
  const [problem, setProblem] = useState('');
  const [busy, setBusy] = useState(false);
  // One key per attempt: a double submit or a retry after a lost answer acts once; after the server
  // answered an error the next submit is a new attempt (the same key with another body is refused).
  const key = useRef(newKey());
  const root = useRef<HTMLFormElement>(null);

  useEffect(() => {
    setForm(null);
    api<FormAnswer>(`/task/${encodeURIComponent(props.taskId)}/form`).then((f) => {
      setForm(f);
      const start: Record<string, string> = {};
      for (const [name, s] of Object.entries(f.schema.properties || {})) {
        start[name] = toInput(s, f.values?.[name] ?? s.default);
      }
      setRaw(start);
    }).catch((e) => setProblem(e.message));
  }, [props.taskId]);

  if (!form) return <p role="status">{problem ? t('error', { msg: problem }) : t('loading')}</p>;
  const props_ = form.schema.properties || {};
  const order = form.schema['x-order'] || Object.keys(props_);
  const values: Record<string, unknown> = { ...form.values };
  for (const name of order) values[name] = fromInput(props_[name], raw[name] ?? '');
  const shown = (name: string) => holds(props_[name]['x-rules']?.shownWhen, values, true);
  const required = (name: string) => (form.schema.required || []).includes(name)
    || holds(props_[name]['x-rules']?.requiredWhen, values, false);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setErrors({});
    setProblem('');
    const variables: Record<string, unknown> = {};
    for (const name of order) {
      if (shown(name) && values[name] !== undefined) variables[name] = values[name];
    }
    const path = `/task/${encodeURIComponent(props.taskId)}/complete`;
    try {
      const w = jsonWrite(path, { variables }, `${form.name}`, key.current);
      const out = props.queued ? await write(w)
        : { queued: false, response: await api(path, { method: 'POST', json: { variables }, headers: { 'Idempotency-Key': key.current } }) };
      props.onDone(out.queued);
    } catch (err) {
      if (err instanceof ApiError) {
        key.current = newKey();
        const fe = flatErrors(err.fields);
        setErrors(fe);
        const elsewhere = Object.entries(fe).filter(([k]) => !(k in props_) || !shown(k));
        setProblem([Object.keys(fe).length ? t('fixErrors') : err.message,
                    ...elsewhere.map(([k, m]) => `${k}: ${m.join(' ')}`)].join(' — '));
        // the control itself: a refused choice marks its fieldset too, which cannot take focus
        setTimeout(() => root.current?.querySelector<HTMLElement>(
          ':is(input, select, textarea)[aria-invalid="true"]')?.focus(), 0);
      } else {
        setProblem(String((err as Error).message || err));
      }
    } finally {
      setBusy(false);
    }
  };

  const set = (name: string, v: string) => setRaw({ ...raw, [name]: v });

  return (
    <form ref={root} class="task-form" onSubmit={submit} noValidate aria-labelledby="form-title">
      <h2 id="form-title">{form.name}</h2>
      {order.filter(shown).map((name) => (
        <Field key={name} name={name} s={props_[name]} value={raw[name] ?? ''} required={required(name)}
               errors={errors[name]} onInput={(v) => set(name, v)} />
      ))}
      {problem && <p class="error" role="alert">{problem}</p>}
      <button type="submit" class="primary" disabled={busy}>{busy ? t('submitting') : t('submit')}</button>
    </form>
  );
}

function Field(p: { name: string; s: FieldSchema; value: string; required: boolean; errors?: string[];
                    onInput: (v: string) => void }) {
  const { name, s } = p;
  const id = `f-${name}`;
  const errId = `${id}-err`;
  const title = label(s['x-label'], s.title || name);
  const invalid = p.errors && p.errors.length ? true : undefined;
  const common = { id, name, 'aria-invalid': invalid, 'aria-describedby': invalid ? errId : undefined,
                   'aria-required': p.required || undefined };
  const text = (e: Event) => p.onInput((e.target as HTMLInputElement).value);
  let control;
  if (s.enum || s.type === 'boolean') {
    const options = s.enum || ['true', 'false'];
    const optLabel = (o: string) => s.enum ? label(s['x-labels']?.[o], o) : t(o === 'true' ? 'yes' : 'no');
    if (options.length <= 4) {
      return (
        <fieldset class="field" aria-invalid={invalid} aria-describedby={invalid ? errId : undefined}>
          <legend>{title}{p.required && <span class="req"> *</span>}</legend>
          {options.map((o, i) => (
            <label class="choice" key={o}>
              <input type="radio" name={name} value={o} checked={p.value === o} id={i === 0 ? id : undefined}
                     aria-invalid={invalid} onChange={() => p.onInput(o)} />
              {optLabel(o)}
            </label>
          ))}
          {invalid && <p class="field-error" id={errId}>{p.errors!.join(' ')}</p>}
        </fieldset>
      );
    }
    control = (
      <select {...common} value={p.value} onChange={text}>
        <option value="">{t('choose')}</option>
        {options.map((o) => <option key={o} value={o}>{optLabel(o)}</option>)}
      </select>
    );
  } else if (s['x-widget'] === 'textarea') {
    control = <textarea {...common} rows={3} maxLength={s.maxLength} value={p.value} onInput={text} />;
  } else if (s.type === 'integer' || s.type === 'number') {
    control = <input {...common} type="number" inputMode="decimal" min={s.minimum} max={s.maximum}
                     step={s.type === 'integer' ? 1 : 'any'} value={p.value} onInput={text} />;
  } else if (s.format === 'date-time') {
    control = <input {...common} type="datetime-local" value={p.value} onInput={text} />;
  } else {
    control = <input {...common} type="text" maxLength={s.maxLength} value={p.value} onInput={text} />;
  }
  const ref = s['x-reference'];
  return (
    <div class="field">
      <label for={id}>{title}{p.required && <span class="req"> *</span>}</label>
      {control}
      {ref && <p class="hint">{t('referenceHint', { kind: [ref.kind, ref.role].filter(Boolean).join(' · ') })}</p>}
      {invalid && <p class="field-error" id={errId}>{p.errors!.join(' ')}</p>}
    </div>
  );
}
