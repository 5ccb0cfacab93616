// /admin/users: the people who log in — list and filter, create (a generated password is shown
// once), change roles, scope, linked person and name, disable and enable, reset a password.
import { useState } from 'preact/hooks';
import { when } from '../../i18n';
import { Errors, Field, Loading, Problem, useLoad, useSubmit, value } from './kit';
import { ta } from './strings';

const ROLES = ['admin', 'supervisor', 'inspector', 'leader'];

interface User {
  id: number; username: string; displayName: string | null; roles: string[]; scope: string | null;
  active: boolean; createdAt: string; person: { id: number; name: string; grid: string } | null; password?: string | null;
}
interface Page { items: User[]; total: number }

function RoleBoxes(p: { id: string; roles: string[]; errors: Errors; onChange: (r: string[]) => void }) {
  const msgs = p.errors.roles;
  return (
    <fieldset class="field" aria-invalid={msgs ? true : undefined} aria-describedby={msgs ? `${p.id}-err` : undefined}>
      <legend>{ta('roles')}</legend>
      {ROLES.map((r) => (
        <label class="choice" key={r}>
          <input type="checkbox" id={`${p.id}-${r}`} checked={p.roles.includes(r)} aria-invalid={msgs ? true : undefined}
                 onChange={(e) => p.onChange((e.target as HTMLInputElement).checked
                   ? [...p.roles, r] : p.roles.filter((x) => x !== r))} />
          {ta(`role_${r}` as any)}
        </label>
      ))}
      {msgs && <p class="field-error" id={`${p.id}-err`}>{msgs.join(' ')}</p>}
    </fieldset>
  );
}

const blank = { username: '', displayName: '', roles: ['inspector'], scope: '', personId: '', password: '' };

function CreateUser(p: { onMade: (u: User) => void }) {
  const [f, setF] = useState(blank);
  const s = useSubmit();
  const submit = async (e: Event) => {
    e.preventDefault();
    const made = await s.send<User>('/users', { method: 'POST', json: {
      username: f.username, displayName: f.displayName || null, roles: f.roles, scope: f.scope || null,
      personId: f.personId ? Number(f.personId) : null, ...(f.password ? { password: f.password } : {}) } });
    if (made) { setF(blank); p.onMade(made); }
  };
  const set = (k: string) => (e: Event) => setF({ ...f, [k]: value(e) });
  return (
    <form ref={s.root} class="admin-form" onSubmit={submit} noValidate aria-labelledby="new-user">
      <h2 id="new-user">{ta('newUser')}</h2>
      <Field id="u-username" name="username" label={ta('username')} errors={s.errors}>
        {(a) => <input {...a} value={f.username} onInput={set('username')} autoComplete="off" />}</Field>
      <Field id="u-displayName" name="displayName" label={ta('displayName')} errors={s.errors}>
        {(a) => <input {...a} value={f.displayName} onInput={set('displayName')} />}</Field>
      <RoleBoxes id="u-roles" roles={f.roles} errors={s.errors} onChange={(roles) => setF({ ...f, roles })} />
      <Field id="u-scope" name="scope" label={ta('scope')} hint={ta('scopeHint')} errors={s.errors}>
        {(a) => <input {...a} value={f.scope} onInput={set('scope')} inputMode="numeric" />}</Field>
      <Field id="u-personId" name="personId" label={ta('personId')} hint={ta('personHint')} errors={s.errors}>
        {(a) => <input {...a} value={f.personId} onInput={set('personId')} inputMode="numeric" />}</Field>
      <Field id="u-password" name="password" label={ta('initialPassword')} hint={ta('passwordHint')} errors={s.errors}>
        {(a) => <input {...a} type="password" value={f.password} onInput={set('password')} autoComplete="new-password" />}</Field>
      <Problem problem={s.problem} errors={s.errors} shown={['username', 'displayName', 'roles', 'scope', 'personId', 'password']} />
      <button type="submit" class="primary" disabled={s.busy}>{ta('create')}</button>
    </form>
  );
}

function EditUser(p: { user: User; onSaved: (u: User) => void; onCancel: () => void }) {
  const u = p.user;
  const [f, setF] = useState({ displayName: u.displayName || '', roles: u.roles, scope: u.scope || '',
                               personId: u.person ? String(u.person.id) : '' });
  const s = useSubmit();
  const submit = async (e: Event) => {
    e.preventDefault();
    const saved = await s.send<User>(`/users/${u.id}`, { method: 'PATCH', json: {
      displayName: f.displayName || null, roles: f.roles, scope: f.scope || null,
      personId: f.personId ? Number(f.personId) : null } });
    if (saved) p.onSaved(saved);
  };
  const set = (k: string) => (e: Event) => setF({ ...f, [k]: value(e) });
  return (
    <form ref={s.root} class="admin-form" onSubmit={submit} noValidate aria-label={ta('editUser', { name: u.username })}>
      <h2>{ta('editUser', { name: u.username })}</h2>
      <Field id="e-displayName" name="displayName" label={ta('displayName')} errors={s.errors}>
        {(a) => <input {...a} value={f.displayName} onInput={set('displayName')} />}</Field>
      <RoleBoxes id="e-roles" roles={f.roles} errors={s.errors} onChange={(roles) => setF({ ...f, roles })} />
      <Field id="e-scope" name="scope" label={ta('scope')} hint={ta('scopeHint')} errors={s.errors}>
        {(a) => <input {...a} value={f.scope} onInput={set('scope')} />}</Field>
      <Field id="e-personId" name="personId" label={ta('personId')} hint={ta('personHint')} errors={s.errors}>
        {(a) => <input {...a} value={f.personId} onInput={set('personId')} />}</Field>
      <Problem problem={s.problem} errors={s.errors} shown={['displayName', 'roles', 'scope', 'personId']} />
      <button type="submit" class="primary" disabled={s.busy}>{ta('save')}</button>
      <button type="button" onClick={p.onCancel}>{ta('cancel')}</button>
    </form>
  );
}

