//! `calc`: an arithmetic expression evaluator.
//!
//! Grammar (precedence climbing, evaluated while parsing; no AST, no eval crate):
//! `+ -` (left) < `* / %` (left) < unary `- +` < `^` (right; `**` is accepted as `^`).
//! So `-2^2` is `-4`, `2^3^2` is `512` and `2^-1` is `0.5`. Numbers are decimal with an
//! optional fraction and exponent (`1e3`, `2.5E-2`, `.5`). `%` is the remainder with the
//! sign of the dividend (`-7 % 3` is `-1`).
//!
//! Guarantees: division or remainder by zero, and any non-finite intermediate or final
//! result (overflow, NaN), is an error naming the operator's position; garbage gets an error
//! naming the offending token and its position (0-based character offset); input longer
//! than [`MAX_LEN`] characters or nested deeper than [`MAX_DEPTH`] is refused before it can
//! exhaust the stack. Numbers are `f64`: integers are exact up to 2^53.
//!
//! It has no variables, functions or constants.

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::{parse_args, schema_of};
use executus::tool::{Tool, ToolContext, ToolError, ToolOutput};

/// Longest accepted expression, in characters.
pub const MAX_LEN: usize = 1_000;

/// Deepest accepted nesting (parentheses, unary operators and `^` chains together).
pub const MAX_DEPTH: usize = 100;

/// Why an expression could not be evaluated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CalcError {
    /// Nothing but whitespace.
    #[error("empty expression")]
    Empty,
    /// Longer than [`MAX_LEN`].
    #[error("expression is {len} characters long; the limit is {max}")]
    TooLong {
        /// Its length in characters.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Nested deeper than [`MAX_DEPTH`].
    #[error("expression is nested more than {max} levels deep at {pos}")]
    TooDeep {
        /// The limit.
        max: usize,
        /// Where the limit was passed.
        pos: usize,
    },
    /// A character that is not part of the grammar.
    #[error("unexpected character {ch:?} at {pos}")]
    UnexpectedChar {
        /// The character.
        ch: char,
        /// Its position.
        pos: usize,
    },
    /// A name; there are no variables or functions.
    #[error("unknown name {name:?} at {pos}: only numbers, + - * / % ^ and parentheses are supported")]
    UnknownName {
        /// The name.
        name: String,
        /// Its position.
        pos: usize,
    },
    /// A malformed number (`1.2.3`, `1e`, `.`).
    #[error("malformed number {text:?} at {pos}")]
    BadNumber {
        /// The text.
        text: String,
        /// Its position.
        pos: usize,
    },
    /// A token where it cannot stand.
    #[error("unexpected {token} at {pos}")]
    UnexpectedToken {
        /// The token (`')'`, `number 3`...).
        token: String,
        /// Its position.
        pos: usize,
    },
    /// The expression stopped where an operand was expected.
    #[error("unexpected end of expression at {pos}: expected a number or '('")]
    UnexpectedEnd {
        /// The end position.
        pos: usize,
    },
    /// A `(` without its `)`.
    #[error("missing ')' for the '(' at {open}")]
    UnclosedParen {
        /// Position of the `(`.
        open: usize,
    },
    /// `x / 0`.
    #[error("division by zero at {pos}")]
    DivisionByZero {
        /// Position of the `/`.
        pos: usize,
    },
    /// `x % 0`.
    #[error("remainder (modulo) by zero at {pos}")]
    ModuloByZero {
        /// Position of the `%`.
        pos: usize,
    },
    /// A result that is infinite or not a number.
    #[error("the result of {op:?} at {pos} is {what}")]
    NonFinite {
        /// The operator (or `number` for a literal too large for f64).
        op: String,
        /// Its position.
        pos: usize,
        /// `too large (overflow)` or `not a real number`.
        what: &'static str,
    },
}

