// The console's shell: login, a nav whose entries depend on the roles, and the router.
// Later pages (map, administration, process models, dashboards) add a route and a NAV entry here.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api, hasRole, logout, Me, session, whenLoggedOut } from './api';
import { Key, lang, onLang, setLang, t } from './i18n';
import { Admin } from './pages/admin/Admin';
import { CaseDetail } from './pages/CaseDetail';
import { Cases } from './pages/Cases';
import { Home } from './pages/Home';
import { Login } from './pages/Login';
import { MobileTask, MyTasks } from './pages/Mobile';
import { ReportProblem } from './pages/Report';
import { TaskPage } from './pages/TaskPage';
import { lazyPage } from './lazy';
import './pages/dashboard/dashboard.css';
import './pages/models.css';
import { failures, onQueue, pending, replay } from './queue';
import { interceptLinks, match, navigate, useLocation } from './router';
import './styles.css';

const DESK = ['supervisor', 'admin', 'leader'];
// The process-model pages load on first visit (a chunk of their own); bpmn-js, later still, with the diagram.
const MapPage = lazyPage(() => import('./pages/Map').then((m) => m.MapPage));  // Leaflet: ~150 KB
const Models = lazyPage(() => import('./pages/Models').then((m) => m.Models));
const ModelEdit = lazyPage(() => import('./pages/ModelEdit').then((m) => m.ModelEdit));
const ModelHeat = lazyPage(() => import('./pages/ModelHeat').then((m) => m.ModelHeat));
const Dashboard = lazyPage(() => import('./pages/dashboard/Dashboard').then((m) => m.Dashboard));  // ECharts

const NAV: { path: string; label: Key; roles: string[] }[] = [
  { path: '/', label: 'home', roles: DESK },
  { path: '/cases', label: 'cases', roles: [...DESK, 'inspector'] },
  { path: '/map', label: 'map', roles: DESK },
  { path: '/dashboard', label: 'dashboard', roles: DESK },
  { path: '/m', label: 'myTasks', roles: ['inspector', 'supervisor', 'admin'] },
  { path: '/models', label: 'models', roles: ['admin', 'leader'] },
  { path: '/admin', label: 'admin', roles: DESK },  // supervisors and leaders: the pages meant for them (Admin.tsx)
];

type Route = { pattern: string; roles: string[]; page: (p: Record<string, string>, me: Me, tenant: string) => any };

const ROUTES: Route[] = [
  { pattern: '/', roles: DESK, page: (_p, _me, tenant) => <Home tenant={tenant} /> },
  { pattern: '/cases', roles: [...DESK, 'inspector'], page: (_p, _me, tenant) => <Cases tenant={tenant} /> },
  { pattern: '/map', roles: DESK, page: (_p, me, tenant) => <MapPage tenant={tenant} me={me} /> },
  { pattern: '/dashboard', roles: DESK, page: (_p, _me, tenant) => <Dashboard tenant={tenant} /> },
  { pattern: '/cases/:id', roles: [...DESK, 'inspector'], page: (p) => <CaseDetail id={p.id} /> },
  { pattern: '/tasks/:id', roles: [...DESK, 'inspector'], page: (p) => <TaskPage id={p.id} /> },
  { pattern: '/m', roles: ['inspector', 'supervisor', 'admin'], page: (_p, _me, tenant) => <MyTasks tenant={tenant} /> },
  { pattern: '/models', roles: ['admin', 'leader'], page: () => <Models /> },
  { pattern: '/models/:id/edit', roles: ['admin'], page: (p) => <ModelEdit id={p.id} /> },
  { pattern: '/models/:id/heatmap', roles: ['admin', 'leader'], page: (p) => <ModelHeat id={p.id} /> },
  { pattern: '/admin', roles: DESK, page: (_p, _me, tenant) => <Admin tenant={tenant} /> },
  { pattern: '/admin/:page', roles: DESK, page: (p, _me, tenant) => <Admin page={p.page} tenant={tenant} /> },
  { pattern: '/m/tasks/:id', roles: ['inspector', 'supervisor', 'admin'], page: (p, me) => <MobileTask id={p.id} me={me} /> },
  { pattern: '/m/report', roles: ['inspector'], page: (_p, me, tenant) => <ReportProblem me={me} tenant={tenant} /> },
];

