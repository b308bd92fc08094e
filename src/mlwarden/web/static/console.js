// mlwarden console: charts drawn from JSON data blocks in the page (no inline script: the CSP forbids it).
"use strict";
(function () {
  function activityChart(el, data) {
    const width = Math.max(320, el.clientWidth || 800);
    const opts = {
      width: width,
      height: 240,
      scales: { x: { time: true } },
      series: [
        {},
        { label: "requests", stroke: "#2f5bd3", width: 2, points: { show: true } },
        { label: "denials", stroke: "#b3261e", width: 2, points: { show: true } },
      ],
    };
    let series = [data.times, data.requests, data.denials];
    if (data.times.length === 1) {
      // one minute alone would stretch the time axis over years: frame it with empty minutes
      const t = data.times[0];
      series = [[t - 300, t, t + 300], [null, data.requests[0], null], [null, data.denials[0], null]];
    }
    new uPlot(opts, series, el);
  }

  function drawCharts() {
    document.querySelectorAll("[data-chart]").forEach(function (el) {
      const source = document.getElementById(el.dataset.source);
      if (!source || typeof uPlot === "undefined") {
        return;
      }
      const data = JSON.parse(source.textContent);
      if (el.dataset.chart === "activity") {
        if (!data.times.length) {
          el.textContent = "no requests or denials among these entries";
          return;
        }
        activityChart(el, data);
      }
    });
  }

  document.addEventListener("DOMContentLoaded", drawCharts);
})();
