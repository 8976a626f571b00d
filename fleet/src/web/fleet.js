// The /fleet page's live part: an EventSource on /api/fleet/events. The first event is a
// snapshot (every host with its sequence number); each later `delta` is applied only when
// its seq is the host's next one, so nothing is applied twice or out of order. A gap (which
// the server never sends) or a new `snapshot` event replaces the state wholesale.
"use strict";
(function () {
  const main = document.getElementById("hosts");
  const conn = document.getElementById("conn");
  const notice = document.getElementById("notice");
  const act = document.body.dataset.act === "true";
  const SPARK = 32;
  let hosts = new Map();

  function esc(s) {
    return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  }
  function iso(t) { return String(t).replace(/\.\d+/, ""); }
  function hms(t) { const d = new Date(t); return isNaN(d) ? "" : d.toISOString().slice(11, 19); }
  function tps(h) { return (h.recent || []).filter((a) => a.gen_tps > 0).map((a) => a.gen_tps); }
  function points(values) {
    if (values.length < 2) return null;
    const max = Math.max(1e-9, ...values);
    const step = 100 / (values.length - 1);
    return values.map((v, i) => (i * step).toFixed(1) + "," + (23 - (v / max) * 22).toFixed(1)).join(" ");
  }

  function hostHtml(h) {
    const name = esc(h.name);
    let s = `<section class="host" data-host="${name}" data-seq="${h.seq}"><h2><span class="name">${name}</span> ` +
      `<span class="liveness ${h.liveness}" data-liveness="${h.liveness}">${h.liveness}</span>` +
      (h.stale ? ` <span class="stale">last known</span>` : "") + `</h2>`;
    s += `<p class="meta"><span class="url">${esc(h.base_url)}</span> · since <time datetime="${esc(iso(h.since))}">${esc(iso(h.since))}</time>` +
      ` · in flight <b class="inflight" data-inflight="${h.in_flight}">${h.in_flight}</b>`;
    if (h.lease) s += ` · <span class="lease">leased for ${esc(h.lease.purpose)} by ${esc(h.lease.holder)}</span>`;
    s += `</p>`;
    const t = tps(h), p = points(t);
    s += p ? `<div class="spark"><svg viewBox="0 0 100 24" preserveAspectRatio="none"><polyline points="${p}"/></svg><span class="tps">${t[t.length - 1].toFixed(1)} tok/s</span></div>`
      : `<div class="spark empty"><span class="tps">no tokens/s yet</span></div>`;
    s += `<table class="models"><tbody>`;
    if (!h.models.length) s += `<tr class="none"><td colspan="3">no models reported</td></tr>`;
    for (const m of h.models) {
      const id = esc(m.id), st = esc(m.state);
      s += `<tr data-model="${id}"><td class="model">${id}</td><td class="state ${st}" data-state="${st}">${st}</td>`;
      s += act ? `<td class="actions"><button data-action="load" data-host="${name}" data-model="${id}">load</button>` +
        `<button data-action="unload" data-host="${name}" data-model="${id}">unload</button></td>` : `<td></td>`;
      s += `</tr>`;
    }
    s += `</tbody></table>`;
    if (h.queue && h.queue.length) {
      s += `<p class="queue">queue: ` + h.queue.map((q) => `<span class="queued${q.running ? " running" : ""}">${esc(q.action)} ${esc(q.model || "")}</span>`).join(" ") + `</p>`;
    }
    s += `<ol class="activity" reversed>`;
    for (const a of (h.recent || []).slice().reverse().slice(0, 8)) {
      s += `<li><time datetime="${esc(iso(a.ts))}">${hms(a.ts)}</time> <span class="model">${esc(a.model)}</span> ` +
        `<span class="status s${a.status}">${a.status}</span> ${a.output_tokens} tok` + (a.gen_tps > 0 ? ` · ${a.gen_tps.toFixed(1)} tok/s` : "") + `</li>`;
    }
    return s + `</ol></section>`;
  }

  function renderHost(h) {
    const old = main.querySelector(`section.host[data-host="${CSS.escape(h.name)}"]`);
    const tpl = document.createElement("template");
    tpl.innerHTML = hostHtml(h);
    if (old) old.replaceWith(tpl.content); else main.appendChild(tpl.content);
  }

  function change(h, c) {
    switch (c.kind) {
      case "reset": { const seq = h.seq; Object.assign(h, c); delete h.kind; h.seq = seq; break; }
      case "liveness": h.liveness = c.liveness; h.since = c.since; break;
      case "models": h.models = c.models; h.stale = false; h.synced = true; break;
      case "attempt": h.failures = c.failures; break;
      case "in_flight": h.in_flight = c.count; h.inflight = c.requests; break;
      case "activity":
        h.recent = (h.recent || []).concat(c.rows).slice(-SPARK);
        break;
      case "bench": break;
      case "lease": h.lease = c.lease; break;
      case "queue": h.queue = c.queue; break;
      case "perf": h.perf = c.perf; break;
    }
  }

  function snapshot(s) {
    hosts = new Map(s.hosts.map((h) => [h.name, h]));
    main.innerHTML = "";
    for (const h of s.hosts) renderHost(h);
    document.body.dataset.live = "true";
  }

  function delta(d) {
    const h = hosts.get(d.host);
    if (!h || d.seq <= h.seq) return; // already in the view
    if (d.seq !== h.seq + 1) { source.close(); start(); return; } // a gap: start over
    change(h, d.change);
    h.seq = d.seq;
    renderHost(h);
  }

  let source;
  function start() {
    source = new EventSource("/api/fleet/events");
    source.addEventListener("snapshot", (e) => { snapshot(JSON.parse(e.data)); conn.textContent = "live"; conn.dataset.conn = "live"; });
    source.addEventListener("delta", (e) => delta(JSON.parse(e.data)));
    source.onerror = () => { conn.textContent = "reconnecting"; conn.dataset.conn = "reconnecting"; };
  }

  async function send(host, action, model, confirm) {
    const r = await fetch("/api/fleet/actions", {
      method: "POST", credentials: "same-origin", headers: { "content-type": "application/json" },
      body: JSON.stringify({ host, action, model, confirm }),
    });
    const body = await r.json().catch(() => ({}));
    if (r.status === 409 && body.requires_confirmation && !confirm) {
      if (window.confirm(`${host}: ${body.error} (${body.purpose || "lease"} by ${body.holder || "?"}). Take the host over?`)) return send(host, action, model, true);
      return;
    }
    notice.textContent = r.ok ? `${action} ${model || ""} on ${host}: queued` : `${host}: ${body.error || r.status}`;
  }

  main.addEventListener("click", (e) => {
    const b = e.target.closest("button[data-action]");
    if (b) send(b.dataset.host, b.dataset.action, b.dataset.model, false);
  });

  start();
})();
