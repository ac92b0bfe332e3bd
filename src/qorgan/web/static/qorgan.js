// The alerts inbox: the chart over time (Plotly, served from the Python package: nothing is
// fetched from the internet), keyboard triage, row selection for bulk actions, and focus kept
// where it was after an action.
(function () {
  "use strict";
  const COLOURS = {
    informational: "#5c7080", low: "#2f7d4a", medium: "#8a6100", high: "#b3471b", critical: "#a4161a",
  };
  const LEVELS = ["informational", "low", "medium", "high", "critical"];
  const HOUR = 3600 * 1000;

  // ---------------------------------------------------------------- the chart
  function chartQuery() {
    // The filters form holds the whole view (it is sent again with every result).
    const form = document.getElementById("filters");
    const params = new URLSearchParams();
    for (const [key, value] of (form ? new FormData(form) : new FormData())) {
      if (!["group", "sort", "page"].includes(key) && (value !== "" || key === "status")) params.append(key, value);
    }
    params.set("bucket", "auto");
    return params.toString();
  }

  function announce() {
    const count = document.getElementById("result-count");
    const live = document.getElementById("announce");
    if (count && live) live.textContent = count.textContent.replace(/\s+/g, " ").trim();
  }

  function summarise(box, data, labels) {
    const summary = document.getElementById("timeline-summary");
    if (!summary) return;
    if (!data.points.length) {
      summary.textContent = box.dataset.empty;
      return;
    }
    const totals = new Map();
    let all = 0;
    for (const p of data.points) {
      totals.set(p.bucket, (totals.get(p.bucket) || 0) + p.count);
      all += p.count;
    }
    const buckets = [...totals.keys()].sort();
    let peak = buckets[0];
    for (const b of buckets) if (totals.get(b) > totals.get(peak)) peak = b;
    const byLevel = LEVELS.slice().reverse()
      .map((level) => [level, data.points.filter((p) => p.level === level).reduce((n, p) => n + p.count, 0)])
      .filter(([, n]) => n > 0)
      .map(([level, n]) => `${labels[level] || level}: ${n}`);
    const unit = data.bucket === "hour" ? box.dataset.hour : box.dataset.day;
    const day = (iso) => (data.bucket === "hour" ? iso.slice(0, 16).replace("T", " ") : iso.slice(0, 10));
    summary.textContent = `${unit}: ${all} (${byLevel.join(", ")}); ${day(buckets[0])} – ${day(buckets[buckets.length - 1])}; ${box.dataset.peak || "max"} ${totals.get(peak)} · ${day(peak)}`;
  }

  async function draw() {
    const box = document.getElementById("timeline");
    if (!box || typeof Plotly === "undefined") return;
    const labels = JSON.parse(box.dataset.levels || "{}");
    const response = await fetch(box.dataset.api + "?" + chartQuery(), { credentials: "same-origin" });
    if (!response.ok) return;
    const data = await response.json();
    summarise(box, data, labels);
    if (!data.points.length) {
      Plotly.purge(box);
      box.classList.add("empty");
      box.textContent = box.dataset.empty;
      box.dataset.drawn = "0";
      return;
    }
    box.classList.remove("empty");
    if (!box.querySelector(".plot-container")) box.textContent = "";
    const width = data.bucket === "hour" ? HOUR : 24 * HOUR;
    // Bucket starts carry the zone's offset; Plotly draws wall times, so strip it.
    const wall = (iso) => iso.slice(0, 19);
    const traces = LEVELS.map((level) => {
      const points = data.points.filter((p) => p.level === level);
      return {
        type: "bar", name: labels[level] || level, x: points.map((p) => wall(p.bucket)),
        y: points.map((p) => p.count), width: points.map(() => width * 0.9), offset: 0,
        marker: { color: COLOURS[level] }, hovertemplate: "%{x}: %{y}<extra>" + (labels[level] || level) + "</extra>",
      };
    }).filter((t) => t.x.length);
    Plotly.react(box, traces, {
      barmode: "stack", height: 160, margin: { t: 28, r: 10, b: 30, l: 44 },
      legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom", traceorder: "reversed" },
      xaxis: { type: "date", tickformat: data.bucket === "hour" ? "%d.%m %H:%M" : "%d.%m.%Y", nticks: 8, automargin: true },
      yaxis: { rangemode: "tozero", automargin: true, fixedrange: true },
      font: { family: "system-ui, sans-serif", size: 12, color: "#0b1f33" },
    }, { displayModeBar: false, responsive: true });
    box.dataset.drawn = String(data.points.length);
    box.dataset.bucket = data.bucket;
  }

  // ---------------------------------------------------------------- selection and keys
  function rows() {
    return [...document.querySelectorAll("table.alerts[data-keyboard] tbody tr[data-alert-id]")];
  }

  function selected() {
    return [...document.querySelectorAll('#bulk input[name="ids"]:checked')];
  }

  function updateSelection() {
    const count = document.getElementById("selected-count");
    if (count) count.textContent = String(selected().length);
    const all = document.getElementById("select-page");
    const boxes = document.querySelectorAll('#bulk input[name="ids"]');
    if (all) all.checked = boxes.length > 0 && selected().length === boxes.length;
  }

  function focusRow(row) {
    if (!row) return;
    for (const r of rows()) r.classList.remove("current");
    row.classList.add("current");
    row.focus({ preventScroll: false });
    sessionStorage.setItem("qorgan-current-alert", row.id);
  }

  function current() {
    const list = rows();
    return list.find((r) => r.classList.contains("current")) || null;
  }

  function triageKey(action) {
    const form = document.getElementById("bulk");
    if (form && selected().length) {
      const button = form.querySelector(`button[name="action"][value="${action}"]`);
      if (button) button.click();
      return;
    }
    const row = current();
    if (!row) return;
    const button = row.querySelector(action === "acknowledge" ? "button.ack" : "button.fp");
    if (button) button.click();
  }

  function onKey(event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    if (target && (target.isContentEditable || ["INPUT", "SELECT", "TEXTAREA"].includes(target.tagName))) {
      if (event.key === "Escape") target.blur();
      return;
    }
    const list = rows();
    const row = current();
    const index = row ? list.indexOf(row) : -1;
    switch (event.key) {
      case "j": focusRow(list[Math.min(index + 1, list.length - 1)]); break;
      case "k": focusRow(list[Math.max(index - 1, 0)]); break;
      case "x": {
        const box = row && row.querySelector('input[name="ids"]');
        if (box) { box.checked = !box.checked; updateSelection(); }
        break;
      }
      case "a": triageKey("acknowledge"); break;
      case "f": triageKey("false-positive"); break;
      case "Enter": {
        const link = row && row.querySelector("a.open");
        if (link && target === row) link.click();
        return;
      }
      case "/": {
        const search = document.getElementById("q");
        if (search) { search.focus(); search.select(); }
        break;
      }
      default: return;
    }
    event.preventDefault();
  }

  function restoreFocus() {
    const id = sessionStorage.getItem("qorgan-current-alert");
    const row = id && document.getElementById(id);
    if (row) focusRow(row);
  }

  document.addEventListener("keydown", onKey);
  document.addEventListener("change", (event) => {
    if (event.target && event.target.id === "select-page") {
      for (const box of document.querySelectorAll('#bulk input[name="ids"]')) box.checked = event.target.checked;
    }
    if (event.target && event.target.closest && event.target.closest("#bulk")) updateSelection();
  });
  document.addEventListener("click", (event) => {
    const row = event.target.closest && event.target.closest("tr[data-alert-id]");
    if (row && !row.classList.contains("current")) {
      for (const r of rows()) r.classList.remove("current");
      row.classList.add("current");
      sessionStorage.setItem("qorgan-current-alert", row.id);
    }
  });
  document.addEventListener("DOMContentLoaded", () => {
    // On a phone the alerts come first: the chart starts folded.
    const card = document.getElementById("chart-card");
    if (card && window.matchMedia("(max-width: 760px)").matches) card.open = false;
    draw(); updateSelection();
  });
  document.addEventListener("toggle", (event) => {
    if (event.target && event.target.id === "chart-card" && event.target.open) draw();
  }, true);
  document.addEventListener("htmx:afterSwap", (event) => {
    const target = event.detail.target;
    if (!target) return;
    if (target.id === "results") {
      const card = document.getElementById("chart-card");
      if (card && window.matchMedia("(max-width: 760px)").matches) card.open = false;
      draw(); updateSelection(); restoreFocus(); announce();
    }
    else if (target.matches && target.matches("tr[data-alert-id]")) {
      const row = document.getElementById(target.id) || target;
      focusRow(row);
    }
  });
  // Back and Forward restore the URL's view: htmx swaps the page back in; redraw the chart.
  document.addEventListener("htmx:historyRestore", () => { draw(); updateSelection(); });
})();
