// /admin/duty: a grid's duty shifts over a period; add one (repeated on consecutive days) for a person
// picked from the staff register of that grid, end one early or delete one that has not begun.
// Admins and supervisors keep it (supervisors in their area); leaders read it.
import { useState } from 'preact/hooks';
import { hasRole } from '../../api';
import { chinaDay, fromChinaInput, when } from '../../i18n';
import { Field, Loading, Problem, useLoad, useSubmit, value } from './kit';
import { ta } from './strings';

interface Shift { id: number; personId: number; username: string | null; name: string; post: string; grid: string;
  kind: string; category: string | null; startsAt: string; endsAt: string }
interface Page { items: Shift[]; total: number }
interface Person { id: number; name: string; post: string; username: string | null }

const GRID_CODE = /^[0-9]{6,40}$/;


/** The active people of a grid and the grids under it, from the staff register, to pick from. */
function PersonPicker(p: { tenant: string; grid: string; value: string; onChange: (id: string) => void;
                          attrs: Record<string, any> }) {
  const query = GRID_CODE.test(p.grid) && new URLSearchParams({ tenant: p.tenant, grid: p.grid, active: 'true', limit: '200' });
  const people = useLoad<{ items: Person[] }>(query ? `/staff?${query}` : null);
  const items = query && people.current && people.data ? people.data.items : [];
  const hint = !query ? ta('gridFirst') : !people.current ? ta('loading') : people.error || (items.length ? '' : ta('nobodyHere'));
  return (
    <>
      <select {...p.attrs} value={p.value} onChange={(e) => p.onChange(value(e))} disabled={!items.length}>
        <option value="">{ta('pickPerson')}</option>
        {items.map((x) => <option key={x.id} value={String(x.id)}>
          {x.name} · {ta(`role_${x.post}` as any)}{x.username ? ` · ${x.username}` : ''} (#{x.id})</option>)}
      </select>
      {hint && <p class="hint">{hint}</p>}
    </>
  );
}

export function Duty({ tenant }: { tenant: string }) {
  const writer = hasRole('admin', 'supervisor');
  const [q, setQ] = useState({ grid: '', from: chinaDay(), subgrids: true });
  const [applied, setApplied] = useState<typeof q | null>(null);
  const params = applied && new URLSearchParams({ grid: applied.grid, from: fromChinaInput(applied.from, '00:00'),
    to: fromChinaInput(applied.from, '23:59'), subgrids: String(applied.subgrids), limit: '200' });
  const list = useLoad<Page>(params ? `/duty-shifts?${params}` : null);
  const [f, setF] = useState({ personId: '', grid: '', startsAt: '', endsAt: '', kind: 'day', repeatDays: '1' });
  const s = useSubmit();
  const act = useSubmit();
  const add = async (e: Event) => {
    e.preventDefault();
    const ok = await s.send('/duty-shifts', { method: 'POST', json: {
      personId: Number(f.personId) || f.personId, grid: f.grid, startsAt: fromChinaInput(f.startsAt), endsAt: fromChinaInput(f.endsAt),
      kind: f.kind, repeatDays: Number(f.repeatDays) || 1 } });
    if (ok) list.reload();
  };
  const end = async (x: Shift) => { if (await act.send(`/duty-shifts/${x.id}/end`, { method: 'POST', json: {} })) list.reload(); };
  const del = async (x: Shift) => { if (await act.send(`/duty-shifts/${x.id}`, { method: 'DELETE' }) !== undefined) list.reload(); };
  const set = (k: string) => (e: Event) => setF({ ...f, [k]: value(e) });
  return (
    <section aria-labelledby="duty-title">
      <h1 id="duty-title">{ta('duty')}</h1>
      <form class="filters" onSubmit={(e) => { e.preventDefault(); setApplied(q); }}>
        <div class="field"><label for="dq-grid">{ta('grid')}</label>
          <input id="dq-grid" value={q.grid} onInput={(e) => setQ({ ...q, grid: value(e) })} /></div>
        <div class="field"><label for="dq-day">{ta('day')}</label>
          <input id="dq-day" type="date" value={q.from} onInput={(e) => setQ({ ...q, from: value(e) })} /></div>
        <label class="choice"><input type="checkbox" checked={q.subgrids}
          onChange={(e) => setQ({ ...q, subgrids: (e.target as HTMLInputElement).checked })} />{ta('subgrids')}</label>
        <button type="submit">{ta('show')}</button>
      </form>
      <Problem problem={act.problem} errors={act.errors} shown={[]} />
      {applied && (!list.data ? <Loading error={list.error} /> : (
        <table class="admin-table"><caption>{ta('total', { n: list.data.total })}</caption>
          <thead><tr><th>{ta('person')}</th><th>{ta('grid')}</th><th>{ta('kind')}</th><th>{ta('starts')}</th><th>{ta('ends')}</th>{writer && <th>{ta('actions')}</th>}</tr></thead>
          <tbody>{list.data.items.map((x) => (
            <tr key={x.id}><td>{x.name} (#{x.personId})</td><td>{x.grid}</td><td>{ta(`shift_${x.kind}` as any)}</td>
              <td>{when(x.startsAt)}</td><td>{when(x.endsAt)}</td>
              {writer && <td class="actions"><button type="button" onClick={() => end(x)}>{ta('endNow')}</button>
                <button type="button" onClick={() => del(x)}>{ta('delete')}</button></td>}</tr>))}
          </tbody></table>))}
      {writer && <form ref={s.root} class="admin-form" onSubmit={add} noValidate aria-labelledby="new-shift">
        <h2 id="new-shift">{ta('newShift')}</h2>
        <Field id="ds-grid" name="grid" label={ta('grid')} errors={s.errors}>
          {(a) => <input {...a} value={f.grid} onInput={(e) => setF({ ...f, grid: value(e), personId: '' })}
                         inputMode="numeric" />}</Field>
        <Field id="ds-personId" name="personId" label={ta('dutyPerson')} errors={s.errors}>
          {(a) => <PersonPicker tenant={tenant} grid={f.grid} value={f.personId} attrs={a}
                                onChange={(id) => setF({ ...f, personId: id })} />}</Field>
        <Field id="ds-startsAt" name="startsAt" label={ta('starts')} errors={s.errors}>
          {(a) => <input {...a} type="datetime-local" value={f.startsAt} onInput={set('startsAt')} />}</Field>
        <Field id="ds-endsAt" name="endsAt" label={ta('ends')} errors={s.errors}>
          {(a) => <input {...a} type="datetime-local" value={f.endsAt} onInput={set('endsAt')} />}</Field>
        <Field id="ds-kind" name="kind" label={ta('kind')} errors={s.errors}>
          {(a) => <select {...a} value={f.kind} onChange={set('kind')}>
            {['day', 'night', 'holiday'].map((k) => <option key={k} value={k}>{ta(`shift_${k}` as any)}</option>)}</select>}</Field>
        <Field id="ds-repeatDays" name="repeatDays" label={ta('repeatDays')} errors={s.errors}>
          {(a) => <input {...a} type="number" min={1} max={31} value={f.repeatDays} onInput={set('repeatDays')} />}</Field>
        <Problem problem={s.problem} errors={s.errors} shown={['personId', 'grid', 'startsAt', 'endsAt', 'kind', 'repeatDays']} />
        <button type="submit" class="primary" disabled={s.busy}>{ta('add')}</button>
      </form>}
    </section>
  );
}
