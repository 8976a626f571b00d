//! Context compaction and attachment de-duplication: what is *sent* to the model, never
//! what is *kept*.
//!
//! When a request's estimated tokens pass `threshold x context size`, the oldest turns are
//! replaced by a summary produced by one model call (the [`crate::meta::MetaLlm`] helper).
//! The first message (the task) and the most recent `keep_recent` messages are kept
//! verbatim, and the cut never separates an assistant's tool calls from their results. The
//! canonical transcript (and the checkpoint) stays whole: only the outgoing request changes.
//! A summary is cached per run and reused while the transcript only grows. A failed summary
//! call is logged and the request goes out uncompacted.
//!
//! Attachments: an image whose bytes already appeared earlier in the request is replaced by
//! a short text reference, so the same bytes are never sent twice in one request.

use std::collections::HashSet;
use std::sync::Mutex;

use executus_llm::{Message, Part, Request, Role, Target};

use crate::config::CompactionSettings;
use crate::loops::fingerprint;
use crate::meta::MetaLlm;
use crate::ports::AuditEvent;
use crate::run::driver::{estimate_tokens, message_chars};

/// The system prompt of the summary call.
pub const SUMMARY_PROMPT: &str = "You compress conversations for an agent that must continue the work. \
Summarise the conversation below: the task, decisions made, facts learned (including tool \
results that still matter, with exact values), open questions and what remains to do. Be \
complete but brief; write plain prose and lists, no preamble.";

/// A summary of `messages[1..upto]`, cached per run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Messages `1..upto` are covered.
    pub upto: usize,
    /// The summary text.
    pub text: String,
}

/// Per-run compaction cache.
#[derive(Debug, Default)]
pub struct CompactionCache(Mutex<Option<Summary>>);

impl CompactionCache {
    fn get(&self) -> Option<Summary> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn set(&self, summary: Summary) {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(summary);
    }
}

/// The context size for a model spec's first target, from settings.
pub fn context_tokens(settings: &CompactionSettings, targets: &[String]) -> u64 {
    targets
        .first()
        .and_then(|t| {
            settings
                .context_sizes
                .get(t)
                .or_else(|| t.parse::<Target>().ok().and_then(|t| settings.context_sizes.get(&t.model)))
        })
        .copied()
        .unwrap_or(settings.default_context_tokens)
}

/// Where to cut: messages `1..boundary` get summarised, `boundary..` are kept. `None` when
/// there is nothing worth summarising. The cut never lands on a tool-result message (which
/// would separate it from the assistant message holding its calls).
pub fn boundary(messages: &[Message], keep_recent: usize) -> Option<usize> {
    if messages.len() <= keep_recent + 2 {
        return None;
    }
    let mut cut = messages.len() - keep_recent;
    while cut > 1 && cut < messages.len() && messages[cut].role == Role::Tool {
        cut -= 1;
    }
    (cut > 1).then_some(cut)
}

/// The request with `messages[1..summary.upto]` replaced by the summary.
fn apply(request: &Request, summary: &Summary) -> Request {
    let mut out = request.clone();
    let mut messages = Vec::with_capacity(request.messages.len() - summary.upto + 2);
    messages.push(request.messages[0].clone());
    messages.push(Message::user(format!(
        "[executus] Summary of the earlier conversation (older turns were compacted to fit the \
         context window):\n{}",
        summary.text
    )));
    messages.extend(request.messages[summary.upto..].iter().cloned());
    out.messages = messages;
    out
}

/// Whether [`compact`] would change `request` (compaction on, and the request over the
/// threshold): lets a caller holding a shared request copy it only then.
pub fn needs_compaction(request: &Request, settings: &CompactionSettings, context: u64) -> bool {
    settings.enabled && too_big(request, settings, context)
}

fn too_big(request: &Request, settings: &CompactionSettings, context: u64) -> bool {
    estimate_tokens(request) as f64 > settings.threshold * context as f64
}

