// The leaders' dashboard (统计分析): the cases filed in a period by stage, source, category and grid
// (a click drills down from the city to the basic units), on-time rates by grid, a trend by week or
// month, each with its figures as a table and CSV/Excel exports (GET /statistics/cases); below it the
// assessment (考核评价) of a period and the published evaluations.
import { useEffect, useMemo, useState } from 'preact/hooks';
import { api } from '../../api';
import { AssessmentView } from './AssessmentView';
import { Chart, Option } from './chart';
import { ExportButtons } from './download';
import { chinaDay } from '../../i18n';
import { DKey, named, td } from './i18n';

export interface Figures { counts: Record<string, number>; rates: Record<string, number | null> }
interface Row extends Figures { key: string; label?: string; level?: string; hasChildren?: boolean }
interface Stats { rows: Row[]; total: Figures; path: { code: string; name: string; level: string }[] }
type By = 'stage' | 'source' | 'category';

const KPI: DKey[] = ['filed', 'closed', 'closed_on_time', 'open', 'overdue'];
const KPI_RATES: DKey[] = ['closing_rate', 'on_time_closing_rate', 'overdue_rate'];
const RATE_SERIES: DKey[] = ['closing_rate', 'on_time_closing_rate', 'overdue_rate'];

export const pct = (v: number | null | undefined) => (v === null || v === undefined ? '—' : `${v}%`);

function rowName(by: string, r: Row): string {
  if (by === 'stage') return named('stage_', r.key);
  if (by === 'source') return named('src_', r.key);
  return r.label || r.key;
}

function bars(names: string[], series: { name: string; data: (number | null)[]; type?: string; yAxisIndex?: number }[],
              opts: { percent?: boolean; second?: boolean } = {}): Option {
  return {
    tooltip: { trigger: 'axis' }, legend: { top: 0 }, grid: { left: 48, right: opts.second ? 48 : 16, top: 36, bottom: 72 },
    xAxis: { type: 'category', data: names, axisLabel: { interval: 0, rotate: names.length > 4 || names.some((n) => n.length > 8) ? 30 : 0,
      width: 110, overflow: 'truncate' } },
    yAxis: opts.second ? [{ type: 'value', minInterval: 1 }, { type: 'value', max: 100, axisLabel: { formatter: '{value}%' } }]
      : { type: 'value', ...(opts.percent ? { max: 100, axisLabel: { formatter: '{value}%' } } : { minInterval: 1 }) },
    series: series.map((s) => ({ type: 'bar', ...s })),
  };
}

function Table(props: { by: string; rows: Row[]; testid: string; onPick?: (r: Row) => void }) {
  return (
    <details class="data">
      <summary>{td('data')}</summary>
      <table data-testid={props.testid}>
        <thead><tr><th scope="col">{td('name')}</th>{[...KPI, 'invalid', 'merged', 'open_overdue', ...KPI_RATES].map((k) =>
          <th scope="col" key={k}>{td(k as DKey)}</th>)}</tr></thead>
        <tbody>
          {props.rows.map((r) => (
            <tr key={r.key} data-key={r.key}>
              <th scope="row">{props.onPick && r.hasChildren
                ? <button type="button" class="link" onClick={() => props.onPick!(r)}>{rowName(props.by, r)}</button>
                : rowName(props.by, r)}</th>
              {[...KPI, 'invalid', 'merged', 'open_overdue'].map((k) => <td key={k} data-col={k}>{r.counts[k]}</td>)}
              {KPI_RATES.map((k) => <td key={k} data-col={k}>{pct(r.rates[k])}</td>)}
            </tr>
          ))}
        </tbody>
      </table>
    </details>
  );
}

function Section(props: { title: string; path: string; children: any; testid: string }) {
  return (
    <section class="card dash-section" aria-labelledby={`h-${props.testid}`} data-testid={props.testid}>
      <div class="dash-head"><h2 id={`h-${props.testid}`}>{props.title}</h2><ExportButtons path={props.path} what={props.title} /></div>
      {props.children}
    </section>
  );
}

