// /admin/warning-policies: who is told of a graded warning of each level, per grid prefix.
import { useState } from 'preact/hooks';
import { Field, Loading, Problem, useLoad, useSubmit, value } from './kit';
import { ta } from './strings';

interface Policy { id: number; level: number; gridPrefix: string | null; notifyLevel: string; notifyPost: string;
  ackMinutes: number; renotify: boolean }
const ROMAN = ['', 'Ⅰ', 'Ⅱ', 'Ⅲ', 'Ⅳ'];

export function WarningPolicies(p: { tenant: string }) {
  const list = useLoad<Policy[]>(`/warning-policies?tenant=${p.tenant}`, [p.tenant]);
  const blank = { level: '1', gridPrefix: '', notifyLevel: 'grid', notifyPost: 'supervisor', ackMinutes: '30', renotify: true };
  const [f, setF] = useState(blank);
  const s = useSubmit();
  const act = useSubmit();
  const add = async (e: Event) => {
    e.preventDefault();
    const ok = await s.send('/warning-policies', { method: 'POST', json: { tenant: p.tenant, level: Number(f.level),
      gridPrefix: f.gridPrefix || null, notifyLevel: f.notifyLevel, notifyPost: f.notifyPost,
      ackMinutes: Number(f.ackMinutes) || f.ackMinutes, renotify: f.renotify } });
    if (ok) { setF(blank); list.reload(); }
  };
  const remove = async (x: Policy) => {
    if (await act.send(`/warning-policies/${x.id}`, { method: 'DELETE' }) !== undefined) list.reload();
  };
  const set = (k: string) => (e: Event) => setF({ ...f, [k]: value(e) });
  return (
    <section aria-labelledby="wp-title">
      <h1 id="wp-title">{ta('warningPolicies')}</h1>
      <Problem problem={act.problem} errors={act.errors} shown={[]} />
      {!list.data ? <Loading error={list.error} /> : list.data.length === 0 ? <p>{ta('defaultsOnly')}</p> : (
        <table class="admin-table">
          <thead><tr><th>{ta('level')}</th><th>{ta('gridPrefix')}</th><th>{ta('notifyLevel')}</th><th>{ta('notifyPost')}</th>
            <th>{ta('ackMinutes')}</th><th>{ta('renotify')}</th><th>{ta('actions')}</th></tr></thead>
          <tbody>{list.data.map((x) => (
            <tr key={x.id}><td>{ROMAN[x.level]}</td><td>{x.gridPrefix || ta('everywhere')}</td><td>{x.notifyLevel}</td>
              <td>{ta(`role_${x.notifyPost}` as any)}</td><td>{x.ackMinutes}</td><td>{x.renotify ? '✓' : ''}</td>
              <td><button type="button" onClick={() => remove(x)}>{ta('delete')}</button></td></tr>))}
          </tbody></table>)}
      <form ref={s.root} class="admin-form" onSubmit={add} noValidate aria-labelledby="new-policy">
        <h2 id="new-policy">{ta('newPolicy')}</h2>
        <Field id="wp-level" name="level" label={ta('level')} errors={s.errors}>
          {(a) => <select {...a} value={f.level} onChange={set('level')}>
            {[1, 2, 3, 4].map((l) => <option key={l} value={l}>{ROMAN[l]}</option>)}</select>}</Field>
        <Field id="wp-gridPrefix" name="gridPrefix" label={ta('gridPrefix')} errors={s.errors}>
          {(a) => <input {...a} value={f.gridPrefix} onInput={set('gridPrefix')} inputMode="numeric" />}</Field>
        <Field id="wp-notifyLevel" name="notifyLevel" label={ta('notifyLevel')} errors={s.errors}>
          {(a) => <select {...a} value={f.notifyLevel} onChange={set('notifyLevel')}>
            {['grid', 'town', 'district', 'city'].map((l) => <option key={l} value={l}>{l}</option>)}</select>}</Field>
        <Field id="wp-notifyPost" name="notifyPost" label={ta('notifyPost')} errors={s.errors}>
          {(a) => <select {...a} value={f.notifyPost} onChange={set('notifyPost')}>
            {['supervisor', 'inspector', 'leader'].map((r) => <option key={r} value={r}>{ta(`role_${r}` as any)}</option>)}</select>}</Field>
        <Field id="wp-ackMinutes" name="ackMinutes" label={ta('ackMinutes')} errors={s.errors}>
          {(a) => <input {...a} type="number" min={1} value={f.ackMinutes} onInput={set('ackMinutes')} />}</Field>
        <label class="choice"><input type="checkbox" checked={f.renotify}
          onChange={(e) => setF({ ...f, renotify: (e.target as HTMLInputElement).checked })} />{ta('renotify')}</label>
        <Problem problem={s.problem} errors={s.errors} shown={['level', 'gridPrefix', 'notifyLevel', 'notifyPost', 'ackMinutes']} />
        <button type="submit" class="primary" disabled={s.busy}>{ta('add')}</button>
      </form>
    </section>
  );
}
