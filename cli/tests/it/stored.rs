//! Checkpoint payloads read back out of a store, for tests that search them: the store
//! deflates every payload of 64 bytes or more, so the bytes a run wrote cannot be found by
//! grepping the database file or its WAL.
//!
//! Two readers: [`live_entries`] asks the store (every entry of every run that is not
//! finished, decoded by the core's own `checkpoint::decode`), and [`deflated_entries`] reads
//! a file's bytes directly — every `checkpoint_entries` row still present in the database
//! file, a freed page or a WAL frame (rows of finished runs are deleted, but their bytes stay
//! until overwritten), found by its record header and inflated.

use std::path::Path;

use executus::ports::CheckpointStore as _;

/// Every entry of every unfinished run in the store at `dir/executus.db`, as the JSON the core
/// wrote (each one decoded, so a payload that is not a checkpoint fails the test).
pub async fn live_entries(dir: &Path) -> Vec<Vec<u8>> {
    let store =
        executus_store::Store::open(&format!("sqlite://{}/executus.db", dir.display())).await.unwrap();
    let checkpoints = store.checkpoints();
    let mut entries = Vec::new();
    for (meta, _) in checkpoints.list_interrupted().await.unwrap() {
        let Some(stored) = checkpoints.load(meta.run_id).await.unwrap() else { continue };
        for entry in stored.entries {
            let fact = executus::checkpoint::decode(&entry.payload)
                .unwrap_or_else(|e| panic!("run {}: entry {} does not decode: {e}", meta.run_id, entry.seq));
            // The decoded fact, re-encoded, is what the payload says (nothing hides in it).
            entries.push(serde_json::to_vec(&fact).unwrap());
            entries.push(entry.payload);
        }
    }
    store.close().await;
    entries
}

/// Every deflated `checkpoint_entries` payload in `bytes` (a database file or its WAL),
/// inflated (a prefix when the row spilled to an overflow page or was partly overwritten).
pub fn deflated_entries(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut found = Vec::new();
    for at in 0..bytes.len() {
        let Some((start, len)) = entry_record_at(bytes, at) else { continue };
        let blob = &bytes[start..(start + len).min(bytes.len())];
        let inflated = match miniz_oxide::inflate::decompress_to_vec_with_limit(blob, 1 << 20) {
            Ok(all) => all,
            Err(partial) => partial.output,
        };
        if inflated.starts_with(b"{\"v\":") {
            found.push(inflated);
        }
    }
    found
}

/// A SQLite record of `checkpoint_entries (run, seq, encoding, payload)` with encoding 1
/// (deflate) starting at `at`: header size, serial types of two integers, 9 (the constant 1),
/// a blob; returns where the blob starts and its length.
fn entry_record_at(bytes: &[u8], at: usize) -> Option<(usize, usize)> {
    let int_size = |serial: u8| match serial {
        8 | 9 => Some(0),
        1..=4 => Some(usize::from(serial)),
        5 => Some(6),
        6 => Some(8),
        _ => None,
    };
    let header = usize::from(*bytes.get(at)?);
    let run = int_size(*bytes.get(at + 1)?)?;
    let seq = int_size(*bytes.get(at + 2)?)?;
    if *bytes.get(at + 3)? != 9 {
        return None;
    }
    let (serial, width) = varint(bytes.get(at + 4..)?)?;
    if header != 4 + width || serial < 12 || serial % 2 != 0 {
        return None;
    }
    let len = usize::try_from((serial - 12) / 2).ok()?;
    Some((at + header + run + seq, len))
}

/// A SQLite varint (big-endian, 7 bits a byte, at most 9 bytes) and its width.
fn varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, byte) in bytes.iter().take(9).enumerate() {
        if i == 8 {
            return Some(((value << 8) | u64::from(*byte), 9));
        }
        value = (value << 7) | u64::from(byte & 0x7f);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}
