// One case: facts, stages, the timeline told in words, limits, deferrals and on-site photos (full size
// in a dialog), and the open tasks the caller may act on.
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, imageUrl } from '../api';
import { Key, t, when } from '../i18n';

interface Stage { task: string; name: string | null; status: string; assignee: string | null; completedBy: string | null;
  started: string; due: string | null; ended: string | null; onTime: boolean | null }
interface Event_ { at: string; actor: string; action: string; element: string | null }
interface CaseBody {
  id: string; category: string; grid: string; source: string; status: string; outcome: string | null; urgent: boolean;
  description: string | null; processInstanceId: string | null; deferredUntil: string | null; routeReason: string;
  stages?: Stage[]; timeline?: Event_[]; openTasks?: { id: string; name: string; taskDefinitionKey: string }[];
  limits: Record<string, { limitMinutes: number; clock: string }>;
  deferrals?: { reason: string; requestedBy: string | null; approvedBy: string | null; until: string;
    startedAt: string; endedAt: string | null }[];
}
interface Photo { id: number; kind: string; taskId: string; taskName: string; createdBy: string; created: string; url?: string }

function sentence(e: Event_, names: Record<string, string>): string {
  const key = `t.${e.action}` as Key;
  const vars = { actor: e.actor.startsWith('system') ? `${t('actor_system')}（${e.actor}）` : e.actor,
                 el: (e.element && names[e.element]) || e.element || '', action: e.action };
  const known = t(key, vars);
  return known === key ? t('t.other', vars) : known;
}

export function CaseDetail(props: { id: string }) {
  const [c, setCase] = useState<CaseBody | null>(null);
  const [photos, setPhotos] = useState<Photo[]>([]);
  const [problem, setProblem] = useState('');
  const [big, setBig] = useState<Photo | null>(null);
  const dialog = useRef<HTMLDialogElement>(null);

  useEffect(() => {
    let urls: string[] = [];
    setCase(null);
    (async () => {
      const body = await api<CaseBody>(`/cases/${encodeURIComponent(props.id)}`);
      setCase(body);
      if (!body.processInstanceId) return;
      const pid = encodeURIComponent(body.processInstanceId);
      const lists = await Promise.all(['open', 'completed'].map((s) =>
        api<{ items: { id: string; name: string }[] }>(`/task?processInstanceId=${pid}&status=${s}&limit=100`)));
      const tasks = lists.flatMap((l) => l.items);
      const found: Photo[] = [];
      for (const task of tasks) {
        const ev = await api<Photo[]>(`/task/${task.id}/evidence`).catch(() => []);
        for (const p of ev.filter((x) => x.kind === 'photo')) {
          const url = await imageUrl(`/task/${task.id}/evidence/${p.id}/file`);
          urls.push(url);
          found.push({ ...p, taskId: task.id, taskName: task.name, url });
        }
      }
      setPhotos(found);
    })().catch((e) => setProblem(e.message));
    return () => { urls.forEach((u) => URL.revokeObjectURL(u)); urls = []; };
  }, [props.id]);

  useEffect(() => {
    if (big) dialog.current?.showModal();
    else dialog.current?.close();
  }, [big]);

  if (problem) return <p class="error" role="alert">{t('error', { msg: problem })}</p>;
  if (!c) return <p role="status">{t('loading')}</p>;
  const names: Record<string, string> = {};
  (c.stages || []).forEach((s) => { if (s.name) names[s.task] = s.name; });
  return (
    <section aria-labelledby="case-title" class="case-detail">
      <p><a href="/cases">← {t('cases')}</a></p>
      <h1 id="case-title">{t('case')} {c.id} {c.urgent && <span class="badge urgent">{t('urgent')}</span>}</h1>
      <dl class="facts">
        <dt>{t('category')}</dt><dd>{c.category}</dd>
        <dt>{t('grid')}</dt><dd>{c.grid}</dd>
        <dt>{t('source')}</dt><dd>{c.source}</dd>
        <dt>{t('status')}</dt><dd>{c.status === 'open' ? t('openStatus') : t('closedStatus')}{c.outcome ? ` · ${c.outcome}` : ''}</dd>
        {c.description && <><dt>{t('description')}</dt><dd>{c.description}</dd></>}
        {c.deferredUntil && <><dt>{t('deferred')}</dt><dd>→ {when(c.deferredUntil)}</dd></>}
      </dl>
      {!!c.openTasks?.length && (
        <ul class="actions">
          {c.openTasks.map((task) => (
            <li key={task.id}><a class="button primary" href={`/tasks/${task.id}?case=${encodeURIComponent(c.id)}`}>
              {t('open')}：{task.name}</a></li>
          ))}
        </ul>
      )}
      <h2>{t('timeline')}</h2>
      <ol class="timeline">
        {(c.timeline || []).map((e, i) => (
          <li key={i}><time dateTime={e.at}>{when(e.at)}</time> {sentence(e, names)}</li>
        ))}
      </ol>
      <h2>{t('stages')}</h2>
      <table class="stages">
        <thead><tr><th scope="col">{t('task')}</th><th scope="col">{t('assignee')}</th><th scope="col">{t('started')}</th>
          <th scope="col">{t('due')}</th><th scope="col">{t('ended')}</th><th scope="col">{t('onTime')}</th></tr></thead>
        <tbody>
          {(c.stages || []).map((s, i) => (
            <tr key={i} class={s.onTime === false ? 'late' : ''}>
              <td>{s.name || s.task}</td><td>{s.completedBy || s.assignee || '—'}</td><td>{when(s.started)}</td>
              <td>{when(s.due)}</td><td>{when(s.ended)}</td>
              <td>{s.onTime === null ? '—' : s.onTime ? t('onTime') : t('late')}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2>{t('photos')}</h2>
      {photos.length === 0 ? <p class="muted">{t('noPhotos')}</p> : (
        <ul class="photos">
          {photos.map((p, i) => (
            <li key={p.id}>
              <button type="button" class="thumb" onClick={() => setBig(p)}
                      aria-label={t('photoOf', { n: i + 1, task: p.taskName })}>
                <img src={p.url} alt={t('photoOf', { n: i + 1, task: p.taskName })} />
              </button>
              <span class="meta">{p.createdBy} · {when(p.created)}</span>
            </li>
          ))}
        </ul>
      )}
      <h2>{t('limits')}</h2>
      <ul class="limits">
        {Object.entries(c.limits || {}).map(([stage, l]) => (
          <li key={stage}>{names[stage] || stage}: {t('minutes', { n: l.limitMinutes })} ({t(l.clock === 'working' ? 'working' : 'natural')})</li>
        ))}
      </ul>
      {!!c.deferrals?.length && (
        <>
          <h2>{t('deferrals')}</h2>
          <ul>{c.deferrals.map((d, i) => (
            <li key={i}>{when(d.startedAt)} → {when(d.until)} · {d.reason}
              {d.requestedBy ? ` · ${d.requestedBy}` : ''}{d.approvedBy ? ` / ${d.approvedBy}` : ''}
              {d.endedAt ? ` · ${t('ended')} ${when(d.endedAt)}` : ''}</li>
          ))}</ul>
        </>
      )}
      <dialog ref={dialog} class="photo-dialog" onClose={() => setBig(null)} aria-label={t('photos')}>
        {big && <img src={big.url} alt={big.taskName} class="full" />}
        <form method="dialog"><button type="submit" autoFocus>{t('close')}</button></form>
      </dialog>
    </section>
  );
}
