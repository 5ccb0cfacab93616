// 考核评价 on the dashboard: the indicators of a month computed now for districts, towns, a post or
// departments (GET /assessment/indicators), and the published evaluations as published
// (GET /assessment/evaluations/{id}), each with CSV/Excel exports.
import { useEffect, useState } from 'preact/hooks';
import { api } from '../../api';
import { when } from '../../i18n';
import { gridName, useNames } from '../../names';
import { ExportButtons } from './download';
import { DKey, td } from './i18n';

interface Group { key: Record<string, string>; counts: Record<string, number>; rates: Record<string, number | null>;
  score: number | null; grade: string | null }
interface Evaluation { id: number; period: string; by: string; publishedAt: string }
const BY: Record<string, DKey> = { 'region:district': 'by_district', 'region:town': 'by_town', 'post:inspector': 'by_inspector',
  'post:supervisor': 'by_supervisor', department: 'by_department' };
const COLS: DKey[] = ['due', 'closed', 'closed_on_time', 'overdue'];
const RATES: DKey[] = ['closing_rate', 'on_time_closing_rate'];
const pct = (v: number | null | undefined) => (v === null || v === undefined ? '—' : `${v}%`);

function lastMonth(): string {
  const d = new Date();
  d.setDate(1);
  d.setMonth(d.getMonth() - 1);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}`;
}

function Groups(props: { groups: Group[]; testid: string; tenant: string }) {
  const names = useNames(props.tenant);
  if (!props.groups.length) return <p class="muted">{td('none')}</p>;
  return (
    <table data-testid={props.testid}>
      <thead><tr><th scope="col">{td('name')}</th>{COLS.map((k) => <th scope="col" key={k}>{td(k)}</th>)}
        {RATES.map((k) => <th scope="col" key={k}>{td(k)}</th>)}<th scope="col">{td('score')}</th><th scope="col">{td('grade')}</th></tr></thead>
      <tbody>
        {props.groups.map((g) => {
          const code = Object.values(g.key).join(' · ');
          const name = Object.values(g.key).map((v) => gridName(names, v)).join(' · ');
          return (
            <tr key={code}><th scope="row">{name}</th>{COLS.map((k) => <td key={k}>{g.counts[k]}</td>)}
              {RATES.map((k) => <td key={k}>{pct(g.rates[k])}</td>)}<td>{g.score ?? '—'}</td><td>{g.grade ?? '—'}</td></tr>
          );
        })}
      </tbody>
    </table>
  );
}

export function AssessmentView(props: { tenant: string }) {
  const [period, setPeriod] = useState(lastMonth);
  const [by, setBy] = useState('region:district');
  const [groups, setGroups] = useState<Group[] | null>(null);
  const [published, setPublished] = useState<Evaluation[]>([]);
  const [chosen, setChosen] = useState<number | null>(null);
  const [shown, setShown] = useState<Group[] | null>(null);
  const [problem, setProblem] = useState('');
  const path = `/assessment/indicators?tenant=${props.tenant}&period=${period}&by=${by}`;
  useEffect(() => {
    if (!props.tenant || !period) return;
    setProblem('');
    api<{ groups: Group[] }>(path).then((b) => setGroups(b.groups), (e) => { setGroups(null); setProblem(e.message); });
  }, [props.tenant, period, by]);
  useEffect(() => {
    if (props.tenant) api<Evaluation[]>(`/assessment/evaluations?tenant=${props.tenant}`).then(setPublished, () => setPublished([]));
  }, [props.tenant]);
  useEffect(() => {
    if (chosen !== null) api<{ figures: { groups: Group[] } }>(`/assessment/evaluations/${chosen}`).then((b) => setShown(b.figures.groups));
  }, [chosen]);
  return (
    <section class="card assess" aria-labelledby="h-assess" data-testid="assessment">
      <div class="dash-head"><h2 id="h-assess">{td('assessment')}</h2><ExportButtons path={path} what={td('assessment')} /></div>
      <form onSubmit={(e) => e.preventDefault()}>
        <label>{td('period')} <input type="month" value={period} required onChange={(e) => setPeriod((e.target as HTMLInputElement).value)} /></label>
        <label>{td('groupBy')} <select value={by} onChange={(e) => setBy((e.target as HTMLSelectElement).value)}>
          {Object.entries(BY).map(([v, k]) => <option key={v} value={v}>{td(k)}</option>)}</select></label>
      </form>
      {problem && <p class="error" role="alert">{problem}</p>}
      {groups && <Groups groups={groups} testid="assessment-groups" tenant={props.tenant} />}
      <h3>{td('published')}</h3>
      {published.length === 0 ? <p class="muted">{td('none')}</p> : (
        <form onSubmit={(e) => e.preventDefault()}>
          <label>{td('choose')} <select value={chosen ?? ''} onChange={(e) => setChosen(Number((e.target as HTMLSelectElement).value) || null)}>
            <option value="">—</option>
            {published.map((p) => <option key={p.id} value={p.id}>{p.period} · {p.by} · {when(p.publishedAt)}</option>)}</select></label>
          {chosen !== null && <ExportButtons path={`/assessment/evaluations/${chosen}`} what={td('published')} />}
        </form>
      )}
      {shown && <Groups groups={shown} testid="evaluation-groups" tenant={props.tenant} />}
    </section>
  );
}
