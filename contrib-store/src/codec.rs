//! Per-row payload encoding: how a `checkpoint_entries.payload` holds the core's bytes.
//!
//! The core's payloads are versioned JSON; between the JSON keys, the usage counters and
//! the repeated field names, raw deflate typically halves them, which is what keeps a run's
//! storage within a small factor of its transcript. Small payloads, and payloads deflate
//! does not shrink, are stored verbatim. The encoding is recorded per row, so turning
//! compression on or off never makes old rows unreadable, and a row with an encoding this
//! build does not know is an error naming it (written by a newer build), not garbage.

use std::cell::RefCell;

use executus::ports::RunAppend;

use miniz_oxide::deflate::core::{
    CompressorOxide, TDEFLFlush, TDEFLStatus, compress as deflate_core, create_comp_flags_from_zip_params,
};

/// Batches above this many payload bytes are compressed on the blocking pool, so a large
/// group commit does not stall an async worker thread.
const OFFLOAD_BYTES: usize = 64 << 10;

/// What one `append` wrote (for tracing and benchmarks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AppendStats {
    /// Runs in the batch.
    pub runs: usize,
    /// Entries inserted (duplicates not counted).
    pub inserted: usize,
    /// Payload bytes as the core gave them.
    pub payload_bytes: usize,
    /// Payload bytes as stored (after compression).
    pub stored_bytes: usize,
}

/// Payloads shorter than this are stored verbatim (deflate cannot win much on them).
const MIN_COMPRESS: usize = 64;

/// Refuse to inflate a row beyond this (a corrupt or hostile row must not exhaust memory).
const MAX_INFLATED: usize = 256 << 20;

/// deflate level: 6 is zlib's default, a good ratio at tens of MB/s.
const LEVEL: u8 = 6;

/// How a stored payload is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Encoding {
    /// The core's bytes, verbatim.
    Verbatim,
    /// Raw deflate (RFC 1951) of the core's bytes.
    Deflate,
}

impl Encoding {
    /// The code stored in the `encoding` column.
    pub fn code(self) -> i64 {
        match self {
            Self::Verbatim => 0,
            Self::Deflate => 1,
        }
    }

    /// The encoding for a stored code.
    pub fn from_code(code: i64) -> Option<Self> {
        match code {
            0 => Some(Self::Verbatim),
            1 => Some(Self::Deflate),
            _ => None,
        }
    }
}

/// The deflated form of a payload when it is worth storing instead (smaller), else `None`
/// (store verbatim). Gives up as soon as the output would not be smaller than the input.
pub(crate) fn compress(payload: &[u8]) -> Option<Vec<u8>> {
    if payload.len() < MIN_COMPRESS {
        return None;
    }
    // A compressor holds ~300 KB of tables; allocating one per payload would cost more
    // than compressing a typical 1 KB fact, so each thread keeps one and resets it.
    thread_local! {
        static COMPRESSOR: RefCell<Option<Box<CompressorOxide>>> = const { RefCell::new(None) };
    }
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let compressor = slot.get_or_insert_with(|| {
            // window_bits 0: raw deflate (no zlib header), as `decode` expects.
            Box::new(CompressorOxide::new(create_comp_flags_from_zip_params(i32::from(LEVEL), 0, 0)))
        });
        compressor.reset();
        // Room for anything smaller than the input; running out means "not worth it".
        let mut output = vec![0u8; payload.len() - 1];
        let mut input = payload;
        let mut written = 0;
        loop {
            let (status, read, wrote) =
                deflate_core(compressor, input, &mut output[written..], TDEFLFlush::Finish);
            written += wrote;
            match status {
                TDEFLStatus::Done => {
                    output.truncate(written);
                    return Some(output);
                }
                // Progress and room left: feed the rest. (No progress would loop forever.)
                TDEFLStatus::Okay if read <= input.len() && written < output.len() && read + wrote > 0 => {
                    input = &input[read..];
                }
                _ => return None,
            }
        }
    })
}

/// Decodes a stored payload back to the core's bytes.
pub(crate) fn decode(code: i64, stored: &[u8]) -> Result<Vec<u8>, String> {
    match Encoding::from_code(code) {
        Some(Encoding::Verbatim) => Ok(stored.to_vec()),
        Some(Encoding::Deflate) => miniz_oxide::inflate::decompress_to_vec_with_limit(stored, MAX_INFLATED)
            .map_err(|e| format!("deflate payload does not inflate: {e}")),
        None => Err(format!("unknown payload encoding {code} (written by a newer executus-store?)")),
    }
}

/// The deflated form of every entry of the batch that is worth compressing (`None`: store
/// verbatim), in batch order.
pub(crate) async fn deflate_batch(batch: &[RunAppend], on: bool) -> Vec<Vec<Option<Vec<u8>>>> {
    let verbatim = || batch.iter().map(|a| vec![None; a.entries.len()]).collect();
    if !on {
        return verbatim();
    }
    let total: usize = batch.iter().flat_map(|a| &a.entries).map(|e| e.payload.len()).sum();
    if total < OFFLOAD_BYTES {
        return batch.iter().map(|a| a.entries.iter().map(|e| compress(&e.payload)).collect()).collect();
    }
    let owned: Vec<Vec<Vec<u8>>> =
        batch.iter().map(|a| a.entries.iter().map(|e| e.payload.clone()).collect()).collect();
    tokio::task::spawn_blocking(move || {
        owned.iter().map(|run| run.iter().map(|p| compress(p)).collect()).collect()
    })
    .await
    // The closure cannot panic short of an allocation failure; storing verbatim is correct.
    .unwrap_or_else(|_| verbatim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_picks_the_smaller_form() {
        let json = br#"{"v":1,"fact":"model","message":{"role":"assistant","parts":[{"type":"text","text":"hello hello hello hello hello hello hello hello"}]}}"#;
        let deflated = compress(json).expect("repetitive JSON deflates");
        assert!(deflated.len() < json.len());
        assert_eq!(decode(Encoding::Deflate.code(), &deflated).unwrap(), json.to_vec());
        assert_eq!(decode(Encoding::Verbatim.code(), json).unwrap(), json.to_vec());

        // Incompressible bytes and tiny payloads stay verbatim (never stored larger).
        let noise: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        if let Some(d) = compress(&noise) {
            assert!(d.len() < noise.len());
            assert_eq!(decode(Encoding::Deflate.code(), &d).unwrap(), noise);
        }
        assert_eq!(compress(b"{\"v\":1}"), None);
        // Same bytes as the one-shot API (the reused compressor is really reset).
        for _ in 0..3 {
            assert_eq!(compress(json).unwrap(), miniz_oxide::deflate::compress_to_vec(json, LEVEL));
        }
        let long: Vec<u8> = json.iter().copied().cycle().take(200_000).collect();
        assert_eq!(decode(Encoding::Deflate.code(), &compress(&long).unwrap()).unwrap(), long);
    }

    #[test]
    fn unknown_encoding_and_bad_deflate_are_errors() {
        let err = decode(9, b"x").unwrap_err();
        assert!(err.contains("unknown payload encoding 9"), "{err}");
        assert!(decode(Encoding::Deflate.code(), b"\xff\xff\xff not deflate").is_err());
    }
}