export function Users() {
  const [filter, setFilter] = useState({ role: '', active: '', q: '' });
  const [applied, setApplied] = useState(filter);
  const [editing, setEditing] = useState<User | null>(null);
  const [shown, setShown] = useState<{ username: string; password: string } | null>(null);
  const params = new URLSearchParams({ limit: '200' });
  Object.entries(applied).forEach(([k, v]) => { if (v) params.set(k, v); });
  const list = useLoad<Page>(`/users?${params}`);
  const act = useSubmit();

  const reveal = (u: User) => { if (u.password) setShown({ username: u.username, password: u.password }); list.reload(); };
  const post = async (u: User, what: 'disable' | 'enable' | 'reset-password') => {
    if (what === 'reset-password' && !confirm(ta('confirmReset', { name: u.username }))) return;
    const r = await act.send<User>(`/users/${u.id}/${what}`, { method: 'POST' });
    if (r) reveal(r);
  };
  const upd = (k: string) => (e: Event) => setFilter({ ...filter, [k]: value(e) });

  return (
    <section aria-labelledby="users-title">
      <h1 id="users-title">{ta('users')}</h1>
      {shown && (
        <div class="notice" role="status" data-testid="one-time-password">
          {ta('passwordOnce', { name: shown.username })} <code>{shown.password}</code>
          <button type="button" onClick={() => setShown(null)}>{ta('dismiss')}</button>
        </div>
      )}
      <form class="filters" role="search" onSubmit={(e) => { e.preventDefault(); setApplied(filter); }}>
        <div class="field"><label for="uf-role">{ta('roles')}</label>
          <select id="uf-role" value={filter.role} onChange={upd('role')}>
            <option value="">{ta('any')}</option>
            {ROLES.map((r) => <option key={r} value={r}>{ta(`role_${r}` as any)}</option>)}
          </select></div>
        <div class="field"><label for="uf-active">{ta('state')}</label>
          <select id="uf-active" value={filter.active} onChange={upd('active')}>
            <option value="">{ta('any')}</option>
            <option value="true">{ta('active')}</option><option value="false">{ta('disabled')}</option>
          </select></div>
        <div class="field"><label for="uf-q">{ta('search')}</label>
          <input id="uf-q" value={filter.q} onInput={upd('q')} /></div>
        <button type="submit">{ta('filter')}</button>
      </form>
      <Problem problem={act.problem} errors={act.errors} shown={[]} />
      {!list.data ? <Loading error={list.error} /> : (
        <table class="admin-table">
          <caption>{ta('total', { n: list.data.total })}</caption>
          <thead><tr><th>{ta('username')}</th><th>{ta('displayName')}</th><th>{ta('roles')}</th><th>{ta('scope')}</th>
            <th>{ta('person')}</th><th>{ta('state')}</th><th>{ta('created')}</th><th>{ta('actions')}</th></tr></thead>
          <tbody>
            {list.data.items.map((u) => (
              <tr key={u.id} data-user={u.username} class={u.active ? undefined : 'inactive'}>
                <td>{u.username}</td><td>{u.displayName || '—'}</td>
                <td>{u.roles.map((r) => ta(`role_${r}` as any)).join('、')}</td><td>{u.scope || (u.roles.some((r) => r === 'admin' || r === 'leader') ? ta('everywhere') : ta('assignedOnly'))}</td>
                <td>{u.person ? `${u.person.name} (#${u.person.id})` : '—'}</td>
                <td>{u.active ? ta('active') : ta('disabled')}</td><td>{when(u.createdAt)}</td>
                <td class="actions">
                  <button type="button" onClick={() => setEditing(u)}>{ta('edit')}</button>
                  {u.active
                    ? <button type="button" disabled={act.busy} onClick={() => post(u, 'disable')}>{ta('disable')}</button>
                    : <button type="button" disabled={act.busy} onClick={() => post(u, 'enable')}>{ta('enable')}</button>}
                  <button type="button" disabled={act.busy} onClick={() => post(u, 'reset-password')}>{ta('resetPassword')}</button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {editing
        ? <EditUser key={editing.id} user={editing} onCancel={() => setEditing(null)}
                    onSaved={() => { setEditing(null); list.reload(); }} />
        : <CreateUser onMade={reveal} />}
    </section>
  );
}
