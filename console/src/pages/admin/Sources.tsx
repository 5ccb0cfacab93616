// /admin/sources: the monitoring sources (a data logger by its MN) and their limits; register one,
// switch one on or off, replace a source's limits (one "pollutant dataKind value unit" a line).
import { useState } from 'preact/hooks';
import { when } from '../../i18n';
import { Field, Loading, Problem, useLoad, useSubmit, value } from './kit';
import { ta } from './strings';

interface Limit { pollutant: string; dataKind: string; limitValue: string; unit: string }
interface Source { mn: string; kind: string; name: string; enterprise: string | null; grid: string | null; active: boolean;
  lastSeenAt: string | null; limits?: Limit[]; offline?: boolean; exceeding?: boolean }

function Limits(p: { mn: string }) {
  const src = useLoad<Source>(`/sources/${encodeURIComponent(p.mn)}`);
  const [text, setText] = useState<string | null>(null);
  const s = useSubmit();
  if (!src.data) return <Loading error={src.error} />;
  const shown = text ?? (src.data.limits || []).map((l) => `${l.pollutant} ${l.dataKind} ${l.limitValue} ${l.unit}`).join('\n');
  const submit = async (e: Event) => {
    e.preventDefault();
    const body = shown.split('\n').map((l) => l.trim()).filter(Boolean).map((l) => {
      const [pollutant, dataKind, limitValue, ...unit] = l.split(/\s+/);
      return { pollutant, dataKind, limitValue, unit: unit.join(' ') };
    });
    if (await s.send(`/sources/${encodeURIComponent(p.mn)}/limits`, { method: 'PUT', json: body })) { setText(null); src.reload(); }
  };
  return (
    <form ref={s.root} class="admin-form" onSubmit={submit} noValidate>
      <h2>{ta('limitsOf', { mn: p.mn })}</h2>
      <Field id="lim-text" name="_schema" label={ta('limits')} hint={ta('limitLines')} errors={s.errors}>
        {(a) => <textarea {...a} rows={6} value={shown} onInput={(e) => setText(value(e))} />}</Field>
      <Problem problem={s.problem} errors={s.errors} shown={['_schema']} />
      <button type="submit" class="primary" disabled={s.busy}>{ta('save')}</button>
    </form>
  );
}

export function Sources(p: { tenant: string }) {
  const list = useLoad<{ items: Source[]; total: number }>(`/sources?tenant=${p.tenant}&limit=500`, [p.tenant]);
  const [open, setOpen] = useState<string | null>(null);
  const blank = { mn: '', kind: 'outlet', name: '', enterprise: '', password: '', lon: '', lat: '', grid: '' };
  const [f, setF] = useState(blank);
  const s = useSubmit();
  const act = useSubmit();
  const add = async (e: Event) => {
    e.preventDefault();
    const num = (x: string) => (x === '' ? undefined : Number(x));
    const ok = await s.send('/sources', { method: 'POST', json: { mn: f.mn, tenant: p.tenant, kind: f.kind, name: f.name,
      enterprise: f.enterprise || null, password: f.password, lon: num(f.lon), lat: num(f.lat), ...(f.grid ? { grid: f.grid } : {}) } });
    if (ok) { setF(blank); list.reload(); }
  };
  const toggle = async (x: Source) => {
    if (await act.send(`/sources/${encodeURIComponent(x.mn)}`, { method: 'PATCH', json: { active: !x.active } })) list.reload();
  };
  const set = (k: string) => (e: Event) => setF({ ...f, [k]: value(e) });
  return (
    <section aria-labelledby="src-title">
      <h1 id="src-title">{ta('sources')}</h1>
      <Problem problem={act.problem} errors={act.errors} shown={[]} />
      {!list.data ? <Loading error={list.error} /> : (
        <table class="admin-table"><caption>{ta('total', { n: list.data.total })}</caption>
          <thead><tr><th>MN</th><th>{ta('name')}</th><th>{ta('kind')}</th><th>{ta('grid')}</th><th>{ta('lastSeen')}</th>
            <th>{ta('state')}</th><th>{ta('actions')}</th></tr></thead>
          <tbody>{list.data.items.map((x) => (
            <tr key={x.mn} class={x.active ? undefined : 'inactive'}><td>{x.mn}</td><td>{x.name}{x.enterprise ? ` · ${x.enterprise}` : ''}</td>
              <td>{x.kind}</td><td>{x.grid || '—'}</td><td>{when(x.lastSeenAt)}</td>
              <td>{x.active ? ta('active') : ta('disabled')}</td>
              <td class="actions"><button type="button" onClick={() => setOpen(x.mn)}>{ta('limits')}</button>
                <button type="button" disabled={act.busy} onClick={() => toggle(x)}>{x.active ? ta('disable') : ta('enable')}</button></td></tr>))}
          </tbody></table>)}
      {open && <Limits key={open} mn={open} />}
      <form ref={s.root} class="admin-form" onSubmit={add} noValidate aria-labelledby="new-source">
        <h2 id="new-source">{ta('newSource')}</h2>
        {(['mn', 'name', 'enterprise'] as const).map((k) => (
          <Field key={k} id={`src-${k}`} name={k} label={ta(k === 'mn' ? 'mn' : k)} errors={s.errors}>
            {(a) => <input {...a} value={f[k]} onInput={set(k)} />}</Field>))}
        <Field id="src-kind" name="kind" label={ta('kind')} errors={s.errors}>
          {(a) => <select {...a} value={f.kind} onChange={set('kind')}>
            <option value="outlet">{ta('outlet')}</option><option value="station">{ta('station')}</option></select>}</Field>
        <Field id="src-password" name="password" label={ta('loggerPassword')} errors={s.errors}>
          {(a) => <input {...a} type="password" value={f.password} onInput={set('password')} autoComplete="off" />}</Field>
        <Field id="src-lon" name="lon" label={ta('lon')} errors={s.errors}>
          {(a) => <input {...a} inputMode="decimal" value={f.lon} onInput={set('lon')} />}</Field>
        <Field id="src-lat" name="lat" label={ta('lat')} errors={s.errors}>
          {(a) => <input {...a} inputMode="decimal" value={f.lat} onInput={set('lat')} />}</Field>
        <Field id="src-grid" name="grid" label={ta('grid')} hint={ta('gridOrPoint')} errors={s.errors}>
          {(a) => <input {...a} value={f.grid} onInput={set('grid')} />}</Field>
        <Problem problem={s.problem} errors={s.errors} shown={['mn', 'name', 'enterprise', 'kind', 'password', 'lon', 'lat', 'grid']} />
        <button type="submit" class="primary" disabled={s.busy}>{ta('add')}</button>
      </form>
    </section>
  );
}