/// Compacts `request` if it is over budget. Returns the request to send and, when a new
/// summary was made, the audit event describing it.
pub async fn compact(
    request: Request,
    settings: &CompactionSettings,
    context: u64,
    meta: impl FnOnce() -> Option<MetaLlm>,
    cache: &CompactionCache,
) -> (Request, Option<AuditEvent>) {
    if !needs_compaction(&request, settings, context) {
        return (request, None);
    }
    // A cached summary still valid for this (grown) transcript?
    if let Some(summary) = cache.get()
        && summary.upto <= request.messages.len()
    {
        let candidate = apply(&request, &summary);
        if !too_big(&candidate, settings, context) {
            return (candidate, None);
        }
    }
    let Some(upto) = boundary(&request.messages, settings.keep_recent) else { return (request, None) };
    let Some(meta) = meta() else { return (request, None) };
    let transcript = render(&request.messages[1..upto]);
    match meta.text(SUMMARY_PROMPT, vec![Message::user(transcript)]).await {
        Ok((text, _usage)) if !text.trim().is_empty() => {
            let summary = Summary { upto, text };
            let compacted = apply(&request, &summary);
            let event = AuditEvent::Compaction {
                replaced: (upto - 1) as u32,
                tokens_before: estimate_tokens(&request),
                tokens_after: estimate_tokens(&compacted),
            };
            cache.set(summary);
            (compacted, Some(event))
        }
        Ok(_) => {
            tracing::warn!("context compaction returned an empty summary; sending uncompacted");
            (request, None)
        }
        Err(e) => {
            tracing::warn!(error = %e, "context compaction failed; sending uncompacted");
            (request, None)
        }
    }
}

/// Plain-text rendering of messages for the summary call.
fn render(messages: &[Message]) -> String {
    let mut out = String::with_capacity(messages.iter().map(message_chars).sum::<usize>() + 64);
    for m in messages {
        let who = match m.role {
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        };
        for part in &m.parts {
            match part {
                Part::Text { text } => out.push_str(&format!("{who}: {text}\n")),
                Part::Image { mime, data } => {
                    out.push_str(&format!("{who}: [image {mime}, {} bytes]\n", data.len()))
                }
                Part::ToolCall(c) => out.push_str(&format!("{who} calls {}({})\n", c.name, c.args)),
                Part::ToolResult(r) => out.push_str(&format!(
                    "result of {}{}: {}\n",
                    r.name,
                    if r.is_error { " (error)" } else { "" },
                    r.content
                )),
            }
        }
    }
    out
}

/// Replaces every image whose bytes already appeared earlier in the request by a text
/// reference. Returns how many were replaced.
pub fn dedup_attachments(request: &mut Request) -> usize {
    dedup_attachments_from(request, 0, &mut AttachmentsSeen::default())
}

/// Attachments already in a request, for [`dedup_attachments_from`].
pub type AttachmentsSeen = HashSet<(u64, usize)>;

/// [`dedup_attachments`] over `request.messages[from..]` only, against the attachments in
/// `seen` (those of the messages before `from`, which it extends): a request that grows by
/// appending is de-duplicated once per message, not once per step.
pub fn dedup_attachments_from(request: &mut Request, from: usize, seen: &mut AttachmentsSeen) -> usize {
    let mut replaced = 0;
    for message in request.messages.iter_mut().skip(from) {
        for part in &mut message.parts {
            if let Part::Image { mime, data } = part {
                let key = (fingerprint(mime, &digest(data)), data.len());
                if !seen.insert(key) {
                    *part = Part::Text {
                        text: format!(
                            "[image {mime}, {} bytes: the same image as attached earlier]",
                            data.len()
                        ),
                    };
                    replaced += 1;
                }
            }
        }
    }
    replaced
}

/// A stable FNV-1a digest of image bytes, as hex.
fn digest(data: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests;
