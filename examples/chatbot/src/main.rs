//! `chatbot` (being written).
fn main() {}
