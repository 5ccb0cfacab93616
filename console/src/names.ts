// Names for the codes the API answers with: a tenant's category and grid names (loaded once per tenant
// and kept for the tab's life), and the fixed source, outcome and time-limit stage labels (i18n).
import { useEffect, useState } from 'preact/hooks';
import { api } from './api';
import { Key, label, t } from './i18n';

export interface Names {
  categories: Record<string, string>;
  grids: Record<string, string>;
}

const NONE: Names = { categories: {}, grids: {} };
const loaded = new Map<string, Promise<Names>>();

async function fetchNames(tenant: string): Promise<Names> {
  const [cats, grids] = await Promise.all([
    api<{ code: string; name?: unknown }[]>(`/categories?tenant=${tenant}`).catch(() => []),
    api<{ code: string; name: string }[]>(`/grids?tenant=${tenant}`).catch(() => []),
  ]);
  const out: Names = { categories: {}, grids: {} };
  cats.forEach((c) => { out.categories[c.code] = label(c.name, c.code); });
  grids.forEach((g) => { if (g.name) out.grids[g.code] = g.name; });
  if (!cats.length && !grids.length) loaded.delete(tenant); // nothing to show: ask again next time
  return out;
}

/** The tenant's names, asked for once (a failed load is asked again by the next page that needs it). */
export function loadNames(tenant: string): Promise<Names> {
  let p = loaded.get(tenant);
  if (!p) {
    p = fetchNames(tenant);
    loaded.set(tenant, p);
  }
  return p;
}

/** The tenant's names; empty (codes shown as they are) until they have come. */
export function useNames(tenant: string | null | undefined): Names {
  const [names, setNames] = useState<Names>(NONE);
  useEffect(() => {
    if (!tenant) return;
    let live = true;
    loadNames(tenant).then((n) => { if (live) setNames(n); });
    return () => { live = false; };
  }, [tenant]);
  return names;
}

export const categoryName = (n: Names, code: string): string => n.categories[code] || code;
export const gridName = (n: Names, code: string | null | undefined): string => (code ? n.grids[code] || code : '—');

function known(prefix: string, code: string): string {
  const key = `${prefix}${code}` as Key;
  const text = t(key);
  return text === key ? code : text;
}

export const sourceLabel = (code: string): string => known('src_', code);
export const outcomeLabel = (code: string): string => known('out_', code);
const STAGE_ORDER = ['review', 'dispatch', 'sign_for', 'handle', 'feedback', 'verify'];

/** Time-limit stages in the order a case passes them (unknown ones last). */
export const byStageOrder = (a: string, b: string): number =>
  (STAGE_ORDER.indexOf(a) + 1 || 99) - (STAGE_ORDER.indexOf(b) + 1 || 99);

export const limitStageLabel = (code: string): string => known('limit_', code);

/** 办理中 / 已结案, with how it ended when that says more than "closed" (无效, 已合并, 已撤销). */
export function statusText(status: string, outcome: string | null): string {
  const base = status === 'open' ? t('openStatus') : t('closedStatus');
  return outcome && outcome !== 'closed' ? `${base} · ${outcomeLabel(outcome)}` : base;
}
