// /admin/grids: import (replace) the tenant's grids from a GeoJSON FeatureCollection — checked first
// (dry run: features, warnings or every problem by feature), then imported.
import { useState } from 'preact/hooks';
import { request, ApiError } from '../../api';
import { ta } from './strings';

interface Problem { index?: number; code?: string; problem: string }

export function GridImport(p: { tenant: string }) {
  const [file, setFile] = useState<File | null>(null);
  const [report, setReport] = useState<Record<string, any> | null>(null);
  const [problems, setProblems] = useState<Problem[]>([]);
  const [error, setError] = useState('');
  const [checked, setChecked] = useState(false);
  const [busy, setBusy] = useState(false);
  const send = async (dryRun: boolean) => {
    if (!file || busy) return;
    setBusy(true); setError(''); setProblems([]); setReport(null);
    try {
      const r = await request(`/grids/import?tenant=${p.tenant}&dryRun=${dryRun}`, {
        method: 'POST', body: await file.text(), headers: { 'Content-Type': 'application/geo+json' } });
      setReport(await r.json());
      setChecked(dryRun);
    } catch (e) {
      setChecked(false);
      if (e instanceof ApiError) {
        setError(e.message);
        setProblems((e.details.problems as Problem[]) || []);
      } else setError(String((e as Error).message || e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <section aria-labelledby="gi-title">
      <h1 id="gi-title">{ta('gridImport')}</h1>
      <p>{ta('gridImportHelp', { tenant: p.tenant })} <a href="/map">{ta('seeMap')}</a></p>
      <div class="field"><label for="gi-file">{ta('geojsonFile')}</label>
        <input id="gi-file" type="file" accept=".json,.geojson,application/geo+json,application/json"
               aria-invalid={error ? true : undefined} aria-describedby={error ? 'gi-err' : undefined}
               onChange={(e) => { setFile((e.target as HTMLInputElement).files?.[0] || null); setChecked(false); setReport(null); }} />
        {error && <p class="field-error" id="gi-err" role="alert">{error}</p>}</div>
      <button type="button" disabled={!file || busy} onClick={() => send(true)}>{ta('check')}</button>
      <button type="button" class="primary" disabled={!checked || busy} onClick={() => send(false)}>{ta('import')}</button>
      {problems.length > 0 && <ul class="error">{problems.map((x, i) => (
        <li key={i}>{ta('feature')} {x.index ?? '—'} {x.code ? `(${x.code})` : ''}: {x.problem}</li>))}</ul>}
      {report && (
        <div role="status" class="notice">
          {report.dryRun ? ta('dryRunOk', { n: report.features }) : ta('imported', {
            added: report.added, changed: report.changed, retired: report.retired, unchanged: report.unchanged })}
          {(report.warnings || []).length > 0 && <ul>{report.warnings.map((w: unknown, i: number) => <li key={i}>{typeof w === 'string' ? w : JSON.stringify(w)}</li>)}</ul>}
        </div>
      )}
    </section>
  );
}
