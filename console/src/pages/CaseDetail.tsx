// One case: facts, stages, the timeline told in words, limits, deferrals and its photos (reported
// and on-site, full size in a dialog), and the open tasks the caller may act on.
import { useEffect, useState } from 'preact/hooks';
import { ApiError, api, hasRole } from '../api';
import { CasePhotos } from '../components/CasePhotos';
import { Key, lang, t, when } from '../i18n';
import { byStageOrder, categoryName, gridName, limitStageLabel, sourceLabel, statusText, useNames } from '../names';

interface Stage { task: string; name: string | null; status: string; assignee: string | null; completedBy: string | null;
  started: string; due: string | null; ended: string | null; onTime: boolean | null }
interface Said { name: string; value: unknown; label?: string; labelEn?: string; valueLabel?: string; valueLabelEn?: string }
interface Event_ { at: string; actor: string; action: string; element: string | null; said?: Said[] }
interface CaseBody {
  id: string; tenant: string; category: string; grid: string; source: string; status: string; outcome: string | null; urgent: boolean;
  description: string | null; processInstanceId: string | null; deferredUntil: string | null; routeReason: string;
  stages?: Stage[]; timeline?: Event_[]; openTasks?: { id: string; name: string; taskDefinitionKey: string }[];
  limits: Record<string, { limitMinutes: number; clock: string }>;
  deferrals?: { reason: string; requestedBy: string | null; approvedBy: string | null; until: string;
    startedAt: string; endedAt: string | null }[];
}

function sentence(e: Event_, names: Record<string, string>): string {
  const key = `t.${e.action}` as Key;
  const vars = { actor: e.actor.startsWith('system') ? `${t('actor_system')}（${e.actor}）` : e.actor,
                 el: (e.element && names[e.element]) || e.element || '', action: e.action };
  const known = t(key, vars);
  return known === key ? t('t.other', vars) : known;
}

/** What an event decided, in words: "甄别结论：有效；派遣给网格员：…", the enforcement decision and fine. */
function decided(said: Said[] | undefined): string {
  if (!said?.length) return '';
  const en = lang() === 'en';
  return said.map((s) => {
    const key = `said.${s.name}` as Key;
    const name = (en ? s.labelEn : s.label) || (t(key) === key ? s.name : t(key));
    const value = (en ? s.valueLabelEn : s.valueLabel) || (typeof s.value === 'boolean'
      ? (s.value ? t('yes') : t('no')) : String(s.value));
    return `${name}：${value}`;
  }).join('；');
}

/** 督办: a note to everyone working on the open case; the answer says who was told and who could not be. */
function Urge(props: { caseId: string }) {
  const [note, setNote] = useState('');
  const [busy, setBusy] = useState(false);
  const [said, setSaid] = useState('');
  const [refused, setRefused] = useState('');
  const submit = async (e: Event) => {
    e.preventDefault();
    if (busy) return;
    setBusy(true); setRefused(''); setSaid('');
    try {
      const r = await api<{ notified: unknown[]; notNotified: { user: string; reason: string }[] }>(
        `/cases/${encodeURIComponent(props.caseId)}/urge`,
        { method: 'POST', json: { note }, headers: { 'Idempotency-Key': crypto.randomUUID() } });
      setSaid(t('urged', { n: r.notified.length, missing: r.notNotified.map((m) => `${m.user}（${m.reason}）`).join('、') || '—' }));
      setNote('');
    } catch (err) {
      setRefused(err instanceof ApiError ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="urge" onSubmit={submit}>
      <label for="urge-note">{t('urgeNote')}</label>
      <textarea id="urge-note" required maxLength={1000} value={note} aria-invalid={!!refused}
        onInput={(e) => setNote((e.target as HTMLTextAreaElement).value)} />
      {refused && <p class="error" role="alert">{refused}</p>}
      {said && <p role="status">{said}</p>}
      <button class="button" type="submit" disabled={busy || !note.trim()}>{t('urge')}</button>
    </form>
  );
}

export function CaseDetail(props: { id: string }) {
  const [c, setCase] = useState<CaseBody | null>(null);
  const [problem, setProblem] = useState('');
  const codes = useNames(c?.tenant);

  useEffect(() => {
    setCase(null);
    api<CaseBody>(`/cases/${encodeURIComponent(props.id)}`).then(setCase).catch((e) => setProblem(e.message));
  }, [props.id]);

  if (problem) return <p class="error" role="alert">{t('error', { msg: problem })}</p>;
  if (!c) return <p role="status">{t('loading')}</p>;
  const names: Record<string, string> = {};
  (c.stages || []).forEach((s) => { if (s.name) names[s.task] = s.name; });
  return (
    <section aria-labelledby="case-title" class="case-detail">
      <p><a href="/cases">← {t('cases')}</a></p>
      <h1 id="case-title">{t('case')} {c.id} {c.urgent && <span class="badge urgent">{t('urgent')}</span>}</h1>
      <dl class="facts">
        <dt>{t('category')}</dt><dd>{categoryName(codes, c.category)}</dd>
        <dt>{t('grid')}</dt><dd>{gridName(codes, c.grid)}</dd>
        <dt>{t('source')}</dt><dd>{sourceLabel(c.source)}</dd>
        <dt>{t('status')}</dt><dd>{statusText(c.status, c.outcome)}</dd>
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
      {c.status === 'open' && hasRole('supervisor', 'leader') && <Urge caseId={c.id} />}
      <h2>{t('timeline')}</h2>
      <ol class="timeline">
        {(c.timeline || []).map((e, i) => (
          <li key={i}><time dateTime={e.at}>{when(e.at)}</time> {sentence(e, names)}
            {!!e.said?.length && <span class="said"> — {decided(e.said)}</span>}</li>
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
      <CasePhotos caseId={c.id} />
      <h2>{t('limits')}</h2>
      <ul class="limits">
        {Object.entries(c.limits || {}).sort(([a], [b]) => byStageOrder(a, b)).map(([stage, l]) => (
          <li key={stage}>{limitStageLabel(stage)}: {t('minutes', { n: l.limitMinutes })} ({t(l.clock === 'working' ? 'working' : 'natural')})</li>
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
    </section>
  );
}
