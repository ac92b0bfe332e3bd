// The Sources pages' live charts: events per second in ten-second steps over the last 15
// minutes, drawn with Plotly (served from the Python package: nothing is fetched from the
// internet). The figure comes in the page's polled fragment (an element with data-rates naming
// its chart in data-chart), so after every htmx poll the chart is redrawn in place and moves
// on; the table beside it holds the same figures for readers without script.
(function () {
  "use strict";
  const COLOURS = ["#2b5d8a", "#b3471b", "#2f7d4a", "#8a6100", "#6a3d9a", "#a4161a", "#1b7f86", "#5c7080", "#9c4f96"];
  const CONFIG = { displayModeBar: false, responsive: true };

  function layout(box) {
    return {
      height: 220,
      margin: { t: 24, r: 10, b: 36, l: 48 },
      font: { family: "system-ui, sans-serif", size: 12, color: "#0b1f33" },
      legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom" },
      xaxis: { type: "date", tickformat: "%H:%M", automargin: true, fixedrange: true },
      yaxis: { rangemode: "tozero", automargin: true, fixedrange: true, title: { text: box.dataset.ylabel || "" } },
    };
  }

  function draw() {
    if (typeof Plotly === "undefined") return;
    for (const holder of document.querySelectorAll("[data-rates][data-chart]")) {
      const box = document.getElementById(holder.dataset.chart);
      if (!box) continue;
      let figure;
      try {
        figure = JSON.parse(holder.dataset.rates);
      } catch (error) {
        continue;
      }
      const traces = figure.traces.map((trace, index) => ({
        type: "scatter",
        mode: "lines",
        name: trace.name,
        x: figure.x,
        y: trace.y,
        line: { color: COLOURS[index % COLOURS.length], width: 2, shape: "hv" },
        hovertemplate: "%{x|%H:%M:%S}: %{y:.1f}",
      }));
      Plotly.react(box, traces, layout(box), CONFIG);
      box.dataset.drawn = String(Number(box.dataset.drawn || "0") + 1);
    }
  }

  document.addEventListener("DOMContentLoaded", draw);
  // Every poll brings a new figure (in place, or out of band on a source's page): redraw once
  // htmx has settled it.
  document.addEventListener("htmx:afterSettle", draw);
})();
