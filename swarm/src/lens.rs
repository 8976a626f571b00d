//! The built-in review lenses: what each cell's reviewer looks for, as a system prompt.
//!
//! Prompts are constant text (no dates, ids or randomness), and the user message is built
//! only from the diff, so a review sends byte-identical requests every time: that is what
//! lets the replay transcript answer by content.

use executus::RunnableAgent;
use executus::fanout::Lens;

use crate::finding::LensReport;
use crate::plan::Chunk;

/// Output token cap per cell.
pub const MAX_TOKENS: u32 = 4096;

/// A built-in review lens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LensKind {
    /// Logic errors, edge cases, panics, off-by-one errors, wrong results.
    Correctness,
    /// Injection, secrets, authorisation, untrusted input, information leaks.
    Security,
    /// Algorithmic cost, queries in loops, unbounded work, needless allocation.
    Performance,
    /// Readability, structure, dead code, and whether the tests cover the change.
    Maintainability,
}

impl LensKind {
    /// Every built-in lens, in report order.
    pub const ALL: [Self; 4] = [Self::Correctness, Self::Security, Self::Performance, Self::Maintainability];

    /// The lens name (`correctness`, `security`, `performance`, `maintainability`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Correctness => "correctness",
            Self::Security => "security",
            Self::Performance => "performance",
            Self::Maintainability => "maintainability",
        }
    }

    /// The lens called `name` (case-insensitive; `tests` is accepted for maintainability).
    pub fn from_name(name: &str) -> Option<Self> {
        let name = name.trim();
        if name.eq_ignore_ascii_case("tests") {
            return Some(Self::Maintainability);
        }
        Self::ALL.into_iter().find(|lens| lens.name().eq_ignore_ascii_case(name))
    }

    fn focus(self) -> &'static str {
        match self {
            Self::Correctness => {
                "You are reviewing for CORRECTNESS. Look for logic errors, wrong results, \
                 off-by-one errors, unhandled edge cases (empty input, zero, the last element, \
                 overflow), panics and crashes (unwrap or indexing on data that can be missing), \
                 and code that does not do what its name or comment says."
            }
            Self::Security => {
                "You are reviewing for SECURITY. Look for injection (SQL, shell, path), \
                 untrusted input reaching dangerous operations, secrets or credentials in code \
                 or tests, missing authorisation, denial of service through unbounded input, \
                 and internal details leaked to clients."
            }
            Self::Performance => {
                "You are reviewing for PERFORMANCE. Look for queries or I/O inside loops \
                 (N+1), loading more data than needed, unbounded work driven by input, \
                 quadratic algorithms, and needless copies or allocations on hot paths."
            }
            Self::Maintainability => {
                "You are reviewing for MAINTAINABILITY AND TESTS. Look for missing or weak \
                 tests for the changed behaviour (assertions that prove nothing, untested \
                 error paths), dead or misleading code, unclear names, and duplication."
            }
        }
    }

    /// The system prompt of this lens.
    pub fn system_prompt(self) -> String {
        format!(
            "You are a senior engineer reviewing a pull request, given as a unified diff.\n\
             {focus}\n\n\
             Rules:\n\
             - Report only problems in lines the diff adds or changes, and only problems of \
             your focus; say nothing about style the project's formatter would fix.\n\
             - `file` is the path after the change, without the `a/` or `b/` prefix.\n\
             - `line` (and `end_line` for a range) are 1-based line numbers in the NEW \
             version of the file: count from the `+start` of the hunk header, over context \
             and added lines.\n\
             - One finding per distinct problem; do not repeat a problem in other words.\n\
             - severity: `error` for a bug, vulnerability or crash that must be fixed before \
             merging; `warning` for a likely problem; `note` for something worth a look.\n\
             - If you find nothing, return an empty `findings` list.\n\
             Answer with JSON matching the schema, and nothing else.",
            focus = self.focus()
        )
    }

    /// The fanout lens: an agent with this lens's prompt and the [`LensReport`] output
    /// schema; the model is set per cell by the fanout.
    pub fn lens(self) -> Lens {
        let mut agent = RunnableAgent::new(self.name(), self.system_prompt(), "")
            .with_output_schema(LensReport::response_schema());
        agent.description = format!("Reviews a diff for {}.", self.name());
        agent.max_tokens = Some(MAX_TOKENS);
        agent.limits.max_steps = 2;
        Lens { name: self.name().to_owned(), agent }
    }
}

impl std::fmt::Display for LensKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A user message holding `diff`, fenced, and nothing that varies between runs.
pub fn user_message(diff: &str) -> String {
    fenced("Review this change.", diff)
}

/// The user message of a cell reviewing `chunk`: which file (and which part of it, for a file
/// split in parts), then the chunk's diff, fenced. Only the chunk's content decides it.
pub fn chunk_message(chunk: &Chunk) -> String {
    let scope = if chunk.parts == 1 {
        format!("Review this change to `{}`.", chunk.file)
    } else {
        format!(
            "Review this change to `{}`: part {} of {} of its diff (new lines {} to {}); the other \
             parts are reviewed separately.",
            chunk.file, chunk.part, chunk.parts, chunk.first_line, chunk.last_line
        )
    };
    fenced(&scope, &chunk.text)
}

fn fenced(intro: &str, diff: &str) -> String {
    // A fence longer than any backtick run in the diff, so the diff cannot close it early.
    let longest = diff.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    format!("{intro}\n\n{fence}diff\n{}\n{fence}", diff.trim_end_matches('\n'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_tests_is_an_alias() {
        for lens in LensKind::ALL {
            assert_eq!(LensKind::from_name(lens.name()), Some(lens));
            assert_eq!(LensKind::from_name(&lens.name().to_uppercase()), Some(lens));
        }
        assert_eq!(LensKind::from_name("tests"), Some(LensKind::Maintainability));
        assert_eq!(LensKind::from_name("style"), None);
    }

    #[test]
    fn prompts_are_distinct_and_deterministic() {
        let prompts: Vec<String> = LensKind::ALL.iter().map(|l| l.system_prompt()).collect();
        for (i, a) in prompts.iter().enumerate() {
            for b in &prompts[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(LensKind::Security.system_prompt(), LensKind::Security.system_prompt());
        let lens = LensKind::Security.lens();
        assert_eq!(lens.name, "security");
        assert!(lens.agent.output_schema.is_some());
    }

    #[test]
    fn the_fence_outlasts_backticks_in_the_diff() {
        let message = user_message("+let s = \"````\";\n");
        assert!(message.starts_with("Review this change.\n\n`````diff\n"), "{message}");
        assert!(message.ends_with("\n`````"), "{message}");
        assert!(user_message("+x\n").contains("```diff\n+x\n```"));
    }
}
