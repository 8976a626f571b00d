//! The `/fleet` page: rendered on the server from a snapshot (so it shows the fleet without
//! any script), then kept live by `fleet.js` on an `EventSource` of `/api/fleet/events`,
//! which renders the same markup. Script and style are embedded in the binary; the page has
//! no inline script (the Content-Security-Policy forbids it).

use std::fmt::Write as _;

use crate::state::{HostView, Snapshot};

/// The page's script.
pub(crate) const SCRIPT: &str = include_str!("fleet.js");
/// The page's style.
pub(crate) const STYLE: &str = include_str!("fleet.css");

/// Escapes text for HTML content and attribute values.
pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The sparkline's points for `values` in a 100 x 24 box (`None` for fewer than two).
pub(crate) fn spark_points(values: &[f64]) -> Option<String> {
    if values.len() < 2 {
        return None;
    }
    let max = values.iter().copied().fold(0.0_f64, f64::max).max(1e-9);
    let step = 100.0 / (values.len() - 1) as f64;
    let mut out = String::new();
    for (i, v) in values.iter().enumerate() {
        let y = 23.0 - (v / max) * 22.0;
        let _ = write!(out, "{:.1},{:.1} ", i as f64 * step, y);
    }
    Some(out.trim_end().to_owned())
}

fn host_html(h: &HostView, act: bool) -> String {
    let mut s = String::new();
    let name = esc(&h.name);
    let liveness = h.liveness.as_str();
    let _ = write!(
        s,
        r#"<section class="host" data-host="{name}" data-seq="{seq}"><h2><span class="name">{name}</span> <span class="liveness {liveness}" data-liveness="{liveness}">{liveness}</span>{stale}</h2>"#,
        seq = h.seq,
        stale = if h.stale { r#" <span class="stale">last known</span>"# } else { "" },
    );
    let _ = write!(
        s,
        r#"<p class="meta"><span class="url">{url}</span> · since <time datetime="{since}">{since}</time> · in flight <b class="inflight" data-inflight="{n}">{n}</b>"#,
        url = esc(&h.base_url),
        since = h.since.format("%Y-%m-%dT%H:%M:%SZ"),
        n = h.in_flight,
    );
    if let Some(lease) = &h.lease {
        let _ = write!(
            s,
            r#" · <span class="lease">leased for {} by {}</span>"#,
            esc(&lease.purpose),
            esc(&lease.holder)
        );
    }
    s.push_str("</p>");
    let tps = h.tps();
    match spark_points(&tps) {
        Some(points) => {
            let last = tps.last().copied().unwrap_or_default();
            let _ = write!(
                s,
                r#"<div class="spark"><svg viewBox="0 0 100 24" preserveAspectRatio="none"><polyline points="{points}"/></svg><span class="tps">{last:.1} tok/s</span></div>"#
            );
        }
        None => s.push_str(r#"<div class="spark empty"><span class="tps">no tokens/s yet</span></div>"#),
    }
    s.push_str(r#"<table class="models"><tbody>"#);
    if h.models.is_empty() {
        s.push_str(r#"<tr class="none"><td colspan="3">no models reported</td></tr>"#);
    }
    for m in &h.models {
        let id = esc(&m.id);
        let state = esc(m.state.as_str());
        let _ = write!(
            s,
            r#"<tr data-model="{id}"><td class="model">{id}</td><td class="state {state}" data-state="{state}">{state}</td>"#
        );
        if act {
            let _ = write!(
                s,
                r#"<td class="actions"><button data-action="load" data-host="{name}" data-model="{id}">load</button><button data-action="unload" data-host="{name}" data-model="{id}">unload</button></td>"#
            );
        } else {
            s.push_str("<td></td>");
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table>");
    if !h.queue.is_empty() {
        s.push_str(r#"<p class="queue">queue: "#);
        for q in &h.queue {
            let _ = write!(
                s,
                r#"<span class="queued{}">{} {}</span> "#,
                if q.running { " running" } else { "" },
                esc(&q.action),
                esc(q.model.as_deref().unwrap_or(""))
            );
        }
        s.push_str("</p>");
    }
    s.push_str(r#"<ol class="activity" reversed>"#);
    for a in h.recent.iter().rev().take(8) {
        let _ = write!(
            s,
            r#"<li><time datetime="{ts}">{short}</time> <span class="model">{model}</span> <span class="status s{status}">{status}</span> {tokens} tok{tps}</li>"#,
            ts = a.ts.format("%Y-%m-%dT%H:%M:%SZ"),
            short = a.ts.format("%H:%M:%S"),
            model = esc(&a.model),
            status = a.status,
            tokens = a.output_tokens,
            tps = if a.gen_tps > 0.0 { format!(" · {:.1} tok/s", a.gen_tps) } else { String::new() },
        );
    }
    s.push_str("</ol></section>");
    s
}

/// The whole page.
pub(crate) fn render(snapshot: &Snapshot, act: bool) -> String {
    let mut hosts = String::new();
    for h in &snapshot.hosts {
        hosts.push_str(&host_html(h, act));
    }
    if snapshot.hosts.is_empty() {
        hosts.push_str(r#"<p class="empty">No hosts configured: add [fleet.hosts.NAME] base_url = "..." to executus.toml.</p>"#);
    }
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>executus fleet</title><link rel="stylesheet" href="/fleet/assets/fleet.css"></head>
<body data-act="{act}"><header><h1>Fleet</h1><span id="conn" class="conn" data-conn="static">static</span><span id="notice" class="notice"></span></header>
<main id="hosts">{hosts}</main>
<script src="/fleet/assets/fleet.js"></script></body></html>
"#
    )
}

/// The login page (`failed`: a key was given and refused).
pub(crate) fn login(failed: bool) -> String {
    let note = if failed { r#"<p class="error">That key may not view the fleet.</p>"# } else { "" };
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>executus fleet: key required</title><link rel="stylesheet" href="/fleet/assets/fleet.css"></head>
<body><main class="login"><h1>Fleet</h1><p>A gateway key allowed to view the fleet is required.</p>{note}
<form method="post" action="/fleet/login"><input type="password" name="key" autocomplete="off" placeholder="key" required><button type="submit">Open</button></form></main></body></html>
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_hosts_is_escaped() {
        assert_eq!(esc(r#"<img src=x onerror="a">&'"#), "&lt;img src=x onerror=&quot;a&quot;&gt;&amp;&#39;");
    }

    #[test]
    fn sparkline_points_span_the_box() {
        assert_eq!(spark_points(&[1.0]), None);
        assert_eq!(spark_points(&[0.0, 10.0]).as_deref(), Some("0.0,23.0 100.0,1.0"));
    }
}
