// /admin/staff: the staff register (人员名册) — who works where, on which post, and how notices reach
// them. Filter (unreachable: no phone and no WeChat Work id), register, change (inactive when someone
// leaves; nobody is deleted). Admins and supervisors keep it (supervisors their area's inspectors and
// supervisors), leaders read it.
import { useState } from 'preact/hooks';
import { hasRole } from '../../api';
import { t } from '../../i18n';
import { Errors, Field, Loading, Problem, useLoad, useSubmit, value } from './kit';
import { ta } from './strings';

const POSTS = ['inspector', 'supervisor', 'leader', 'admin'];
const CHANNELS = ['wechat_work', 'sms'];
const LIMIT = 50;

interface Person { id: number; name: string; post: string; grid: string; username: string | null; department: string | null;
  phone: string | null; wecomId: string | null; channels: string[]; active: boolean }
interface Page { items: Person[]; total: number }
type Form = Omit<Person, 'id' | 'username' | 'department' | 'phone' | 'wecomId'>
  & { username: string; department: string; phone: string; wecomId: string };
type Text = 'name' | 'grid' | 'username' | 'department' | 'phone' | 'wecomId';

const blank: Form = { name: '', post: 'inspector', grid: '', username: '', department: '', phone: '', wecomId: '',
  channels: [], active: true };
const formOf = (x: Person): Form => ({ name: x.name, post: x.post, grid: x.grid, username: x.username || '',
  department: x.department || '', phone: x.phone || '', wecomId: x.wecomId || '', channels: x.channels, active: x.active });
const channelNames = (cs: string[]) => cs.map((c) => ta(`channel_${c}` as any)).join(' → ');

/** The channels by preference: ticking one puts it last, so the order is the order ticked. */
function ChannelBoxes(p: { id: string; channels: string[]; errors: Errors; onChange: (c: string[]) => void }) {
  const msgs = p.errors.channels;
  return (
    <fieldset class="field" aria-invalid={msgs ? true : undefined} aria-describedby={msgs ? `${p.id}-err` : undefined}>
      <legend>{ta('channels')}</legend>
      {CHANNELS.map((c) => (
        <label class="choice" key={c}>
          <input type="checkbox" id={`${p.id}-${c}`} checked={p.channels.includes(c)} aria-invalid={msgs ? true : undefined}
                 onChange={(e) => p.onChange((e.target as HTMLInputElement).checked
                   ? [...p.channels, c] : p.channels.filter((x) => x !== c))} />
          {ta(`channel_${c}` as any)}{p.channels.includes(c) && p.channels.length > 1 ? ` (${p.channels.indexOf(c) + 1})` : ''}
        </label>
      ))}
      <p class="hint">{ta('channelsHint')}</p>
      {msgs && <p class="field-error" id={`${p.id}-err`}>{msgs.join(' ')}</p>}
    </fieldset>
  );
}

/** Register someone (no `person`) or change them; the username can be given while they have none. */
function PersonForm(p: { tenant: string; person: Person | null; onSaved: () => void; onCancel: () => void }) {
  const x = p.person;
  const [f, setF] = useState<Form>(x ? formOf(x) : blank);
  const s = useSubmit();
  const id = x ? 'se' : 'sn';
  const submit = async (e: Event) => {
    e.preventDefault();
    const json = { name: f.name, post: f.post, grid: f.grid, department: f.department || null, phone: f.phone || null,
      wecomId: f.wecomId || null, channels: f.channels.length ? f.channels : null, active: f.active,
      ...(f.username && !x?.username ? { username: f.username } : {}) };
    const saved = await s.send<Person>(x ? `/staff/${x.id}` : '/staff',
      { method: x ? 'PATCH' : 'POST', json: x ? json : { tenant: p.tenant, ...json } });
    if (saved) { if (!x) setF(blank); p.onSaved(); }
  };
  const text = (k: Text, label: string, more: Record<string, unknown> = {}, hint?: string) => (
    <Field id={`${id}-${k}`} name={k} label={label} errors={s.errors} hint={hint}>
      {(a) => <input {...a} {...more} value={f[k]} onInput={(e) => setF({ ...f, [k]: value(e) })} />}</Field>);
  const title = x ? ta('editPerson', { name: x.name }) : ta('newPerson');
  return (
    <form ref={s.root} class="admin-form" onSubmit={submit} noValidate aria-label={title}>
      <h2>{title}</h2>
      {text('name', ta('displayName'))}
      <Field id={`${id}-post`} name="post" label={ta('post')} errors={s.errors}>
        {(a) => <select {...a} value={f.post} onChange={(e) => setF({ ...f, post: value(e) })}>
          {POSTS.map((r) => <option key={r} value={r}>{ta(`role_${r}` as any)}</option>)}</select>}</Field>
      {text('grid', ta('grid'), { inputMode: 'numeric' })}
      {text('username', ta('username'), { autoComplete: 'off', disabled: !!x?.username }, ta('usernameOnce'))}
      {text('department', ta('department'))}
      {text('phone', ta('phone'), { type: 'tel', autoComplete: 'off' })}
      {text('wecomId', ta('wecomId'), { autoComplete: 'off' })}
      <ChannelBoxes id={`${id}-channels`} channels={f.channels} errors={s.errors} onChange={(channels) => setF({ ...f, channels })} />
      <label class="choice"><input type="checkbox" id={`${id}-active`} checked={f.active}
        onChange={(e) => setF({ ...f, active: (e.target as HTMLInputElement).checked })} />{ta('active')}</label>
      <Problem problem={s.problem} errors={s.errors}
               shown={['name', 'post', 'grid', 'username', 'department', 'phone', 'wecomId', 'channels']} />
      <button type="submit" class="primary" disabled={s.busy}>{x ? ta('save') : ta('create')}</button>
      {x && <button type="button" onClick={p.onCancel}>{ta('cancel')}</button>}
    </form>
  );
}

