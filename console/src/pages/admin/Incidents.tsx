// /admin/incidents: operations that failed after their retries (a push, a notice, a service task);
// retry runs the failed operation again.
import { useState } from 'preact/hooks';
import { when } from '../../i18n';
import { Loading, Problem, useLoad, useSubmit } from './kit';
import { ta } from './strings';

interface Incident { id: number; kind: string; processInstanceId: string | null; activityId: string | null;
  operation: string | null; message: string; attempts: number; status: string; created: string; resolvedBy: string | null }

export function Incidents() {
  const [status, setStatus] = useState('open');
  const list = useLoad<{ items: Incident[]; total: number }>(`/incident?status=${status}&limit=200`);
  const act = useSubmit();
  const retry = async (x: Incident) => { if (await act.send(`/incident/${x.id}/retry`, { method: 'POST' })) list.reload(); };
  return (
    <section aria-labelledby="inc-title">
      <h1 id="inc-title">{ta('incidents')}</h1>
      <div class="filters"><div class="field"><label for="inc-status">{ta('state')}</label>
        <select id="inc-status" value={status} onChange={(e) => setStatus((e.target as HTMLSelectElement).value)}>
          <option value="open">{ta('open')}</option><option value="resolved">{ta('resolved')}</option></select></div></div>
      <Problem problem={act.problem} errors={act.errors} shown={[]} />
      {!list.data ? <Loading error={list.error} /> : (
        <table class="admin-table"><caption>{ta('total', { n: list.data.total })}</caption>
          <thead><tr><th>#</th><th>{ta('kind')}</th><th>{ta('where')}</th><th>{ta('message')}</th><th>{ta('attempts')}</th>
            <th>{ta('created')}</th><th>{ta('actions')}</th></tr></thead>
          <tbody>{list.data.items.map((x) => (
            <tr key={x.id}><td>{x.id}</td><td>{x.kind}{x.operation ? ` · ${x.operation}` : ''}</td>
              <td>{x.processInstanceId ? `${x.processInstanceId.slice(0, 8)} · ${x.activityId || ''}` : '—'}</td>
              <td>{x.message}</td><td>{x.attempts}</td><td>{when(x.created)}</td>
              <td>{x.status === 'open'
                ? <button type="button" disabled={act.busy} onClick={() => retry(x)}>{ta('retry')}</button>
                : x.resolvedBy}</td></tr>))}
          </tbody></table>)}
    </section>
  );
}
