//! Replays the committed corpus (`corpus/<target>/*`) and the regression inputs
//! (`regressions/<target>/*`) through each target's check on a stable toolchain, without
//! libFuzzer: a bug found by fuzzing stays caught by `cargo test`.

use std::path::Path;

/// The files of `folder/target`, sorted; none when the folder does not exist.
fn inputs(folder: &str, target: &str) -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(folder).join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    let mut files: Vec<_> = entries.map(|entry| entry.expect("a readable corpus entry").path()).collect();
    files.sort();
    files
}

/// Replays `corpus/<target>` (minimised by `cargo fuzz cmin`) and `regressions/<target>`
/// (the inputs that found the bugs fixed so far, kept by name).
fn replay(target: &str, check: fn(&[u8])) {
    let corpus = inputs("corpus", target);
    assert!(!corpus.is_empty(), "no corpus for {target}");
    let files: Vec<_> = corpus.into_iter().chain(inputs("regressions", target)).collect();
    for file in &files {
        let data = std::fs::read(file).expect("a readable corpus file");
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(outcome.is_ok(), "{target}: {} fails its check", file.display());
    }
    println!("{target}: {} inputs replayed", files.len());
}

#[test]
fn sse_corpus() {
    replay("sse", executus_fuzz::sse::check);
}

#[test]
fn ndjson_corpus() {
    replay("ndjson", executus_fuzz::ndjson::check);
}

#[test]
fn dsn_corpus() {
    replay("dsn", executus_fuzz::dsn::check);
}

#[test]
fn chain_corpus() {
    replay("chain", executus_fuzz::chain::check);
}

#[test]
fn tool_args_corpus() {
    replay("tool_args", executus_fuzz::tool_args::check);
}

#[test]
fn config_corpus() {
    replay("config", executus_fuzz::config::check);
}
