// The BPMN modeler: opens a deployed version's XML in bpmn-js (loaded on first use), edits it — on the
// canvas, or the selected element's name and timer in the properties form — and deploys the result as
// a new version through POST /deployment. A refused deploy's problems are marked on their elements.
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, ApiError, request } from '../api';
import type { Editor, Problem, Selected, TimerKind } from '../modeler/types';
import { loadDiagram } from '../modeler/load';
import type { Definition } from './Models';
import { tm } from './models_i18n';

interface Deployed { id: number; warnings?: Problem[]; files: { name: string; processes: { key: string; version: number; created: boolean }[] }[] }

function Properties(props: { editor: Editor; selected: Selected | null }) {
  const s = props.selected;
  if (!s) return <p class="muted">{tm('noSelection')}</p>;
  return (
    <div data-testid="properties" data-element={s.id}>
      <dl class="facts"><dt>{tm('elementId')}</dt><dd><code>{s.id}</code></dd><dt>{tm('type')}</dt><dd>{s.type.replace('bpmn:', '')}</dd></dl>
      <div class="field"><label for="prop-name">{tm('name')}</label>
        <input id="prop-name" value={s.name} onChange={(e) => props.editor.rename(s.id, (e.target as HTMLInputElement).value)} /></div>
      {s.timer && (
        <fieldset class="field"><legend>{tm('timer')}</legend>
          <label for="prop-timer-kind">{tm('timerKind')}</label>
          <select id="prop-timer-kind" value={s.timer.kind}
            onChange={(e) => props.editor.setTimer(s.id, (e.target as HTMLSelectElement).value as TimerKind, s.timer!.expression)}>
            {(['timeDate', 'timeDuration', 'timeCycle'] as const).map((k) => <option key={k} value={k}>{tm(k)}</option>)}
          </select>
          <label for="prop-timer-expr">{tm('timerExpression')}</label>
          <input id="prop-timer-expr" value={s.timer.expression} spellcheck={false}
            onChange={(e) => props.editor.setTimer(s.id, s.timer!.kind, (e.target as HTMLInputElement).value)} />
        </fieldset>
      )}
    </div>
  );
}

export function ModelEdit(props: { id: string }) {
  const canvas = useRef<HTMLDivElement>(null);
  const [def, setDef] = useState<Definition | null>(null);
  const [editor, setEditor] = useState<Editor | null>(null);
  const [selected, setSelected] = useState<Selected | null>(null);
  const [warnings, setWarnings] = useState<string[]>([]);
  const [problems, setProblems] = useState<Problem[] | null>(null);
  const [result, setResult] = useState<{ text: string; ok: boolean } | null>(null);
  const [failure, setFailure] = useState('');
  const [busy, setBusy] = useState(false);
  const [name, setName] = useState('');

  useEffect(() => {
    let made: Editor | null = null;
    let gone = false;
    (async () => {
      try {
        const [d, xml, diagram] = await Promise.all([
          api<Definition>(`/process-definition/${encodeURIComponent(props.id)}`),
          request(`/process-definition/${encodeURIComponent(props.id)}/xml`).then((r) => r.text()),
          loadDiagram(),
        ]);
        if (gone) return;
        setDef(d);
        made = diagram.createEditor(canvas.current!);
        made.onSelect(setSelected);
        setWarnings(await made.open(xml));
        setEditor(made);
      } catch (e: any) {
        if (!gone) setFailure(e.message);
      }
    })();
    return () => { gone = true; made?.destroy(); };
  }, [props.id]);

  const deploy = async (e: Event) => {
    e.preventDefault();
    if (!editor || !def) return;
    setBusy(true);
    setResult(null);
    setFailure('');
    try {
      const xml = await editor.save();
      const form = new FormData();
      form.append('file', new Blob([xml], { type: 'application/xml' }), `${def.key}.bpmn`);
      if (name.trim()) form.append('name', name.trim());
      const r = await request('/deployment', { method: 'POST', body: form });
      const body: Deployed = await r.json();
      const p = body.files.flatMap((f) => f.processes).find((x) => x.key === def.key);
      editor.clearProblems();
      setProblems(body.warnings?.length ? body.warnings : null);
      setResult({ ok: true, text: r.status === 201 ? tm('deployedAs', { v: p?.version ?? '?' }) : tm('unchanged', { v: p?.version ?? '?' }) });
    } catch (err) {
      if (err instanceof ApiError && Array.isArray((err.details as any).problems)) {
        const list = (err.details as any).problems as Problem[];
        editor.markProblems(list);
        setProblems(list);
        setResult({ ok: false, text: tm('refused', { n: list.length }) });
      } else {
        setFailure((err as Error).message);
      }
    } finally {
      setBusy(false);
    }
  };

  return (
    <section aria-labelledby="edit-title" class="model-edit">
      <p><a href="/models">← {tm('backToModels')}</a></p>
      <h1 id="edit-title">{def ? tm('editing', { key: def.key, v: def.version }) : tm('loadingDiagram')}</h1>
      {failure && <p class="error" role="alert">{failure}</p>}
      <div class="modeler-layout">
        <div class="modeler-canvas" ref={canvas} data-testid="modeler" aria-label="BPMN" />
        <aside class="card modeler-side" aria-label={tm('properties')}>
          <h2>{tm('properties')}</h2>
          {editor && <Properties editor={editor} selected={selected} />}
          <form onSubmit={deploy} class="deploy-form">
            <div class="field"><label for="deploy-name">{tm('deployName')}</label>
              <input id="deploy-name" maxLength={200} value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} /></div>
            <button type="submit" class="primary" disabled={!editor || busy}>{busy ? tm('deploying') : tm('deploy')}</button>
          </form>
          {result && <p role="status" class={result.ok ? 'notice' : 'error'} data-testid="deploy-result">{result.text}</p>}
          {problems && (
            <section aria-labelledby="problems-title" data-testid="problems">
              <h2 id="problems-title">{result?.ok ? tm('deployWarnings') : tm('problemsOnDiagram')}</h2>
              <ul class="problems">
                {problems.map((p, i) => (
                  <li key={i} data-element={p.element || ''}>
                    {p.element
                      ? <button type="button" class="linkish" onClick={() => editor?.select(p.element!)}><code>{p.element}</code></button>
                      : <span>{tm('noElement')}</span>}{' '}{p.problem}
                  </li>
                ))}
              </ul>
            </section>
          )}
          {warnings.length > 0 && (
            <details><summary>{tm('warnings')} ({warnings.length})</summary><ul>{warnings.map((w, i) => <li key={i}>{w}</li>)}</ul></details>)}
        </aside>
      </div>
    </section>
  );
}
