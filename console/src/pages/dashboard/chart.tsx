// One ECharts chart in a Preact component. Only what the dashboard draws is imported (echarts/core with
// bar, line and pie charts, their grid, tooltip, legend and aria components, the canvas renderer), and only
// this page's chunk imports it: neither 首页's first load nor the offline shell carries ECharts.
import { BarChart, LineChart, PieChart } from 'echarts/charts';
import { AriaComponent, GridComponent, LegendComponent, TooltipComponent } from 'echarts/components';
import * as echarts from 'echarts/core';
import { CanvasRenderer } from 'echarts/renderers';
import { useEffect, useRef } from 'preact/hooks';

echarts.use([BarChart, LineChart, PieChart, AriaComponent, GridComponent, LegendComponent, TooltipComponent,
  CanvasRenderer]);

export type Option = Record<string, unknown>;

export function Chart(props: { option: Option; label: string; testid: string; onPick?: (name: string, index: number) => void }) {
  const box = useRef<HTMLDivElement>(null);
  const chart = useRef<echarts.ECharts | null>(null);
  const pick = useRef(props.onPick);
  pick.current = props.onPick;
  useEffect(() => {
    const c = echarts.init(box.current!, undefined, { renderer: 'canvas' });
    chart.current = c;
    c.on('click', (p: any) => pick.current?.(String(p.name), Number(p.dataIndex)));
    const resize = () => c.resize();
    addEventListener('resize', resize);
    return () => { removeEventListener('resize', resize); c.dispose(); chart.current = null; };
  }, []);
  useEffect(() => {
    chart.current?.setOption({ aria: { enabled: true }, animation: false, ...props.option }, { notMerge: true });
  }, [props.option]);
  return <div class="chart" ref={box} role="img" aria-label={props.label} data-testid={props.testid} />;
}