export function Dashboard(props: { tenant: string }) {
  const now = new Date();
  const [from, setFrom] = useState(() => chinaDay(new Date(now.getFullYear(), now.getMonth() - 5, 1, 12)).slice(0, 8) + '01');
  const [to, setTo] = useState(() => chinaDay(now));
  const [bucket, setBucket] = useState<'week' | 'month'>('month');
  const [parent, setParent] = useState<string | null>(null);
  const [data, setData] = useState<Partial<Record<By | 'trend', Stats>>>({});
  const [grid, setGrid] = useState<Stats | null>(null);
  const [problem, setProblem] = useState('');
  const base = `/statistics/cases?tenant=${props.tenant}&from=${from}&to=${to}`;
  const gridPath = `${base}&by=grid${parent ? `&parent=${parent}` : ''}`;

  useEffect(() => {
    if (!props.tenant || !from || !to) return;
    setProblem('');
    const wanted: [By | 'trend', string][] = [['stage', 'stage'], ['source', 'source'], ['category', 'category'], ['trend', bucket]];
    Promise.all(wanted.map(([, by]) => api<Stats>(`${base}&by=${by}`)))
      .then((all) => setData(Object.fromEntries(all.map((s, i) => [wanted[i][0], s]))))
      .catch((e) => setProblem(e.fields ? Object.entries(e.fields).map(([k, v]) => `${k}: ${v}`).join('; ') : e.message));
  }, [props.tenant, from, to, bucket]);
  useEffect(() => {
    if (!props.tenant || !from || !to) return;
    api<Stats>(gridPath).then(setGrid, (e) => setProblem(e.message));
  }, [props.tenant, from, to, parent]);

  const drill = (r: Row | undefined) => { if (r?.hasChildren) setParent(r.key); };
  const up = () => {
    const path = grid?.path || [];
    setParent(path.length > 1 ? path[path.length - 2].code : null);
  };
  const options = useMemo(() => {
    const out: Partial<Record<string, Option>> = {};
    const s = data.stage, so = data.source, c = data.category, tr = data.trend;
    if (s) out.stage = bars(s.rows.map((r) => rowName('stage', r)), [{ name: td('filed'), data: s.rows.map((r) => r.counts.filed) },
      { name: td('open_overdue'), data: s.rows.map((r) => r.counts.open_overdue) }]);
    if (so) out.source = { tooltip: { trigger: 'item' }, legend: { top: 0 },
      series: [{ type: 'pie', radius: ['35%', '65%'], top: 24, label: { formatter: '{b}: {c}' },
        data: so.rows.map((r) => ({ name: rowName('source', r), value: r.counts.filed })) }] };
    if (c) out.category = bars(c.rows.map((r) => rowName('category', r)), [{ name: td('filed'), data: c.rows.map((r) => r.counts.filed) },
      { name: td('closed'), data: c.rows.map((r) => r.counts.closed) }]);
    if (grid) {
      const names = grid.rows.map((r) => r.label || r.key);
      out.grid = bars(names, [{ name: td('filed'), data: grid.rows.map((r) => r.counts.filed) },
        { name: td('closed'), data: grid.rows.map((r) => r.counts.closed) }, { name: td('overdue'), data: grid.rows.map((r) => r.counts.overdue) }]);
      out.rates = bars(names, RATE_SERIES.map((k) => ({ name: td(k), data: grid.rows.map((r) => r.rates[k]) })), { percent: true });
    }
    if (tr) out.trend = bars(tr.rows.map((r) => r.key), [
      { name: td('filed'), data: tr.rows.map((r) => r.counts.filed) }, { name: td('closed'), data: tr.rows.map((r) => r.counts.closed) },
      { name: td('on_time_closing_rate'), type: 'line', yAxisIndex: 1, data: tr.rows.map((r) => r.rates.on_time_closing_rate) }], { second: true });
    return out;
  }, [data, grid]);

  const total = data.source?.total;
  const chartOf = (key: string, label: string, pick?: (name: string, i: number) => void) =>
    options[key] ? <Chart option={options[key]!} label={label} testid={`chart-${key}`} onPick={pick} /> : <p role="status" class="muted">…</p>;
  return (
    <div class="dashboard">
      <div class="page-head"><h1>{td('title')}</h1></div>
      <form class="dash-controls" onSubmit={(e) => e.preventDefault()}>
        <label>{td('from')} <input type="date" value={from} required onChange={(e) => setFrom((e.target as HTMLInputElement).value)} /></label>
        <label>{td('to')} <input type="date" value={to} required onChange={(e) => setTo((e.target as HTMLInputElement).value)} /></label>
        <label>{td('bucket')} <select value={bucket} onChange={(e) => setBucket((e.target as HTMLSelectElement).value as 'week' | 'month')}>
          <option value="week">{td('week')}</option><option value="month">{td('month')}</option></select></label>
      </form>
      <p class="hint">{td('cohortNote')}</p>
      {problem && <p class="error" role="alert">{problem}</p>}
      {total && (
        <dl class="kpis" aria-label={td('kpis')}>
          {KPI.map((k) => <div key={k}><dt>{td(k)}</dt><dd data-testid={`kpi-${k}`}>{total.counts[k]}</dd></div>)}
          {KPI_RATES.map((k) => <div key={k}><dt>{td(k)}</dt><dd data-testid={`kpi-${k}`}>{pct(total.rates[k])}</dd></div>)}
        </dl>
      )}
      <div class="dash-grid">
        <Section title={td('byGrid')} path={gridPath} testid="by-grid">
          <nav class="crumbs" aria-label={td('byGrid')}>
            {(grid?.path || []).map((p, i, all) => i < all.length - 1
              ? <span key={p.code}><button type="button" class="link" onClick={() => setParent(p.code)}>{p.name}</button> › </span>
              : <strong key={p.code} data-testid="grid-parent">{p.name}</strong>)}
            {parent && <> <button type="button" onClick={up}>{td('up')}</button></>}
          </nav>
          <p class="hint">{td('drillHint')}</p>
          {chartOf('grid', td('byGrid'), (_n, i) => drill(grid?.rows[i]))}
          {grid && <Table by="grid" rows={grid.rows} testid="table-grid" onPick={drill} />}
        </Section>
        <Section title={td('rates')} path={gridPath} testid="rates">
          {chartOf('rates', td('rates'), (_n, i) => drill(grid?.rows[i]))}
        </Section>
        <Section title={td('byStage')} path={`${base}&by=stage`} testid="by-stage">
          {chartOf('stage', td('byStage'))}
          {data.stage && <Table by="stage" rows={data.stage.rows} testid="table-stage" />}
        </Section>
        <Section title={td('bySource')} path={`${base}&by=source`} testid="by-source">
          {chartOf('source', td('bySource'))}
          {data.source && <Table by="source" rows={data.source.rows} testid="table-source" />}
        </Section>
        <Section title={td('byCategory')} path={`${base}&by=category`} testid="by-category">
          {chartOf('category', td('byCategory'))}
          {data.category && <Table by="category" rows={data.category.rows} testid="table-category" />}
        </Section>
        <Section title={td('trend')} path={`${base}&by=${bucket}`} testid="trend">
          {chartOf('trend', td('trend'))}
          {data.trend && <Table by={bucket} rows={data.trend.rows} testid="table-trend" />}
        </Section>
      </div>
      <AssessmentView tenant={props.tenant} />
    </div>
  );
}
