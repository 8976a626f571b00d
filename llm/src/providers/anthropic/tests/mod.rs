//! Unit tests: request mapping decisions and tables (`request`), the SSE state machine on
//! hostile input (`sse`).

use super::request::{AnswerTool, Plan};

mod request;
mod sse;

/// A plan whose structured-output tool is named `answer`.
fn answer_plan(wrapped: bool) -> Plan {
    Plan { answer: Some(AnswerTool { name: "answer".into(), wrapped }) }
}
