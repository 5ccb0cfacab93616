// A version's diagram coloured by where its instances spend their time and where they fail
// (GET /process-definition/{id}/heatmap), with the same figures as a table.
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, request } from '../api';
import { loadDiagram } from '../modeler/load';
import type { Heat, HeatView } from '../modeler/types';
import type { Definition } from './Models';
import { span, tm } from './models_i18n';

interface HeatMap { definitionId: number; instances: number; elements: Heat[] }

function note(h: Heat): string {
  const parts = [tm('heatNote', { n: h.entered })];
  if (h.meanSeconds !== null) parts.push(`⌀ ${span(h.meanSeconds)}`);
  if (h.incidents) parts.push(`⚠ ${h.incidents}`);
  return parts.join(' · ');
}

export function ModelHeat(props: { id: string }) {
  const canvas = useRef<HTMLDivElement>(null);
  const [def, setDef] = useState<Definition | null>(null);
  const [heat, setHeat] = useState<HeatMap | null>(null);
  const [failure, setFailure] = useState('');

  useEffect(() => {
    let view: HeatView | null = null;
    let gone = false;
    (async () => {
      try {
        const id = encodeURIComponent(props.id);
        const [d, xml, h, diagram] = await Promise.all([
          api<Definition>(`/process-definition/${id}`),
          request(`/process-definition/${id}/xml`).then((r) => r.text()),
          api<HeatMap>(`/process-definition/${id}/heatmap`),
          loadDiagram(),
        ]);
        if (gone) return;
        setDef(d);
        setHeat(h);
        view = diagram.createHeatView(canvas.current!, note);
        await view.open(xml, h.elements);
      } catch (e: any) {
        if (!gone) setFailure(e.message);
      }
    })();
    return () => { gone = true; view?.destroy(); };
  }, [props.id]);

  return (
    <section aria-labelledby="heat-title" class="model-heat">
      <p><a href="/models">← {tm('backToModels')}</a></p>
      <h1 id="heat-title">{def ? tm('heatTitle', { key: def.key, v: def.version }) : tm('loadingDiagram')}</h1>
      {failure && <p class="error" role="alert">{failure}</p>}
      <p class="muted">{tm('heatLegend')}{heat && ` ${tm('heatOverInstances', { n: heat.instances })}`}</p>
      <div class="modeler-canvas heat-canvas" ref={canvas} data-testid="heatmap" aria-hidden="true" />
      {heat && (
        <table class="heat-table">
          <thead><tr><th scope="col">{tm('element')}</th><th scope="col">{tm('reached')}</th><th scope="col">{tm('completed')}</th>
            <th scope="col">{tm('waiting')}</th><th scope="col">{tm('mean')}</th><th scope="col">{tm('p90')}</th>
            <th scope="col">{tm('incidents')}</th></tr></thead>
          <tbody>
            {heat.elements.map((h) => (
              <tr key={h.elementId} data-element={h.elementId}>
                <th scope="row"><code>{h.elementId}</code></th><td>{h.entered}</td><td>{h.completed}</td><td>{h.waiting}</td>
                <td>{span(h.meanSeconds)}</td><td>{span(h.p90Seconds)}</td>
                <td class={h.openIncidents ? 'late' : ''}>{h.incidents}{h.openIncidents ? ` (${h.openIncidents})` : ''}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
