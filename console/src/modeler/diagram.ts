// The diagram bundle: bpmn-js's modeler and viewer behind the small interface of ./types.ts. Built as
// its own entry (build.mjs) with its CSS and the bpmn icon font, loaded only by the models pages.
// bpmn-js shows the bpmn.io watermark (a link to bpmn.io); its licence requires it to stay visible.
import Modeler from 'bpmn-js/lib/Modeler';
import NavigatedViewer from 'bpmn-js/lib/NavigatedViewer';
import 'bpmn-js/dist/assets/diagram-js.css';
import 'bpmn-js/dist/assets/bpmn-js.css';
import 'bpmn-js/dist/assets/bpmn-font/css/bpmn.css';
import './diagram.css';
import type { DiagramModule, Editor, Heat, HeatView, Problem, Selected, TimerKind } from './types';

const KINDS: TimerKind[] = ['timeDate', 'timeDuration', 'timeCycle'];

function timerOf(bo: any): any {
  return (bo.eventDefinitions || []).find((d: any) => d.$type === 'bpmn:TimerEventDefinition') || null;
}

function describe(element: any): Selected {
  const bo = element.businessObject;
  const def = timerOf(bo);
  const kind = def && KINDS.find((k) => def[k]);
  return {
    id: element.id, type: element.type, name: bo.name || '',
    timer: def ? { kind: kind || 'timeDuration', expression: kind ? def[kind].body || '' : '' } : null,
  };
}

function text(tag: string, className: string, content: string): HTMLElement {
  const el = document.createElement(tag);
  el.className = className;
  el.textContent = content;
  return el;
}

export function createEditor(container: HTMLElement): Editor {
  const modeler: any = new Modeler({ container });
  (container as any).bpmnModeler = modeler; // for the browser tests: the modeling API on this instance
  const canvas = modeler.get('canvas');
  const overlays = modeler.get('overlays');
  const registry = modeler.get('elementRegistry');
  const modeling = modeler.get('modeling');
  const moddle = modeler.get('moddle');
  let marked: string[] = [];
  let selectListener: (s: Selected | null) => void = () => {};

  modeler.on('selection.changed', (e: any) => {
    const el = e.newSelection.length === 1 ? e.newSelection[0] : null;
    selectListener(el && el.type !== 'label' ? describe(el) : null);
  });
  modeler.on('element.changed', (e: any) => {
    const sel = modeler.get('selection').get();
    if (sel.length === 1 && sel[0] === e.element) selectListener(describe(e.element));
  });

  const editor: Editor = {
    async open(xml) {
      const result = await modeler.importXML(xml);
      canvas.zoom('fit-viewport', 'auto');
      return (result.warnings || []).map((w: any) => String(w.message || w));
    },
    async save() {
      const { xml } = await modeler.saveXML({ format: true });
      return xml;
    },
    markProblems(problems: Problem[]) {
      editor.clearProblems();
      const unplaced: Problem[] = [];
      const byElement = new Map<string, string[]>();
      for (const p of problems) {
        if (p.element && registry.get(p.element)) byElement.set(p.element, [...(byElement.get(p.element) || []), p.problem]);
        else unplaced.push(p);
      }
      for (const [id, list] of byElement) {
        canvas.addMarker(id, 'gl-problem');
        const badge = text('div', 'gl-problem-badge', `⚠ ${list.length}`);
        badge.title = list.join('\n');
        badge.setAttribute('role', 'note');
        badge.setAttribute('data-element', id);
        badge.setAttribute('aria-label', `${id}: ${list.join('; ')}`);
        overlays.add(id, 'gl-problems', { position: { top: -14, right: 14 }, html: badge });
        marked.push(id);
      }
      return unplaced;
    },
    clearProblems() {
      for (const id of marked) if (registry.get(id)) canvas.removeMarker(id, 'gl-problem');
      overlays.remove({ type: 'gl-problems' });
      marked = [];
    },
    select(id) {
      const el = registry.get(id);
      if (!el) return;
      modeler.get('selection').select(el);
      canvas.scrollToElement(el);
    },
    onSelect(f) {
      selectListener = f;
    },
    rename(id, name) {
      const el = registry.get(id);
      if (el) modeling.updateLabel(el, name);
    },
    setTimer(id, kind, expression) {
      const el = registry.get(id);
      const def = el && timerOf(el.businessObject);
      if (!def) throw new Error(`${id} has no timer`);
      const changes: Record<string, unknown> = { timeDate: undefined, timeDuration: undefined, timeCycle: undefined };
      changes[kind] = moddle.create('bpmn:Expression', { body: expression });
      modeling.updateModdleProperties(el, def, changes);
    },
    destroy() {
      modeler.destroy();
    },
  };
  return editor;
}

/** Five shades by where an element's mean time ranks among the others; incidents outlined red. */
function shade(value: number, sorted: number[]): number {
  if (sorted.length < 2) return 2;
  const below = sorted.filter((v) => v < value).length;
  return Math.min(4, Math.floor((below / (sorted.length - 1)) * 4.999));
}

export function createHeatView(container: HTMLElement, label: (h: Heat) => string): HeatView {
  const viewer: any = new NavigatedViewer({ container });
  return {
    async open(xml, heat) {
      await viewer.importXML(xml);
      const canvas = viewer.get('canvas');
      const overlays = viewer.get('overlays');
      const registry = viewer.get('elementRegistry');
      const means = heat.map((h) => h.meanSeconds).filter((v): v is number => v !== null).sort((a, b) => a - b);
      for (const h of heat) {
        if (!registry.get(h.elementId)) continue;
        if (h.meanSeconds !== null) canvas.addMarker(h.elementId, `gl-heat-${shade(h.meanSeconds, means)}`);
        else if (h.entered) canvas.addMarker(h.elementId, 'gl-heat-passed');
        if (h.incidents) canvas.addMarker(h.elementId, 'gl-heat-failed');
        const note = text('div', h.incidents ? 'gl-heat-note failed' : 'gl-heat-note', label(h));
        note.setAttribute('data-element', h.elementId);
        overlays.add(h.elementId, 'gl-heat', { position: { bottom: 4, left: 0 }, html: note });
      }
      canvas.zoom('fit-viewport', 'auto');
    },
    destroy() {
      viewer.destroy();
    },
  };
}

export const diagram: DiagramModule = { createEditor, createHeatView };
