// The alerts chart: alerts per day and level, for the filters in the form, drawn with Plotly
// (served from the Python package; nothing is fetched from the internet).
(function () {
  "use strict";
  const COLOURS = {
    informational: "#8aa4bf", low: "#4f9d69", medium: "#e0a526", high: "#d9622b", critical: "#b3172b",
  };

  function query() {
    const form = document.getElementById("filters");
    const params = new URLSearchParams();
    for (const [key, value] of (form ? new FormData(form) : new FormData())) {
      if (value !== "" && key !== "group") params.append(key, value);
    }
    params.set("bucket", "day");
    return params.toString();
  }

  async function draw() {
    const box = document.getElementById("timeline");
    if (!box || typeof Plotly === "undefined") return;
    const labels = JSON.parse(box.dataset.levels || "{}");
    const response = await fetch(box.dataset.api + "?" + query(), { credentials: "same-origin" });
    if (!response.ok) return;
    const points = await response.json();
    const days = [...new Set(points.map((p) => p.bucket.slice(0, 10)))].sort();
    const traces = Object.keys(COLOURS)
      .map((level) => {
        const counts = new Map(points.filter((p) => p.level === level).map((p) => [p.bucket.slice(0, 10), p.count]));
        return { type: "bar", name: labels[level] || level, x: days, y: days.map((d) => counts.get(d) || 0), marker: { color: COLOURS[level] } };
      })
      .filter((t) => t.y.some((v) => v > 0));
    Plotly.react(box, traces, {
      barmode: "stack", height: 260, margin: { t: 10, r: 10, b: 40, l: 40 },
      legend: { orientation: "h" }, xaxis: { type: "category" },
    }, { displayModeBar: false, responsive: true });
    box.dataset.drawn = String(points.length);
  }

  document.addEventListener("DOMContentLoaded", draw);
  document.addEventListener("htmx:afterSwap", (event) => {
    if (event.detail.target && event.detail.target.id === "results") draw();
  });
})();
