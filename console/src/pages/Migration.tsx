// Moving running instances of one key from a version to another: plan first (each waitable element's
// verdict: its target, how many wait there, problems that refuse the plan, notes), then execute.
import { useState } from 'preact/hooks';
import { api } from '../api';
import type { Definition } from './Models';
import { tm } from './models_i18n';

interface PlanElement {
  sourceElementId: string; targetElementId: string | null; type: string; targetType: string | null; waiting: number;
  problems: string[]; notes: string[];
}
interface Plan {
  valid: boolean; instances: number; sourceVersion: number; targetVersion: number; elements: PlanElement[];
  problems: Record<string, string[]>;
}
interface Outcome { plan: Plan; migrated: string[]; failed: { instanceId: string; message: string }[]; remaining: number }

export function Migration(props: { versions: Definition[]; onMigrated: () => void }) {
  const vs = props.versions;
  const [source, setSource] = useState(vs.length > 1 ? vs[1].id : vs[0].id);
  const [target, setTarget] = useState(vs[0].id);
  const [plan, setPlan] = useState<Plan | null>(null);
  const [outcome, setOutcome] = useState<Outcome | null>(null);
  const [problem, setProblem] = useState('');
  const [busy, setBusy] = useState(false);
  const key = vs[0].key;
  const body = { sourceDefinitionId: source, targetDefinitionId: target };

  const run = async (f: () => Promise<void>) => {
    setBusy(true);
    setProblem('');
    try {
      await f();
    } catch (e: any) {
      setProblem(e.message + (e.fields && Object.keys(e.fields).length ? ` ${JSON.stringify(e.fields)}` : ''));
    } finally {
      setBusy(false);
    }
  };
  const makePlan = (e: Event) => {
    e.preventDefault();
    setOutcome(null);
    run(async () => setPlan(await api<Plan>('/migration/plan', { method: 'POST', json: body })));
  };
  const execute = () => run(async () => {
    const o = await api<Outcome>('/migration/execute', { method: 'POST', json: body });
    setOutcome(o);
    setPlan(o.plan);
    props.onMigrated();
  });
  const pick = (set: (n: number) => void) => (e: Event) => { set(Number((e.target as HTMLSelectElement).value)); setPlan(null); };

  return (
    <details class="migration" data-testid={`migration-${key}`}>
      <summary>{tm('migrate')}</summary>
      <form class="filters" onSubmit={makePlan}>
        <div class="field"><label for={`mig-from-${key}`}>{tm('from')}</label>
          <select id={`mig-from-${key}`} value={source} onChange={pick(setSource)}>
            {vs.map((d) => <option key={d.id} value={d.id}>v{d.version}</option>)}</select></div>
        <div class="field"><label for={`mig-to-${key}`}>{tm('to')}</label>
          <select id={`mig-to-${key}`} value={target} onChange={pick(setTarget)}>
            {vs.map((d) => <option key={d.id} value={d.id}>v{d.version}</option>)}</select></div>
        <button type="submit" disabled={busy}>{tm('plan')}</button>
      </form>
      {problem && <p class="error" role="alert">{problem}</p>}
      {plan && (
        <div class="plan" data-valid={String(plan.valid)}>
          <p class={plan.valid ? '' : 'error'} role="status">
            {plan.valid ? tm('planValid', { n: plan.instances }) : tm('planInvalid', { n: plan.instances })}</p>
          <table>
            <thead><tr><th scope="col">{tm('element')}</th><th scope="col">{tm('type')}</th><th scope="col">{tm('target')}</th>
              <th scope="col">{tm('waiting')}</th><th scope="col">{tm('problems')}</th><th scope="col">{tm('notes')}</th></tr></thead>
            <tbody>
              {plan.elements.map((el) => (
                <tr key={el.sourceElementId} class={el.problems.length ? 'refused' : ''}>
                  <th scope="row">{el.sourceElementId}</th><td>{el.type}</td>
                  <td>{el.targetElementId ?? tm('none')}{el.targetType && el.targetType !== el.type ? ` (${el.targetType})` : ''}</td>
                  <td>{el.waiting}</td>
                  <td class={el.problems.length ? 'error' : 'muted'}>{el.problems.join('; ') || tm('none')}</td>
                  <td class="muted">{el.notes.join('; ') || tm('none')}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {Object.keys(plan.problems).length > 0 && (
            <ul class="error">{Object.entries(plan.problems).map(([k, v]) => <li key={k}>{k}: {v.join('; ')}</li>)}</ul>)}
          {plan.valid && plan.instances > 0 && !outcome && (
            <button type="button" class="primary" disabled={busy} onClick={execute}>{tm('execute')}</button>)}
          {outcome && (
            <p role="status">{tm('migrated', { n: outcome.migrated.length, f: outcome.failed.length, r: outcome.remaining })}</p>)}
        </div>
      )}
    </details>
  );
}
