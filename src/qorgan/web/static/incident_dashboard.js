// The incident dashboard's charts, drawn with Plotly (served from the Python package: nothing is
// fetched from the internet) from GET /api/v1/incidents/stats, whose address the page gives in
// #incident-series's data-api. The page's tables hold the same figures for readers without
// script; labels come from the page (data attributes) in its language.
(function () {
  "use strict";
  const COLOURS = { low: "#2f7d4a", medium: "#8a6100", high: "#b3471b", critical: "#a4161a" };
  const SEVERITIES = ["low", "medium", "high", "critical"];
  const LAYOUT = {
    margin: { t: 24, r: 10, b: 30, l: 44 },
    font: { family: "system-ui, sans-serif", size: 12, color: "#0b1f33" },
  };
  const CONFIG = { displayModeBar: false, responsive: true };

  function empty(box, text) {
    Plotly.purge(box);
    box.classList.add("empty");
    box.textContent = text;
  }

  function series(box, data, labels) {
    const day = data.bucket === "day" ? 24 * 3600 * 1000 : null;
    const traces = SEVERITIES.map((severity) => ({
      type: "bar",
      name: labels[severity] || severity,
      x: data.series.map((p) => p.bucket),
      y: data.series.map((p) => p.counts[severity] || 0),
      marker: { color: COLOURS[severity] },
      hovertemplate: "%{x}: %{y}<extra>" + (labels[severity] || severity) + "</extra>",
    })).filter((t) => t.y.some((n) => n > 0));
    Plotly.react(box, traces, Object.assign({}, LAYOUT, {
      barmode: "stack", height: 220,
      legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom", traceorder: "reversed" },
      xaxis: { type: "date", tickformat: data.bucket === "month" ? "%m.%Y" : "%d.%m", automargin: true,
               dtick: day && data.series.length <= 14 ? day : undefined },
      yaxis: { rangemode: "tozero", automargin: true, fixedrange: true },
    }), CONFIG);
  }

  function classes(box, data, labels) {
    const rows = data.by_class.slice().reverse();
    Plotly.react(box, [{
      type: "bar", orientation: "h",
      x: rows.map((c) => c.count),
      y: rows.map((c) => labels[c.key || ""] || c.key),
      marker: { color: "#2b5d8a" }, hovertemplate: "%{y}: %{x}<extra></extra>",
    }], Object.assign({}, LAYOUT, {
      height: Math.max(160, 40 + 28 * rows.length),
      xaxis: { rangemode: "tozero", automargin: true, fixedrange: true },
      yaxis: { automargin: true, fixedrange: true, tickfont: { size: 11 } },
    }), CONFIG);
  }

  function times(box, data, labels, names) {
    const measures = data.times.map((t) => labels[t.measure] || t.measure);
    const trace = (key, name, colour) => ({
      type: "bar", name: name, x: measures, y: data.times.map((t) => t[key]),
      marker: { color: colour }, hovertemplate: "%{x}: %{y:.1f}<extra>" + name + "</extra>",
    });
    Plotly.react(box, [trace("mean_hours", names.mean, "#2b5d8a"), trace("p90_hours", names.p90, "#b3471b")],
      Object.assign({}, LAYOUT, {
        barmode: "group", height: 220,
        legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom" },
        xaxis: { automargin: true, fixedrange: true },
        yaxis: { title: { text: names.hours }, rangemode: "tozero", automargin: true, fixedrange: true },
      }), CONFIG);
  }

  async function draw() {
    const box = document.getElementById("incident-series");
    if (!box || typeof Plotly === "undefined") return;
    const response = await fetch(box.dataset.api, { credentials: "same-origin" });
    if (!response.ok) return;
    const data = await response.json();
    const classBox = document.getElementById("incident-classes");
    const timesBox = document.getElementById("incident-times");
    if (!data.total) {
      for (const b of [box, classBox, timesBox]) if (b) empty(b, box.dataset.empty);
      return;
    }
    series(box, data, JSON.parse(box.dataset.severities || "{}"));
    if (classBox) classes(classBox, data, JSON.parse(box.dataset.classes || "{}"));
    if (timesBox) {
      times(timesBox, data, JSON.parse(box.dataset.measures || "{}"),
        { mean: box.dataset.mean, p90: box.dataset.p90, hours: box.dataset.hours });
    }
    box.dataset.drawn = String(data.series.length);
  }

  document.addEventListener("DOMContentLoaded", draw);
})();
