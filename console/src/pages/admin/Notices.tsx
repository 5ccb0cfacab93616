// /admin/notices: notifications that could not be sent (failed on every channel, or nobody to reach).
import { useState } from 'preact/hooks';
import { when } from '../../i18n';
import { Loading, useLoad } from './kit';
import { ta } from './strings';

interface Notice { id: string; kind: string; caseId: string | null; recipient: string; channel: string; address: string;
  text: string; status: string; attempts: number; created?: string; lastError?: string | null }

export function Notices() {
  const [status, setStatus] = useState('failed');
  const list = useLoad<{ items: Notice[]; total: number }>(`/notifications?status=${status}&limit=200`);
  return (
    <section aria-labelledby="ntc-title">
      <h1 id="ntc-title">{ta('notices')}</h1>
      <div class="filters"><div class="field"><label for="ntc-status">{ta('state')}</label>
        <select id="ntc-status" value={status} onChange={(e) => setStatus((e.target as HTMLSelectElement).value)}>
          {['failed', 'queued', 'sending', 'sent', 'delivered', 'acknowledged'].map((x) => <option key={x} value={x}>{x}</option>)}
        </select></div></div>
      {!list.data ? <Loading error={list.error} /> : (
        <table class="admin-table"><caption>{ta('total', { n: list.data.total })}</caption>
          <thead><tr><th>{ta('kind')}</th><th>{ta('recipient')}</th><th>{ta('channel')}</th><th>{ta('message')}</th>
            <th>{ta('attempts')}</th><th>{ta('created')}</th></tr></thead>
          <tbody>{list.data.items.map((x) => (
            <tr key={x.id}><td>{x.kind}{x.caseId ? <> · <a href={`/cases/${x.caseId}`}>{x.caseId.slice(0, 8)}</a></> : null}</td>
              <td>{x.recipient}</td><td>{x.channel} {x.address}</td><td>{x.lastError || x.text}</td><td>{x.attempts}</td>
              <td>{when(x.created)}</td></tr>))}
          </tbody></table>)}
    </section>
  );
}
