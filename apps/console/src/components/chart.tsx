// Time-series charts with uPlot (a small, maintained canvas chart library).
// uPlot draws on a canvas and sizes elements through the CSSOM, which the
// console's Content-Security-Policy (style-src 'self') allows.
import { useEffect, useRef } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

export interface Series {
  label: string;
  values: number[];
  /** A CSS colour. */
  stroke: string;
}

export function TimeChart({ title, times, series }: { title: string; times: number[]; series: Series[] }) {
  const holder = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | undefined>(undefined);
  const shape = series.map((one) => one.label).join("|");

  // biome-ignore lint/correctness/useExhaustiveDependencies: the chart is rebuilt only when its series change
  useEffect(() => {
    const element = holder.current;
    if (!element) return;
    const options: uPlot.Options = {
      width: Math.max(280, element.clientWidth),
      height: 220,
      series: [
        {},
        ...series.map((one) => ({ label: one.label, stroke: one.stroke, width: 2, points: { show: false } })),
      ],
      axes: [{}, { size: 50 }],
      scales: { x: { time: true } },
      legend: { live: true },
    };
    plot.current = new uPlot(options, [[], ...series.map(() => [])], element);
    const resize = new ResizeObserver(() => {
      plot.current?.setSize({ width: Math.max(280, element.clientWidth), height: 220 });
    });
    resize.observe(element);
    return () => {
      resize.disconnect();
      plot.current?.destroy();
      plot.current = undefined;
    };
  }, [shape]);

  useEffect(() => {
    plot.current?.setData([times, ...series.map((one) => one.values)]);
  }, [times, series]);

  return (
    <figure className="chart">
      <figcaption>{title}</figcaption>
      <div ref={holder} role="img" aria-label={title} />
    </figure>
  );
}
