//! The chat bot's stores: a file that is not a store is refused and left alone (the SQLite
//! chat history itself is tested in executus-store, `tests/it/chat.rs`).

#[tokio::test]
async fn a_file_that_is_not_a_store_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, "these are my notes, not a database").unwrap();
    let error =
        chatbot::Stores::open(&format!("sqlite://{}", path.display())).await.err().unwrap().to_string();
    assert!(error.contains("notes.txt"), "{error}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "these are my notes, not a database", "left alone");
}
