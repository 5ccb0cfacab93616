// /admin and /admin/{page}: the administrators' pages, one file each, under one sub-navigation.
// A page names the roles that see it (admins only unless it says more); /admin opens the first of them.
import { hasRole } from '../../api';
import { lazyPage } from '../../lazy';
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

// Newer pages load on first visit, a chunk of their own, so 首页's first load does not carry them.
const Staff = lazyPage(() => import('./Staff').then((m) => m.Staff));

const PAGES: { path: string; label: TKey; roles?: string[]; page: (tenant: string) => any }[] = [
  { path: 'users', label: 'users', page: () => <Users /> },
  { path: 'staff', label: 'staff', roles: ['admin', 'supervisor', 'leader'], page: (t) => <Staff tenant={t} /> },
  { path: 'grids', label: 'gridImport', page: (t) => <GridImport tenant={t} /> },
  { path: 'duty', label: 'duty', roles: ['admin', 'supervisor', 'leader'], page: (t) => <Duty tenant={t} /> },
  { path: 'categories', label: 'categories', page: (t) => <Categories tenant={t} /> },
  { path: 'calendar', label: 'calendar', page: () => <Calendar /> },
  { path: 'sources', label: 'sources', page: (t) => <Sources tenant={t} /> },
  { path: 'warning-policies', label: 'warningPolicies', page: (t) => <WarningPolicies tenant={t} /> },
  { path: 'incidents', label: 'incidents', page: () => <Incidents /> },
  { path: 'notices', label: 'notices', page: () => <Notices /> },
];

export function Admin(p: { page?: string; tenant: string }) {
  const mine = PAGES.filter((x) => hasRole(...(x.roles || ['admin'])));
  const current = mine.find((x) => x.path === (p.page || mine[0]?.path));
  const elsewhere = !current && PAGES.some((x) => x.path === p.page);
  return (
    <div class="admin">
      <nav aria-label={ta('administration')} class="subnav">
        <ul>{mine.map((x) => (
          <li key={x.path}><a href={`/admin/${x.path}`} aria-current={x === current ? 'page' : undefined}>{ta(x.label)}</a></li>))}
        </ul>
      </nav>
      {current ? current.page(p.tenant) : elsewhere ? <p class="error">{ta('forbidden')}</p> : <p>{ta('notFound')}</p>}
    </div>
  );
}
