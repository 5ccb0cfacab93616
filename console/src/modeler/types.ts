// The contract between the app and the lazily loaded diagram bundle (src/modeler/diagram.ts, built as
// its own entry so bpmn-js never weighs on 首页's first load). Types only: nothing here is bundled.

export interface Problem { file?: string; element?: string | null; problem: string }

export type TimerKind = 'timeDate' | 'timeDuration' | 'timeCycle';

/** What the properties form edits for the selected element. */
export interface Selected {
  id: string;
  type: string;
  name: string;
  timer: { kind: TimerKind; expression: string } | null;
}

export interface Heat {
  elementId: string; entered: number; completed: number; waiting: number;
  meanSeconds: number | null; p90Seconds: number | null; incidents: number; openIncidents: number;
}

export interface Editor {
  /** Open a model; returns the import's warnings (elements bpmn-js could not read). */
  open(xml: string): Promise<string[]>;
  save(): Promise<string>;
  /** Mark the elements a refused deploy names; returns the problems naming no element on the diagram. */
  markProblems(problems: Problem[]): Problem[];
  clearProblems(): void;
  select(id: string): void;
  onSelect(f: (s: Selected | null) => void): void;
  rename(id: string, name: string): void;
  setTimer(id: string, kind: TimerKind, expression: string): void;
  destroy(): void;
}

export interface HeatView {
  open(xml: string, heat: Heat[]): Promise<void>;
  destroy(): void;
}

export interface DiagramModule {
  createEditor(container: HTMLElement): Editor;
  createHeatView(container: HTMLElement, describe: (h: Heat) => string): HeatView;
}
