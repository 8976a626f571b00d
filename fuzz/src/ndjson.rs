//! Target `ndjson`: arbitrary bytes as a streamed NDJSON body, through the HTTP line splitter
//! (`Http::lines`) alone or followed by the Ollama chunk parser.
//!
//! Input: the header of [`crate::sse`] (`selector % 2`: 0 lines only, 1 Ollama), then the body.
//!
//! Properties: no panic, no hang; the lines are exactly those of a plain reference splitter
//! (split at `\n`, one trailing `\r` stripped, blank lines skipped, every line at most
//! `max_line_bytes`, the first over-long or non-UTF-8 line ending the stream with a decode
//! error after every line before it, a reset with a transient one); the Ollama stream ends
//! with one `Done` or a classified error; no error shows the key; chunk boundaries do not
//! change the outcome.

use executus_llm::ErrorKind;
use executus_llm::fuzzing::{self, Body, Wire};

use crate::sse::{Setup, check_events, check_items, chunking_invariant, normalize, setup};
use crate::{SECRET, block_on};

/// What `Http::lines` should yield for `body` with lines of at most `max` bytes: lines, then
/// at most one error kind.
pub fn reference(body: &Body, max: usize) -> Vec<Result<Vec<u8>, ErrorKind>> {
    let bytes = body.chunks.concat();
    let mut out = Vec::new();
    let segments: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    let last = segments.len() - 1;
    for (i, segment) in segments.into_iter().enumerate() {
        if i == last && segment.is_empty() {
            break;
        }
        if segment.len() > max {
            out.push(Err(ErrorKind::Decode));
            return out;
        }
        // A reset loses the line it interrupted (it may be incomplete).
        if i == last && body.reset {
            break;
        }
        if std::str::from_utf8(segment).is_err() {
            out.push(Err(ErrorKind::Decode));
            return out;
        }
        let line = segment.strip_suffix(b"\r").unwrap_or(segment);
        if !line.iter().all(u8::is_ascii_whitespace) {
            out.push(Ok(line.to_vec()));
        }
    }
    if body.reset {
        out.push(Err(ErrorKind::Transient));
    }
    out
}

/// The fuzz target.
pub fn check(data: &[u8]) {
    let Setup { selector, options, body } = setup(data);
    if selector % 2 == 0 {
        let items = chunking_invariant(&body, |b| block_on(fuzzing::ndjson(b, &options, Some(SECRET))));
        check_items(&items);
        let got: Vec<String> = items.iter().map(normalize).collect();
        let want: Vec<String> = reference(&body, options.max_line_bytes)
            .into_iter()
            .map(|r| match r {
                Ok(line) => format!("{line:?}"),
                Err(kind) => format!("Err({kind:?})"),
            })
            .collect();
        assert_eq!(got, want, "lines differ from the reference splitter");
    } else {
        let items = chunking_invariant(&body, |b| {
            fastrand::seed(7);
            block_on(fuzzing::events(Wire::Ollama, b, &options, Some(SECRET)))
        });
        check_events(&items);
    }
}
