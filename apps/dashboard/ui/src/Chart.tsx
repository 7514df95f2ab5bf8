import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export interface ChartSeries { label: string; color: string; values: number[] }

/** A small uPlot line chart over time (`times` in ms). */
export function Chart(props: { times: number[]; series: ChartSeries[]; height?: number; width?: number; testId?: string }) {
  const el = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const shape = props.series.map((s) => s.label).join('|');
  useEffect(() => {
    if (!el.current) return;
    const opts: uPlot.Options = {
      width: props.width ?? 520, height: props.height ?? 160,
      series: [{}, ...props.series.map((s) => ({ label: s.label, stroke: s.color, width: 2 }))],
      axes: [{}, { size: 40 }],
      legend: { show: true },
    };
    plot.current = new uPlot(opts, [[], ...props.series.map(() => [])], el.current);
    return () => { plot.current?.destroy(); plot.current = null; };
  }, [shape]);
  useEffect(() => {
    plot.current?.setData([props.times.map((t) => t / 1000), ...props.series.map((s) => s.values)]);
  }, [props.times, props.series]);
  return <div class="chart" ref={el} data-testid={props.testId} />;
}
