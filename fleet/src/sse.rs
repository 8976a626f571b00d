//! A bounded Server-Sent Events decoder: bytes in, `(event, data)` frames out.
//!
//! It follows the SSE framing rules llama-swap relies on: a field is `name:value` with at
//! most one optional space after the colon (llama-swap writes none), `data` lines of one
//! event are joined by `\n`, a blank line ends the event, lines starting with `:` are
//! comments, `\r\n`, `\r` and `\n` all end a line.
//!
//! Guarantees: memory is bounded by `max_event` bytes per event — an event (or a line) past
//! it is an error, never an unbounded buffer; feeding the input in any split gives the same
//! frames.
//!
//! What it does not do: `id` and `retry` fields are ignored (llama-swap sends neither).

/// One event: its `event` name (`message` when absent) and its joined data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The event name.
    pub event: String,
    /// The data lines joined by `\n`.
    pub data: String,
}

/// An event past the size bound.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an SSE event exceeds {max} bytes")]
pub struct TooLarge {
    /// The bound.
    pub max: usize,
}

/// The decoder's state between chunks.
#[derive(Debug)]
pub struct SseDecoder {
    max_event: usize,
    line: Vec<u8>,
    /// The previous chunk ended with `\r`: a `\n` opening the next one belongs to it.
    after_cr: bool,
    event: String,
    data: String,
    has_data: bool,
}

impl SseDecoder {
    /// A decoder refusing events larger than `max_event` bytes.
    pub fn new(max_event: usize) -> Self {
        Self {
            max_event,
            line: Vec::new(),
            after_cr: false,
            event: String::new(),
            data: String::new(),
            has_data: false,
        }
    }

    /// Feeds a chunk; complete events are pushed to `out`.
    ///
    /// # Errors
    /// [`TooLarge`] when the event being read passes the bound (the decoder should then be
    /// dropped with its connection).
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<Frame>) -> Result<(), TooLarge> {
        let mut rest = chunk;
        if self.after_cr {
            self.after_cr = false;
            if let Some(stripped) = rest.strip_prefix(b"\n") {
                rest = stripped;
            }
        }
        while let Some(pos) = rest.iter().position(|b| *b == b'\n' || *b == b'\r') {
            self.push_line(&rest[..pos])?;
            let line = std::mem::take(&mut self.line);
            self.field(&line, out);
            let cr = rest[pos] == b'\r';
            rest = &rest[pos + 1..];
            if cr {
                if rest.is_empty() {
                    self.after_cr = true;
                } else if rest[0] == b'\n' {
                    rest = &rest[1..];
                }
            }
        }
        self.push_line(rest)
    }

    fn push_line(&mut self, bytes: &[u8]) -> Result<(), TooLarge> {
        if self.line.len() + bytes.len() + self.data.len() > self.max_event {
            return Err(TooLarge { max: self.max_event });
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    fn field(&mut self, line: &[u8], out: &mut Vec<Frame>) {
        if line.is_empty() {
            if self.has_data {
                let event = if self.event.is_empty() {
                    "message".to_owned()
                } else {
                    std::mem::take(&mut self.event)
                };
                out.push(Frame { event, data: std::mem::take(&mut self.data) });
            }
            self.event.clear();
            self.data.clear();
            self.has_data = false;
            return;
        }
        if line[0] == b':' {
            return;
        }
        let text = String::from_utf8_lossy(line);
        let (name, value) = match text.find(':') {
            Some(i) => {
                let value = &text[i + 1..];
                (&text[..i], value.strip_prefix(' ').unwrap_or(value))
            }
            None => (&text[..], ""),
        };
        match name {
            "event" => self.event = value.to_owned(),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8], split: usize) -> Result<Vec<Frame>, TooLarge> {
        let mut d = SseDecoder::new(1 << 16);
        let mut out = Vec::new();
        for chunk in input.chunks(split.max(1)) {
            d.feed(chunk, &mut out)?;
        }
        Ok(out)
    }

    #[test]
    fn llama_swap_framing_without_spaces_decodes_in_any_split() {
        let input = b"event:message\ndata:{\"type\":\"activity\",\"data\":\"{\\\"id\\\":3}\"}\n\n\
                      : comment\r\nevent: other\r\ndata: a\r\ndata:b\r\n\r\ndata:x\r\r";
        let want = vec![
            Frame {
                event: "message".into(),
                data: "{\"type\":\"activity\",\"data\":\"{\\\"id\\\":3}\"}".into(),
            },
            Frame { event: "other".into(), data: "a\nb".into() },
            Frame { event: "message".into(), data: "x".into() },
        ];
        for split in 1..input.len() {
            assert_eq!(decode_all(input, split).unwrap(), want, "split {split}");
        }
    }

    #[test]
    fn an_event_past_the_bound_is_an_error_not_a_buffer() {
        let mut d = SseDecoder::new(64);
        let mut out = Vec::new();
        let big = vec![b'a'; 100];
        let mut input = b"data:".to_vec();
        input.extend_from_slice(&big);
        assert_eq!(d.feed(&input, &mut out), Err(TooLarge { max: 64 }));
        // Many small data lines of one event count together.
        let mut d = SseDecoder::new(64);
        let mut err = Ok(());
        for _ in 0..20 {
            err = err.and(d.feed(b"data:0123456789\n", &mut out));
        }
        assert!(err.is_err());
        assert!(out.is_empty());
    }

    #[test]
    fn an_event_without_data_is_not_emitted() {
        assert_eq!(decode_all(b"event:message\n\n\n", 3).unwrap(), vec![]);
    }
}