impl CalcError {
    /// True for arithmetic failures of a well-formed expression (division or remainder by
    /// zero, non-finite results); false for malformed or over-limit input.
    pub fn is_arithmetic(&self) -> bool {
        matches!(self, Self::DivisionByZero { .. } | Self::ModuloByZero { .. } | Self::NonFinite { .. })
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Tok {
    Num(f64),
    Op(char),
    LParen,
    RParen,
    End,
}

struct Lexer<'a> {
    chars: &'a [char],
    pos: usize,
}

impl Lexer<'_> {
    /// The next token and its position.
    fn next(&mut self) -> Result<(Tok, usize), CalcError> {
        while self.pos < self.chars.len() && self.chars[self.pos].is_whitespace() {
            self.pos += 1;
        }
        let start = self.pos;
        let Some(&c) = self.chars.get(start) else {
            return Ok((Tok::End, start));
        };
        let tok = match c {
            '0'..='9' | '.' => return self.number(),
            '*' if self.chars.get(start + 1) == Some(&'*') => {
                self.pos += 1;
                Tok::Op('^')
            }
            '+' | '-' | '*' | '/' | '%' | '^' => Tok::Op(c),
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            c if c.is_alphabetic() || c == '_' => {
                let end = self.scan(start, |c| c.is_alphanumeric() || c == '_');
                let name = self.chars[start..end].iter().collect();
                return Err(CalcError::UnknownName { name, pos: start });
            }
            ch => return Err(CalcError::UnexpectedChar { ch, pos: start }),
        };
        self.pos += 1;
        Ok((tok, start))
    }

    fn scan(&self, from: usize, keep: impl Fn(char) -> bool) -> usize {
        let mut end = from;
        while end < self.chars.len() && keep(self.chars[end]) {
            end += 1;
        }
        end
    }

    fn number(&mut self) -> Result<(Tok, usize), CalcError> {
        let start = self.pos;
        let mut end = self.scan(start, |c| c.is_ascii_digit() || c == '.');
        if matches!(self.chars.get(end), Some('e' | 'E')) {
            let mut exp = end + 1;
            if matches!(self.chars.get(exp), Some('+' | '-')) {
                exp += 1;
            }
            let digits_end = self.scan(exp, |c| c.is_ascii_digit());
            if digits_end == exp {
                // `2e`, `2e+`: take the letters too so the error shows what was written.
                let bad_end = self.scan(end, |c| c.is_alphanumeric() || c == '+' || c == '-');
                let text = self.chars[start..bad_end].iter().collect();
                return Err(CalcError::BadNumber { text, pos: start });
            }
            end = digits_end;
        }
        let text: String = self.chars[start..end].iter().collect();
        let mantissa = text.split(['e', 'E']).next().unwrap_or_default();
        if mantissa.matches('.').count() > 1 || !mantissa.contains(|c: char| c.is_ascii_digit()) {
            return Err(CalcError::BadNumber { text, pos: start });
        }
        let value: f64 = text.parse().map_err(|_| CalcError::BadNumber { text: text.clone(), pos: start })?;
        if !value.is_finite() {
            return Err(CalcError::NonFinite {
                op: "number".into(),
                pos: start,
                what: "too large (overflow)",
            });
        }
        self.pos = end;
        Ok((Tok::Num(value), start))
    }
}

struct Parser<'a> {
    lexer: Lexer<'a>,
    peeked: (Tok, usize),
}

/// Binding powers: (left, right). Higher binds tighter; right < left means right-associative.
fn infix_power(op: char) -> (u8, u8) {
    match op {
        '+' | '-' => (1, 2),
        '*' | '/' | '%' => (3, 4),
        _ => (7, 6), // '^'
    }
}

const PREFIX_POWER: u8 = 5;

impl Parser<'_> {
    fn advance(&mut self) -> Result<(Tok, usize), CalcError> {
        let next = self.lexer.next()?;
        Ok(std::mem::replace(&mut self.peeked, next))
    }

    fn expr(&mut self, min_power: u8, depth: usize) -> Result<f64, CalcError> {
        let (tok, pos) = self.advance()?;
        if depth > MAX_DEPTH {
            return Err(CalcError::TooDeep { max: MAX_DEPTH, pos });
        }
        let mut lhs = match tok {
            Tok::Num(v) => v,
            Tok::LParen => {
                let inner = self.expr(0, depth + 1)?;
                match self.advance()? {
                    (Tok::RParen, _) => inner,
                    (Tok::End, _) => return Err(CalcError::UnclosedParen { open: pos }),
                    (other, at) => return Err(unexpected(other, at)),
                }
            }
            Tok::Op(op @ ('-' | '+')) => {
                let v = self.expr(PREFIX_POWER, depth + 1)?;
                if op == '-' { -v } else { v }
            }
            Tok::End => return Err(CalcError::UnexpectedEnd { pos }),
            other => return Err(unexpected(other, pos)),
        };
        loop {
            let (op, op_pos) = match self.peeked {
                (Tok::Op(op), at) => (op, at),
                (Tok::End | Tok::RParen, _) => break,
                (other, at) => return Err(unexpected(other, at)),
            };
            let (left, right) = infix_power(op);
            if left < min_power {
                break;
            }
            self.advance()?;
            let rhs = self.expr(right, depth + 1)?;
            lhs = apply(op, op_pos, lhs, rhs)?;
        }
        Ok(lhs)
    }
}