/** '/m' is current on '/m' and '/m/tasks/1', not on '/models'. */
function current(nav: string, path: string): boolean {
  const p = path.split('?')[0];
  return nav === '/' ? p === '/' : p === nav || p.startsWith(nav + '/');
}

function useRerenderOn(subscribe: (f: () => void) => () => void): void {
  const [, set] = useState(0);
  useEffect(() => subscribe(() => set((n) => n + 1)), []);
}

function QueueBanner() {
  const [n, setN] = useState(0);
  useEffect(() => {
    const f = () => { pending().then((p) => setN(p.length)).catch(() => setN(0)); };
    f();
    const off = onQueue(f);
    const retry = window.setInterval(() => { pending().then((p) => { if (p.length) replay(); }).catch(() => {}); }, 15_000);
    return () => { off(); window.clearInterval(retry); };
  }, []);
  if (!n && !failures.length) return null;
  return (
    <div class="queue" role="status" data-testid="queue">
      {n > 0 && t('pending', { n })}
      {failures.map((f, i) => <p key={i} class="error">{t('syncFailed', { msg: f })}</p>)}
    </div>
  );
}

function App() {
  useRerenderOn(onLang);
  const path = useLocation();
  const [me, setMe] = useState<Me | null>(null);
  const [loggedIn, setLoggedIn] = useState(!!session());
  const [tenant, setTenant] = useState(localStorage.getItem('gridloop.tenant') || '');

  useEffect(() => whenLoggedOut(() => { setLoggedIn(false); setMe(null); }), []);
  useEffect(() => {
    if (!loggedIn) return;
    api<Me>('/me').then((m) => {
      setMe(m);
      if (!m.tenants.includes(tenant)) setTenant(m.tenants[0] || '');
      if (path === '/' && !m.roles.some((r) => DESK.includes(r))) navigate('/m', true);
    }).catch(() => {});
    replay();
  }, [loggedIn]);

  if (!loggedIn) return <main id="main"><Login onLoggedIn={() => setLoggedIn(true)} /></main>;
  if (!me) return <main id="main"><p role="status">{t('loading')}</p></main>;

  const route = ROUTES.map((r) => ({ r, p: match(r.pattern, path) })).find((x) => x.p);
  const chooseTenant = (e: Event) => {
    const v = (e.target as HTMLSelectElement).value;
    localStorage.setItem('gridloop.tenant', v);
    setTenant(v);
  };
  let page;
  if (!route) page = <p>{t('notFound')}</p>;
  else if (!hasRole(...route.r.roles)) page = <p class="error">{t('forbidden')}</p>;
  else page = route.r.page(route.p!, me, tenant);
  return (
    <>
      <a class="skip" href="#main">{t('skip')}</a>
      <header class="top">
        <span class="brand">GridLoop</span>
        <nav aria-label="main">
          <ul>
            {NAV.filter((n) => me.roles.some((r) => n.roles.includes(r))).map((n) => (
              <li key={n.path}><a href={n.path} aria-current={current(n.path, path) ? 'page' : undefined}>
                {t(n.label)}</a></li>
            ))}
          </ul>
        </nav>
        <div class="tools">
          {me.tenants.length > 1 && (
            <label>{t('tenant')} <select value={tenant} onChange={chooseTenant}>
              {me.tenants.map((x) => <option key={x} value={x}>{x}</option>)}</select></label>
          )}
          <label>{t('language')} <select value={lang()} onChange={(e) => setLang((e.target as HTMLSelectElement).value as any)}>
            <option value="zh-CN">中文</option><option value="en">English</option></select></label>
          <span class="who">{me.displayName || me.username}</span>
          <button type="button" onClick={logout}>{t('logout')}</button>
        </div>
      </header>
      <QueueBanner />
      <main id="main" tabIndex={-1}>{page}</main>
    </>
  );
}

document.documentElement.lang = lang();
interceptLinks();
addEventListener('online', () => replay());
if ('serviceWorker' in navigator) {
  addEventListener('load', () => navigator.serviceWorker.register('/sw.js').catch(() => {}));
}
render(<App />, document.getElementById('app')!);
