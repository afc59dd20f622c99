// ShotWatch console: live updates over server-sent events, review clocks, offline map.
(function () {
  "use strict";

  function esc(s) {
    return String(s == null ? "" : s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  // Review clocks tick locally between server updates (server time offset from data-now).
  function tickClocks() {
    var tbl = document.querySelector("table.queue");
    var offset = 0;
    if (tbl && tbl.dataset.now) { offset = Number(tbl.dataset.now) - tbl._loadedAt; }
    var now = Date.now() / 1000 + offset;
    document.querySelectorAll(".clock[data-arrival]").forEach(function (el) {
      if (el.dataset.frozen) return;
      var s = Math.max(0, now - Number(el.dataset.arrival));
      el.textContent = s.toFixed(0) + " s";
      el.classList.toggle("late", s > 60);
      el.classList.toggle("warn", s > 15 && s <= 60);
    });
  }
  function markLoaded() {
    var tbl = document.querySelector("table.queue");
    if (tbl) tbl._loadedAt = Date.now() / 1000;
  }

  // Server-sent events: queue -> refresh queue fragment; board -> update rows in place.
  function connect() {
    var el = document.getElementById("live-state");
    if (!el || !window.EventSource) return;
    var src = new EventSource(el.dataset.sse);
    src.onopen = function () { el.textContent = "live"; el.classList.add("on"); };
    src.onerror = function () {
      el.classList.remove("on");
      if (src.readyState === EventSource.CLOSED) {
        // the server refused to reconnect (401): signed out, transferred, locked or expired
        el.textContent = "signed out: sign in again";
        el.classList.add("ended");
      } else {
        el.textContent = "reconnecting…";
      }
    };
    src.addEventListener("queue", function (e) {
      var item = JSON.parse(e.data);
      document.body.dataset.lastQueueEvent = item.incident_id;
      if (window.htmx) htmx.trigger(document.body, "queue-changed");
    });
    src.addEventListener("board", function (e) {
      var msg = JSON.parse(e.data);
      if (msg.event === "call") upsertCall(msg.call);
      if (msg.event === "delivery") markDelivery(msg.delivery);
    });
    window.addEventListener("beforeunload", function () { src.close(); });
  }

  function upsertCall(c) {
    var body = document.getElementById("board-body");
    if (body) {
      var empty = body.querySelector("tr.empty");
      if (empty) empty.remove();
      var row = body.querySelector('tr[data-call="' + c.call_id + '"]');
      var html =
        "<td>" + esc(c.event_time_utc.slice(11, 19)) + "</td>" +
        '<td class="unit">' + esc(c.unit_label || "UNROUTED") + "</td>" +
        '<td class="summary">' + esc(c.summary) + "</td>" +
        "<td>" + c.lat_deg.toFixed(5) + ", " + c.lon_deg.toFixed(5) + "</td>" +
        '<td class="status">' + esc(c.status) + (c.cad_job_id ? " · " + esc(c.cad_job_id) : "") + "</td>" +
        '<td class="delivery">' + (row ? row.querySelector(".delivery").innerHTML : "") + "</td>" +
        "<td>" + (c.status === "pending_cad"
          ? '<button hx-post="/board/' + esc(c.incident_id) + '/cad" hx-target="#outcome">Enter into CAD</button>'
          : "") + "</td>";
      if (!row) {
        row = document.createElement("tr");
        body.insertBefore(row, body.firstChild);
      }
      row.className = "call " + c.status + " fresh";
      row.dataset.call = c.call_id;
      row.dataset.incident = c.incident_id;
      row.innerHTML = html;
      if (window.htmx) htmx.process(row);
    }
    var list = document.getElementById("officer-calls");
    if (list) {
      var e2 = list.querySelector("li.empty");
      if (e2) e2.remove();
      var card = list.querySelector('li[data-call="' + c.call_id + '"]');
      if (!card) { card = document.createElement("li"); list.insertBefore(card, list.firstChild); }
      card.className = "callcard " + c.status + " fresh";
      card.dataset.call = c.call_id;
      card.innerHTML = '<div class="unit">' + esc(c.unit_label || "UNROUTED") + "</div>" +
        '<div class="summary">' + esc(c.summary) + "</div>" +
        '<div class="meta">' + esc(c.event_time_utc.slice(11, 19)) + " UTC · " +
        c.lat_deg.toFixed(5) + ", " + c.lon_deg.toFixed(5) + "</div>";
    }
  }

  function markDelivery(d) {
    document.querySelectorAll('tr[data-call="' + d.call_id + '"] .delivery').forEach(function (td) {
      var tag = td.querySelector('[data-channel="' + d.channel + '"]');
      if (!tag) { tag = document.createElement("span"); tag.dataset.channel = d.channel; td.appendChild(tag); }
      tag.className = "tag " + (d.ok ? "ok" : "failed");
      tag.textContent = d.channel + (d.ok ? " ✓" : " ✗");
      tag.title = d.reason || "";
    });
  }

  // Offline map: boundaries as the base layer, then the incident's GeoJSON layers.
  function initMap() {
    var el = document.getElementById("map");
    if (!el || !window.L) return;
    var map = L.map(el, { attributionControl: false, zoomSnap: 0.25 });
    window.swMap = map;
    fetch(el.dataset.boundaries, { credentials: "same-origin" }).then(function (r) { return r.json(); })
      .then(function (gj) {
        L.geoJSON(gj, {
          style: function (f) {
            return { color: f.properties.patrolled ? "#8b949e" : "#d29922", weight: 1, fillOpacity: 0.04 };
          },
          onEachFeature: function (f, layer) { layer.bindTooltip(f.properties.label); }
        }).addTo(map).bringToBack();
      }).catch(function () {});
    fetch(el.dataset.geojson, { credentials: "same-origin" }).then(function (r) { return r.json(); })
      .then(function (gj) {
        var layer = L.geoJSON(gj, {
          style: function (f) {
            return f.properties.layer === "uncertainty"
              ? { color: "#f85149", weight: 2, fillOpacity: 0.15 } : {};
          },
          pointToLayer: function (f, ll) {
            if (f.properties.layer === "sensor") {
              return L.circleMarker(ll, { radius: 6, color: "#58a6ff", fillOpacity: 0.9, className: "sensor-marker" })
                .bindTooltip(f.properties.serial);
            }
            return L.circleMarker(ll, { radius: 7, color: "#f85149", fillColor: "#f85149", fillOpacity: 1, className: "shot-marker" });
          }
        }).addTo(map);
        var b = layer.getBounds();
        if (b.isValid()) map.fitBounds(b.pad(0.4)); else map.setView([0, 0], 2);
        el.dataset.loaded = String(gj.features.length);
      });
  }

  // Show only the parameter fields of the chosen command.
  function initCommandForm() {
    var sel = document.getElementById("command");
    if (!sel) return;
    function sync() {
      document.querySelectorAll(".params [data-for]").forEach(function (l) {
        l.style.display = l.dataset.for === sel.value ? "" : "none";
      });
    }
    sel.addEventListener("change", sync);
    sync();
  }

  document.addEventListener("DOMContentLoaded", function () {
    markLoaded();
    connect();
    initMap();
    initCommandForm();
    setInterval(tickClocks, 1000);
  });
  document.addEventListener("htmx:afterSwap", function () { markLoaded(); tickClocks(); });
})();
