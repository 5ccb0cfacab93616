// Process models (styles in models.css, loaded with the app): every key with its versions (latest, suspended, instances by status), and what an
// administrator may do with a version: edit it in the modeler, see its heat map, make it the latest
// again (roll back), suspend or activate it — each with a reason for the audit — and migrate instances.
import { useEffect, useState } from 'preact/hooks';
import { api, hasRole } from '../api';
import { when } from '../i18n';
import { Migration } from './Migration';
import { tm } from './models_i18n';

export interface Definition {
  id: number; key: string; version: number; name: string | null; deployed_by: string; deployed_at: string;
  latest: boolean; suspended: boolean;
}
interface Stats {
  definitionId: number; total: number; counts: Record<string, number>; suspended: number; openTasks: number;
  openIncidents: number;
}
type Action = 'make-latest' | 'suspend' | 'activate';
const ACTION_LABEL = { 'make-latest': 'makeLatest', suspend: 'suspend', activate: 'activate' } as const;

function ReasonForm(props: { def: Definition; action: Action; onDone: (msg: string) => void; onCancel: () => void }) {
  const [reason, setReason] = useState('');
  const [problem, setProblem] = useState('');
  const [busy, setBusy] = useState(false);
  const name = tm(ACTION_LABEL[props.action]);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setProblem('');
    try {
      await api(`/process-definition/${props.def.id}/${props.action}`, { method: 'POST', json: { reason } });
      props.onDone(tm('done', { action: name }));
    } catch (err: any) {
      setProblem(err.fields?.reason ? String(err.fields.reason) : err.message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="card reason-form" onSubmit={submit} aria-label={tm('reasonFor', { action: name, key: props.def.key, v: props.def.version })}>
      <p><strong>{tm('reasonFor', { action: name, key: props.def.key, v: props.def.version })}</strong></p>
      <div class="field">
        <label for="action-reason">{tm('reason')}</label>
        <textarea id="action-reason" required maxLength={1000} rows={2} value={reason} aria-invalid={problem ? 'true' : undefined}
          onInput={(e) => setReason((e.target as HTMLTextAreaElement).value)} />
        {problem && <span class="field-error" role="alert">{problem}</span>}
      </div>
      <button type="submit" class="primary" disabled={busy}>{tm('confirm')}</button>{' '}
      <button type="button" onClick={props.onCancel}>{tm('cancel')}</button>
    </form>
  );
}

function Counts(props: { s?: Stats }) {
  const s = props.s;
  if (!s) return <span class="muted">…</span>;
  return (
    <span data-testid="counts">
      <strong>{s.total}</strong>{' '}
      <span class="muted">({tm('running')} {s.counts.running ?? 0} · {tm('completed')} {s.counts.completed ?? 0} ·{' '}
        {tm('cancelled')} {s.counts.cancelled ?? 0}{s.suspended ? ` · ${tm('suspendedInstances')} ${s.suspended}` : ''})</span>
    </span>
  );
}

export function Models() {
  const [defs, setDefs] = useState<Definition[] | null>(null);
  const [stats, setStats] = useState<Record<number, Stats>>({});
  const [acting, setActing] = useState<{ def: Definition; action: Action } | null>(null);
  const [message, setMessage] = useState('');
  const [problem, setProblem] = useState('');
  const [tick, setTick] = useState(0);
  const admin = hasRole('admin');

  useEffect(() => {
    setProblem('');
    Promise.all([api<Definition[]>('/process-definition'), api<Stats[]>('/process-definition/statistics')])
      .then(([d, s]) => {
        setDefs(d);
        setStats(Object.fromEntries(s.map((x) => [x.definitionId, x])));
      })
      .catch((e) => setProblem(e.message));
  }, [tick]);
  const reload = () => setTick((n) => n + 1);

  if (problem) return <p class="error" role="alert">{problem}</p>;
  if (!defs) return <p role="status">…</p>;
  const keys = [...new Set(defs.map((d) => d.key))];
  return (
    <section aria-labelledby="models-title" class="models">
      <h1 id="models-title">{tm('title')}</h1>
      {message && <p role="status" class="notice">{message}</p>}
      {keys.map((key) => {
        const versions = defs.filter((d) => d.key === key).sort((a, b) => b.version - a.version);
        return (
          <section key={key} class="card model-key" data-key={key} aria-labelledby={`key-${key}`}>
            <h2 id={`key-${key}`}>{key} <span class="muted">{versions[0].name}</span></h2>
            <table class="versions">
              <thead><tr><th scope="col">{tm('version')}</th><th scope="col">{tm('deployed')}</th>
                <th scope="col">{tm('instances')}</th><th scope="col">{tm('openTasks')}</th>
                <th scope="col">{tm('incidents')}</th><th scope="col">{tm('actions')}</th></tr></thead>
              <tbody>
                {versions.map((d) => {
                  const s = stats[d.id];
                  return (
                    <tr key={d.id} data-version={d.version}>
                      <th scope="row">v{d.version}
                        {d.latest && <span class="badge latest">{tm('latest')}</span>}
                        {d.suspended && <span class="badge late">{tm('suspendedBadge')}</span>}</th>
                      <td>{when(d.deployed_at)} · {d.deployed_by}</td>
                      <td><Counts s={s} /></td>
                      <td>{s?.openTasks ?? '…'}</td>
                      <td class={s?.openIncidents ? 'late' : ''}>{s?.openIncidents ?? '…'}</td>
                      <td class="row-actions">
                        {admin && <a class="button" href={`/models/${d.id}/edit`}>{tm('edit')}</a>}
                        <a class="button" href={`/models/${d.id}/heatmap`}>{tm('heat')}</a>
                        {admin && !d.latest && !d.suspended && (
                          <button type="button" onClick={() => setActing({ def: d, action: 'make-latest' })}>{tm('makeLatest')}</button>)}
                        {admin && (d.suspended
                          ? <button type="button" onClick={() => setActing({ def: d, action: 'activate' })}>{tm('activate')}</button>
                          : <button type="button" onClick={() => setActing({ def: d, action: 'suspend' })}>{tm('suspend')}</button>)}
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
            {acting && acting.def.key === key && (
              <ReasonForm def={acting.def} action={acting.action} onCancel={() => setActing(null)}
                onDone={(msg) => { setActing(null); setMessage(msg); reload(); }} />
            )}
            {admin && versions.length > 1 && <Migration versions={versions} onMigrated={reload} />}
          </section>
        );
      })}
    </section>
  );
}