fn unexpected(tok: Tok, pos: usize) -> CalcError {
    let token = match tok {
        Tok::Num(v) => format!("number {}", format_number(v)),
        Tok::Op(op) => format!("'{op}'"),
        Tok::LParen => "'('".into(),
        Tok::RParen => "')'".into(),
        Tok::End => "end of expression".into(),
    };
    CalcError::UnexpectedToken { token, pos }
}

fn apply(op: char, pos: usize, a: f64, b: f64) -> Result<f64, CalcError> {
    let value = match op {
        '+' => a + b,
        '-' => a - b,
        '*' => a * b,
        '/' if b == 0.0 => return Err(CalcError::DivisionByZero { pos }),
        '/' => a / b,
        '%' if b == 0.0 => return Err(CalcError::ModuloByZero { pos }),
        '%' => a % b,
        _ => a.powf(b),
    };
    if value.is_finite() {
        Ok(value)
    } else {
        let what = if value.is_nan() { "not a real number" } else { "too large (overflow)" };
        Err(CalcError::NonFinite { op: op.to_string(), pos, what })
    }
}

/// Evaluates an arithmetic expression.
///
/// ```
/// use executus_tools::calc::evaluate;
/// assert_eq!(evaluate("2 + 3 * 4").unwrap(), 14.0);
/// assert_eq!(evaluate("-2^2").unwrap(), -4.0);
/// assert!(evaluate("1 / 0").is_err());
/// ```
///
/// # Errors
/// A [`CalcError`] naming what is wrong and where (0-based character offset).
pub fn evaluate(expr: &str) -> Result<f64, CalcError> {
    let len = expr.chars().count();
    if len > MAX_LEN {
        return Err(CalcError::TooLong { len, max: MAX_LEN });
    }
    let chars: Vec<char> = expr.chars().collect();
    if chars.iter().all(|c| c.is_whitespace()) {
        return Err(CalcError::Empty);
    }
    let mut lexer = Lexer { chars: &chars, pos: 0 };
    let first = lexer.next()?;
    let mut parser = Parser { lexer, peeked: first };
    let value = parser.expr(0, 0)?;
    match parser.peeked {
        (Tok::End, _) => Ok(value),
        (tok, pos) => Err(unexpected(tok, pos)),
    }
}

/// Formats a result for people: 15 significant digits (so `0.1 + 0.2` is `0.3`), integers
/// without `.0`, scientific notation outside `1e-6 ..= 1e15`.
pub fn format_number(value: f64) -> String {
    // Rounding through a 15-significant-digit decimal string hides binary noise; parsing a
    // string `{:e}` just produced cannot fail, the fallback only keeps clippy honest.
    let rounded: f64 = format!("{value:.14e}").parse().unwrap_or(value);
    if rounded == 0.0 {
        return "0".to_owned();
    }
    let magnitude = rounded.abs();
    if (1e-6..1e15).contains(&magnitude) { format!("{rounded}") } else { format!("{rounded:e}") }
}

/// Arguments of `calc`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct CalcArgs {
    /// The expression, e.g. `(2 + 3) * 4 ^ 2 / 1e3`. Supports + - * / % ^ (power, right
    /// associative), parentheses, unary minus and scientific notation.
    pub expression: String,
}

/// The `calc` tool.
#[derive(Debug, Clone, Copy, Default)]
pub struct Calc;

impl Calc {
    /// The tool.
    pub fn new() -> Self {
        Self
    }
}

#[async_trait]
impl Tool for Calc {
    fn name(&self) -> &str {
        "calc"
    }

    fn description(&self) -> &str {
        "Evaluates an arithmetic expression exactly as written and returns the number. \
         Supports + - * / % (remainder) ^ (power, right associative; -2^2 = -4), parentheses, \
         unary minus and scientific notation (1e3, 2.5E-2). No variables or functions."
    }

    fn parameters(&self) -> Value {
        schema_of::<CalcArgs>()
    }

    fn idempotent(&self) -> bool {
        true
    }

    fn read_only(&self) -> bool {
        true
    }

    async fn call(&self, _ctx: ToolContext, args: Value) -> Result<ToolOutput, ToolError> {
        let args: CalcArgs = parse_args(self.name(), args)?;
        let value = evaluate(&args.expression).map_err(|e| {
            if e.is_arithmetic() {
                ToolError::failed("calc", e.to_string())
            } else {
                ToolError::InvalidArgs { tool: "calc".into(), message: e.to_string() }
            }
        })?;
        Ok(ToolOutput::text(format_number(value)))
    }
}
