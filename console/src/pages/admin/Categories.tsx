// /admin/categories: the problem categories and their time limits per stage; a new rule set
// applies from a moment on (running cases keep theirs).
import { useState } from 'preact/hooks';
import { fromChinaInput, when } from '../../i18n';
import { Field, Loading, Problem, useLoad, useSubmit, value } from './kit';
import { ta } from './strings';

const STAGES = ['review', 'dispatch', 'sign_for', 'handle', 'feedback', 'verify'];
type Limits = Record<string, { limitMinutes: number; clock: string }>;
interface Category { code: string; name: string; urgent: boolean; limits: Limits }
interface Rules { category: string; current: Limits; sets: { effectiveFrom: string; stages: Limits; setBy: string }[] }

function TimeRules(p: { code: string; onSaved: () => void }) {
  const rules = useLoad<Rules>(`/categories/${encodeURIComponent(p.code)}/time-rules`);
  const [edit, setEdit] = useState<Record<string, { limitMinutes: string; clock: string }>>({});
  const [from, setFrom] = useState('');
  const s = useSubmit();
  if (!rules.data) return <Loading error={rules.error} />;
  const cur = rules.data.current;
  const val = (st: string) => edit[st] ?? { limitMinutes: String(cur[st]?.limitMinutes ?? ''), clock: cur[st]?.clock ?? 'working' };
  const set = (st: string, k: string) => (e: Event) => setEdit({ ...edit, [st]: { ...val(st), [k]: value(e) } });
  const submit = async (e: Event) => {
    e.preventDefault();
    const stages: Limits = {};
    for (const st of Object.keys(edit)) stages[st] = { limitMinutes: Number(edit[st].limitMinutes), clock: edit[st].clock };
    const ok = await s.send(`/categories/${encodeURIComponent(p.code)}/time-rules`, { method: 'PUT',
      json: { stages, ...(from ? { effectiveFrom: fromChinaInput(from) } : {}) } });
    if (ok) { setEdit({}); rules.reload(); p.onSaved(); }
  };
  const stageErrors = (st: string): string[] => Object.values(s.nested.stages?.[st] || {}).flat().map(String);
  return (
    <form ref={s.root} class="admin-form" onSubmit={submit} noValidate aria-labelledby="rules-title">
      <h2 id="rules-title">{ta('timeRulesOf', { code: p.code })}</h2>
      <table class="admin-table">
        <thead><tr><th>{ta('stage')}</th><th>{ta('limitMinutes')}</th><th>{ta('clock')}</th></tr></thead>
        <tbody>{STAGES.map((st) => (
          <tr key={st}>
            <th scope="row"><label for={`tr-${st}`}>{ta(`stage_${st}` as any)}</label></th>
            <td><input id={`tr-${st}`} type="number" min={1} value={val(st).limitMinutes} onInput={set(st, 'limitMinutes')}
                       aria-invalid={stageErrors(st).length ? true : undefined}
                       aria-describedby={stageErrors(st).length ? `tr-${st}-err` : undefined} />
              {stageErrors(st).length > 0 && <p class="field-error" id={`tr-${st}-err`}>{stageErrors(st).join(' ')}</p>}</td>
            <td><select aria-label={`${ta(`stage_${st}` as any)} ${ta('clock')}`} value={val(st).clock} onChange={set(st, 'clock')}>
              <option value="working">{ta('clock_working')}</option><option value="natural">{ta('clock_natural')}</option>
            </select></td>
          </tr>))}
        </tbody>
      </table>
      <Field id="tr-effectiveFrom" name="effectiveFrom" label={ta('effectiveFrom')} hint={ta('effectiveHint')} errors={s.errors}>
        {(a) => <input {...a} type="datetime-local" value={from} onInput={(e) => setFrom(value(e))} />}</Field>
      <Problem problem={s.problem} errors={s.errors} shown={['effectiveFrom', ...(s.nested.stages && typeof s.nested.stages === 'object' && !Array.isArray(s.nested.stages) ? ['stages'] : [])]} />
      <button type="submit" class="primary" disabled={s.busy || !Object.keys(edit).length}>{ta('save')}</button>
      <h3>{ta('ruleSets')}</h3>
      <ul>{rules.data.sets.map((x) => <li key={x.effectiveFrom}>{when(x.effectiveFrom)} — {x.setBy}: {
        Object.entries(x.stages).map(([st, l]) => `${ta(`stage_${st}` as any)} ${l.limitMinutes}′`).join('，')}</li>)}</ul>
    </form>
  );
}

export function Categories(p: { tenant: string }) {
  const list = useLoad<Category[]>(`/categories?tenant=${p.tenant}`, [p.tenant]);
  const [open, setOpen] = useState<string | null>(null);
  if (!list.data) return <Loading error={list.error} />;
  return (
    <section aria-labelledby="cat-title">
      <h1 id="cat-title">{ta('categories')}</h1>
      <table class="admin-table">
        <thead><tr><th>{ta('code')}</th><th>{ta('name')}</th><th>{ta('urgent')}</th>
          {STAGES.map((st) => <th key={st}>{ta(`stage_${st}` as any)}</th>)}<th>{ta('actions')}</th></tr></thead>
        <tbody>{list.data.map((c) => (
          <tr key={c.code}><td>{c.code}</td><td>{c.name}</td><td>{c.urgent ? '✓' : ''}</td>
            {STAGES.map((st) => <td key={st}>{c.limits[st] ? `${c.limits[st].limitMinutes}′ ${ta(`clock_${c.limits[st].clock}` as any)}` : '—'}</td>)}
            <td><button type="button" onClick={() => setOpen(c.code)}>{ta('edit')}</button></td></tr>))}
        </tbody>
      </table>
      {open && <TimeRules key={open} code={open} onSaved={list.reload} />}
    </section>
  );
}
