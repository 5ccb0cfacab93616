// 首页: the supervisor's lists, pushed by the server (SSE) as they change; polling when the stream
// cannot be had. Each item opens its task's form in one click.
import { useEffect, useRef, useState } from 'preact/hooks';
import { api } from '../api';
import { Key, t, when } from '../i18n';
import { categoryName, gridName, useNames } from '../names';

interface Item {
  taskId: string; task: string; assignee: string | null; due: string | null; caseId: string; category: string;
  grid: string; source: string; urgent: boolean; occurrences: number; deferredUntil: string | null;
}
type Lists = Record<string, { count: number; items: Item[] }>;

export const LISTS: Key[] = ['alarms', 'reported', 'awaitingDispatch', 'dispatchedNotSigned', 'awaitingVerification',
  'overdue', 'deferred'];

type Mode = 'connecting' | 'live' | 'polling';

function useHomeLists(tenant: string): [Lists | null, Mode] {
  const [lists, setLists] = useState<Lists | null>(null);
  const [mode, setMode] = useState<Mode>('connecting');
  useEffect(() => {
    let stopped = false;
    let source: EventSource | null = null;
    let timer = 0;
    let failures = 0;
    const poll = async () => {
      try {
        setLists(await api<Lists>(`/home?tenant=${tenant}`));
      } catch { /* shown as stale; the next round tries again */ }
    };
    const startPolling = () => {
      setMode('polling');
      poll();
      timer = window.setTimeout(() => { if (!stopped) connect(); }, 60_000);
      const every = window.setInterval(() => { if (stopped || source) window.clearInterval(every); else poll(); }, 15_000);
    };
    const connect = async () => {
      if (stopped) return;
      setMode('connecting');
      try {
        const ticket = await api<{ url: string }>('/home/stream-ticket', { method: 'POST', json: { tenant } });
        if (stopped) return;
        const es = new EventSource(ticket.url);
        source = es;
        es.addEventListener('home', (e) => {
          failures = 0;
          setMode('live');
          setLists(JSON.parse((e as MessageEvent).data));
        });
        es.addEventListener('bye', () => { es.close(); source = null; connect(); });
        // the session ended (logout, disabled): asking for a new ticket answers 401, which logs out here too
        es.addEventListener('ended', () => { es.close(); source = null; connect(); });
        es.onerror = () => {
          es.close();
          source = null;
          if (stopped) return;
          failures += 1;
          if (failures >= 3) startPolling();
          else timer = window.setTimeout(connect, 1000 * failures); // a ticket is good once: ask again
        };
      } catch {
        failures += 1;
        startPolling();
      }
    };
    connect();
    return () => { stopped = true; source?.close(); window.clearTimeout(timer); };
  }, [tenant]);
  return [lists, mode];
}

export function Home(props: { tenant: string }) {
  const [lists, mode] = useHomeLists(props.tenant);
  const names = useNames(props.tenant);
  const seen = useRef<Set<string> | null>(null);
  const fresh = new Set<string>();
  if (lists) {
    const ids = LISTS.flatMap((k) => lists[k]?.items.map((i) => i.taskId) || []);
    if (seen.current) ids.forEach((id) => { if (!seen.current!.has(id)) fresh.add(id); });
    else seen.current = new Set();
  }
  useEffect(() => {
    if (lists) LISTS.forEach((k) => lists[k]?.items.forEach((i) => seen.current?.add(i.taskId)));
  });
  const now = Date.now();
  return (
    <section aria-labelledby="home-title">
      <div class="page-head">
        <h1 id="home-title">{t('home')}</h1>
        <p class={`mode mode-${mode}`} role="status" data-testid="stream-mode">{t(mode === 'live' ? 'live' : mode)}</p>
      </div>
      {!lists ? <p role="status">{t('loading')}</p> : (
        <div class="lists">
          {LISTS.map((k) => {
            const l = lists[k] || { count: 0, items: [] };
            return (
              <section key={k} class={`list list-${k}`} aria-labelledby={`h-${k}`} data-list={k}>
                <h2 id={`h-${k}`}>{t(k)} <span class="count" data-testid={`count-${k}`}>{l.count}</span></h2>
                {l.items.length === 0 ? <p class="muted">{t('empty')}</p> : (
                  <ul>
                    {l.items.map((i) => {
                      const late = !!i.due && new Date(i.due).getTime() < now;
                      return (
                        <li key={i.taskId} class={`item${late ? ' overdue' : ''}${fresh.has(i.taskId) ? ' fresh' : ''}`}>
                          <a href={`/tasks/${i.taskId}?case=${encodeURIComponent(i.caseId)}`}
                             aria-label={`${t('open')} ${i.caseId} ${categoryName(names, i.category)}`}>
                            <span class="case-id">{i.caseId}</span>
                            <span class="cat">{categoryName(names, i.category)}</span>
                            {i.urgent && <span class="badge urgent">{t('urgent')}</span>}
                            {late && <span class="badge late">{t('overdueBadge')}</span>}
                            {fresh.has(i.taskId) && <span class="badge new">{t('newBadge')}</span>}
                            <span class="meta">{gridName(names, i.grid)} · {t('due')} {when(i.due)}
                              {i.deferredUntil && ` · ${t('deferred')} → ${when(i.deferredUntil)}`}</span>
                          </a>
                        </li>
                      );
                    })}
                  </ul>
                )}
              </section>
            );
          })}
        </div>
      )}
    </section>
  );
}
