// Cases: the list with filters (kept in the URL) and paging.
import { useEffect, useState } from 'preact/hooks';
import { api } from '../api';
import { label, t, when } from '../i18n';
import { categoryName, gridName, sourceLabel, statusText, useNames } from '../names';
import { navigate, query } from '../router';

interface CaseRow {
  id: string; category: string; grid: string; source: string; status: string; outcome: string | null; urgent: boolean;
  deferredUntil: string | null; lastSeen: string; description: string | null;
}
interface Page { items: CaseRow[]; total: number; offset: number; limit: number; totalCapped?: boolean }

const LIMIT = 20;

export function Cases(props: { tenant: string }) {
  const q = query();
  const [filters, setFilters] = useState({
    status: q.get('status') || '', category: q.get('category') || '', grid: q.get('grid') || '',
    deferred: q.get('deferred') === 'true',
  });
  const offset = Number(q.get('offset') || 0);
  const [page, setPage] = useState<Page | null>(null);
  const [categories, setCategories] = useState<{ code: string; name?: unknown; label?: unknown }[]>([]);
  const [problem, setProblem] = useState('');
  const search = location.search;
  const names = useNames(props.tenant);

  useEffect(() => {
    api<any>(`/categories?tenant=${props.tenant}`)
      .then((c) => setCategories(Array.isArray(c) ? c : c.items || [])).catch(() => setCategories([]));
  }, [props.tenant]);
  useEffect(() => {
    const p = new URLSearchParams({ tenant: props.tenant, limit: String(LIMIT), offset: String(offset) });
    if (filters.status) p.set('status', filters.status);
    if (filters.category) p.set('category', filters.category);
    if (filters.grid) p.set('grid', filters.grid);
    if (filters.deferred) p.set('deferred', 'true');
    setProblem('');
    api<Page>(`/cases?${p}`).then(setPage).catch((e) => setProblem(e.message));
  }, [props.tenant, search]);

  const go = (off: number) => {
    const p = new URLSearchParams();
    Object.entries(filters).forEach(([k, v]) => { if (v) p.set(k, String(v)); });
    if (off) p.set('offset', String(off));
    navigate(`/cases${p.toString() ? `?${p}` : ''}`);
  };
  const apply = (e: Event) => { e.preventDefault(); go(0); };
  const upd = (k: string) => (e: Event) => {
    const el = e.target as HTMLInputElement;
    setFilters({ ...filters, [k]: el.type === 'checkbox' ? el.checked : el.value });
  };

  return (
    <section aria-labelledby="cases-title">
      <h1 id="cases-title">{t('cases')}</h1>
      <form class="filters" onSubmit={apply} role="search">
        <div class="field"><label for="flt-status">{t('status')}</label>
          <select id="flt-status" value={filters.status} onChange={upd('status')}>
            <option value="">{t('any')}</option>
            <option value="open">{t('openStatus')}</option>
            <option value="closed">{t('closedStatus')}</option>
          </select></div>
        <div class="field"><label for="flt-category">{t('category')}</label>
          <select id="flt-category" value={filters.category} onChange={upd('category')}>
            <option value="">{t('any')}</option>
            {categories.map((c) => <option key={c.code} value={c.code}>{label(c.label ?? c.name, c.code)}</option>)}
          </select></div>
        <div class="field"><label for="flt-grid">{t('grid')}</label>
          <input id="flt-grid" inputMode="numeric" value={filters.grid} onInput={upd('grid')} /></div>
        <label class="choice"><input type="checkbox" checked={filters.deferred} onChange={upd('deferred')} />
          {t('onlyDeferred')}</label>
        <button type="submit">{t('filter')}</button>
      </form>
      {problem && <p class="error" role="alert">{t('error', { msg: problem })}</p>}
      {!page ? <p role="status">{t('loading')}</p> : (
        <>
          <p class="muted" role="status">{t('total', { n: page.total + (page.totalCapped ? '+' : '') })}</p>
          <table class="cases">
            <thead><tr><th scope="col">{t('case')}</th><th scope="col">{t('category')}</th>
              <th scope="col">{t('grid')}</th><th scope="col">{t('source')}</th><th scope="col">{t('status')}</th>
              <th scope="col">{t('lastSeen')}</th></tr></thead>
            <tbody>
              {page.items.map((c) => (
                <tr key={c.id}>
                  <td><a href={`/cases/${encodeURIComponent(c.id)}`}>{c.id}</a>
                    {c.urgent && <span class="badge urgent">{t('urgent')}</span>}</td>
                  <td>{categoryName(names, c.category)}</td><td>{gridName(names, c.grid)}</td><td>{sourceLabel(c.source)}</td>
                  <td>{statusText(c.status, c.outcome)}
                    {c.deferredUntil && <span class="badge deferred">{t('deferred')} → {when(c.deferredUntil)}</span>}</td>
                  <td>{when(c.lastSeen)}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <nav class="pager" aria-label={t('cases')}>
            <button type="button" disabled={offset === 0} onClick={() => go(Math.max(0, offset - LIMIT))}>{t('prev')}</button>
            <button type="button" disabled={offset + LIMIT >= page.total} onClick={() => go(offset + LIMIT)}>{t('next')}</button>
          </nav>
        </>
      )}
    </section>
  );
}
