// Loads the diagram bundle (bpmn-js) on first use: its stylesheet, then its module. The file names
// come from the build (build.mjs defines __MODELER__); nothing of it is in the app's own script.
import type { DiagramModule } from './types';

declare const __MODELER__: { js: string; css: string };

let loading: Promise<DiagramModule> | null = null;

function stylesheet(href: string): Promise<void> {
  if (document.querySelector(`link[data-diagram]`)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const link = document.createElement('link');
    link.rel = 'stylesheet';
    link.href = href;
    link.dataset.diagram = '';
    link.onload = () => resolve();
    link.onerror = () => reject(new Error(`could not load ${href}`));
    document.head.append(link);
  });
}

export function loadDiagram(): Promise<DiagramModule> {
  loading ??= (async () => {
    await stylesheet(__MODELER__.css);
    const mod = await import(__MODELER__.js);
    return mod.diagram as DiagramModule;
  })().catch((e) => {
    loading = null; // a failed load (offline) may be tried again
    throw e;
  });
  return loading;
}
