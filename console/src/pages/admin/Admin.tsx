// /admin and /admin/{page}: the administrators' pages, one file each, under one sub-navigation.
import { Calendar } from './Calendar';
import { Categories } from './Categories';
import { Duty } from './Duty';
import { GridImport } from './GridImport';
import { Incidents } from './Incidents';
import { Notices } from './Notices';
import { Sources } from './Sources';
import { ta, TKey } from './strings';
import { Users } from './Users';
import { WarningPolicies } from './WarningPolicies';
import './admin.css';

const PAGES: { path: string; label: TKey; page: (tenant: string) => any }[] = [
  { path: 'users', label: 'users', page: () => <Users /> },
  { path: 'grids', label: 'gridImport', page: (t) => <GridImport tenant={t} /> },
  { path: 'duty', label: 'duty', page: () => <Duty /> },
  { path: 'categories', label: 'categories', page: (t) => <Categories tenant={t} /> },
  { path: 'calendar', label: 'calendar', page: () => <Calendar /> },
  { path: 'sources', label: 'sources', page: (t) => <Sources tenant={t} /> },
  { path: 'warning-policies', label: 'warningPolicies', page: (t) => <WarningPolicies tenant={t} /> },
  { path: 'incidents', label: 'incidents', page: () => <Incidents /> },
  { path: 'notices', label: 'notices', page: () => <Notices /> },
];

export function Admin(p: { page?: string; tenant: string }) {
  const current = PAGES.find((x) => x.path === (p.page || 'users'));
  return (
    <div class="admin">
      <nav aria-label={ta('administration')} class="subnav">
        <ul>{PAGES.map((x) => (
          <li key={x.path}><a href={`/admin/${x.path}`} aria-current={x === current ? 'page' : undefined}>{ta(x.label)}</a></li>))}
        </ul>
      </nav>
      {current ? current.page(p.tenant) : <p>{ta('notFound')}</p>}
    </div>
  );
}
