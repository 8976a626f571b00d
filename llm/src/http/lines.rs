//! Cutting a body into whole lines before any parser sees it.
//!
//! [`LineSplitter`] buffers only the unfinished last line and hands out everything up to the
//! last line end of each chunk, so the SSE parser and the NDJSON splitter downstream never
//! re-scan a partial line (a 10 MB line costs linear time, not quadratic), and a piece it hands
//! out never ends inside a UTF-8 sequence, so it can be validated on its own: invalid UTF-8 is
//! reported as soon as its line is complete, not when the body ends. Every line is bounded.
//! The whole lines before an invalid or over-long one are handed out before the error, so
//! what comes out does not depend on where the transport cut the body. It does no I/O.

/// Why a chunk was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LineError {
    /// A line grew past the limit.
    TooLong,
    /// A completed piece is not UTF-8 (the message says where).
    Utf8(String),
}

/// Splits a byte stream at line ends, bounding each line.
#[derive(Debug)]
pub(crate) struct LineSplitter {
    ends: &'static [u8],
    max: usize,
    /// The unfinished last line.
    pending: Vec<u8>,
    /// An error found after lines that were handed out first; reported next.
    failed: Option<LineError>,
}

impl LineSplitter {
    /// A splitter whose lines end at any byte of `ends` (`b"\n"` for NDJSON, `b"\r\n"` for SSE,
    /// which also allows a bare CR) and may hold at most `max` bytes, line end excluded.
    pub(crate) fn new(ends: &'static [u8], max: usize) -> Self {
        Self { ends, max, pending: Vec::new(), failed: None }
    }

    /// Feeds a chunk; returns the whole lines it completes (with their line ends, as one
    /// string), or `None` when it completes none. A line past the limit is an error after the
    /// whole lines before it, as for invalid UTF-8: what is handed out does not depend on
    /// where the transport cut the body.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Result<Option<String>, LineError> {
        self.check()?;
        let mut run = self.pending.len();
        let mut last_end = None;
        let mut start = 0;
        let mut too_long = false;
        // Each byte is looked at once: the scan starts at the new chunk.
        while let Some(offset) = bytes[start..].iter().position(|b| self.ends.contains(b)) {
            if run + offset > self.max {
                too_long = true;
                break;
            }
            run = 0;
            last_end = Some(start + offset);
            start += offset + 1;
        }
        if too_long || run + (bytes.len() - start) > self.max {
            let Some(end) = last_end else {
                self.failed = Some(LineError::TooLong);
                return Err(LineError::TooLong);
            };
            self.pending.extend_from_slice(&bytes[..=end]);
            let complete = std::mem::take(&mut self.pending);
            let lines = self.utf8(complete);
            // Invalid UTF-8 in those lines comes first and is already recorded.
            self.failed.get_or_insert(LineError::TooLong);
            return lines.map(Some);
        }
        let Some(end) = last_end else {
            self.pending.extend_from_slice(bytes);
            return Ok(None);
        };
        self.pending.extend_from_slice(&bytes[..=end]);
        let complete = std::mem::replace(&mut self.pending, bytes[end + 1..].to_vec());
        self.utf8(complete).map(Some)
    }

    /// The error found after the lines last handed out, if any. Once this returns an error,
    /// every later call does too.
    pub(crate) fn check(&mut self) -> Result<(), LineError> {
        match &self.failed {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// The final line, when the body ended without a line end after it.
    pub(crate) fn finish(&mut self) -> Result<Option<String>, LineError> {
        self.check()?;
        if self.pending.is_empty() {
            return Ok(None);
        }
        let last = std::mem::take(&mut self.pending);
        self.utf8(last).map(Some)
    }

    /// `bytes` as a string. When they are not UTF-8, the whole lines before the bad one are
    /// still handed out, and the error is kept for the next call.
    fn utf8(&mut self, bytes: Vec<u8>) -> Result<String, LineError> {
        let e = match String::from_utf8(bytes) {
            Ok(text) => return Ok(text),
            Err(e) => e,
        };
        let error = LineError::Utf8(e.utf8_error().to_string());
        let valid = e.utf8_error().valid_up_to();
        let mut bytes = e.into_bytes();
        let Some(end) = bytes[..valid].iter().rposition(|b| self.ends.contains(b)) else {
            self.failed = Some(error.clone());
            return Err(error);
        };
        bytes.truncate(end + 1);
        self.failed = Some(error);
        // The bytes up to a line end before the first invalid one are valid UTF-8.
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}