export function Staff(p: { tenant: string }) {
  const [filter, setFilter] = useState({ grid: '', post: '', active: '', q: '', unreachable: false });
  const [applied, setApplied] = useState(filter);
  const [offset, setOffset] = useState(0);
  const [editing, setEditing] = useState<Person | null>(null);
  const writer = hasRole('admin', 'supervisor');
  const params = new URLSearchParams({ tenant: p.tenant, limit: String(LIMIT), offset: String(offset) });
  Object.entries(applied).forEach(([k, v]) => { if (v) params.set(k, String(v)); });
  const list = useLoad<Page>(`/staff?${params}`);
  const upd = (k: string) => (e: Event) => setFilter({ ...filter, [k]: value(e) });
  return (
    <section aria-labelledby="staff-title">
      <h1 id="staff-title">{ta('staff')}</h1>
      <form class="filters" role="search" onSubmit={(e) => { e.preventDefault(); setApplied(filter); setOffset(0); }}>
        <div class="field"><label for="sf-grid">{ta('grid')}</label>
          <input id="sf-grid" value={filter.grid} onInput={upd('grid')} inputMode="numeric" /></div>
        <div class="field"><label for="sf-post">{ta('post')}</label>
          <select id="sf-post" value={filter.post} onChange={upd('post')}>
            <option value="">{ta('any')}</option>
            {POSTS.map((r) => <option key={r} value={r}>{ta(`role_${r}` as any)}</option>)}
          </select></div>
        <div class="field"><label for="sf-active">{ta('state')}</label>
          <select id="sf-active" value={filter.active} onChange={upd('active')}>
            <option value="">{ta('any')}</option>
            <option value="true">{ta('active')}</option><option value="false">{ta('leftStaff')}</option>
          </select></div>
        <div class="field"><label for="sf-q">{ta('search')}</label>
          <input id="sf-q" value={filter.q} onInput={upd('q')} /></div>
        <label class="choice"><input type="checkbox" id="sf-unreachable" checked={filter.unreachable}
          onChange={(e) => setFilter({ ...filter, unreachable: (e.target as HTMLInputElement).checked })} />
          {ta('unreachableOnly')}</label>
        <button type="submit">{ta('filter')}</button>
      </form>
      {!list.data ? <Loading error={list.error} /> : (
        <table class="admin-table">
          <caption>{ta('total', { n: list.data.total })}
            {list.data.total > LIMIT && <>{' '}
              <button type="button" disabled={offset === 0} onClick={() => setOffset(Math.max(0, offset - LIMIT))}>{t('prev')}</button>
              {` ${offset + 1}–${Math.min(offset + LIMIT, list.data.total)} `}
              <button type="button" disabled={offset + LIMIT >= list.data.total} onClick={() => setOffset(offset + LIMIT)}>{t('next')}</button>
            </>}</caption>
          <thead><tr><th>{ta('displayName')}</th><th>{ta('username')}</th><th>{ta('post')}</th><th>{ta('grid')}</th>
            <th>{ta('department')}</th><th>{ta('phone')}</th><th>{ta('wecomId')}</th><th>{ta('channels')}</th>
            <th>{ta('state')}</th>{writer && <th>{ta('actions')}</th>}</tr></thead>
          <tbody>
            {list.data.items.map((x) => (
              <tr key={x.id} data-person={x.id} class={x.active ? undefined : 'inactive'}>
                <td>{x.name}</td><td>{x.username || '—'}</td><td>{ta(`role_${x.post}` as any)}</td><td>{x.grid}</td>
                <td>{x.department || '—'}</td><td>{x.phone || '—'}</td><td>{x.wecomId || '—'}</td>
                <td>{!x.phone && !x.wecomId ? <strong class="error">{ta('unreachable')}</strong>
                  : channelNames(x.channels) || ta('defaultChannels')}</td>
                <td>{x.active ? ta('active') : ta('leftStaff')}</td>
                {writer && <td class="actions"><button type="button" onClick={() => setEditing(x)}>{ta('edit')}</button></td>}
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {writer && (editing
        ? <PersonForm key={editing.id} tenant={p.tenant} person={editing} onCancel={() => setEditing(null)}
                      onSaved={() => { setEditing(null); list.reload(); }} />
        : <PersonForm key="new" tenant={p.tenant} person={null} onCancel={() => {}} onSaved={list.reload} />)}
    </section>
  );
}
