//! [`StoreError`]: everything that can go wrong opening or using the store, each variant
//! carrying the evidence (the path or server, the operation, the database's error).
//!
//! Guarantees: no variant is ever a raw `SQLITE_BUSY` — lock contention is retried inside
//! the store and, only when a lock stays held past every retry, reported as
//! [`StoreError::Contended`] naming the path and the number of attempts. Errors convert into
//! the core's [`PortError`] for the port traits.

use std::path::PathBuf;

use executus::ports::PortError;

/// An error of the store (either backend).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The connection string is not a URL this store understands. (A password in it is
    /// never shown: the URL is redacted before it is stored here.)
    #[error(
        "invalid store URL {url:?}: {reason} (expected sqlite://path.db, sqlite::memory: or postgres://user@host/db)"
    )]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// The file at the path exists but is not a SQLite database; it was left untouched.
    #[error("{}: not a SQLite database (the file does not start with the SQLite header); refusing to touch it", path.display())]
    NotSqlite {
        /// The file.
        path: PathBuf,
    },
    /// The file is a SQLite database that executus-store did not create; it was left
    /// untouched.
    #[error(
        "{}: a SQLite database that executus-store did not create (application_id {application_id}, tables: {}); refusing to touch it",
        path.display(),
        if tables.is_empty() { "none".to_owned() } else { tables.join(", ") }
    )]
    Foreign {
        /// The file.
        path: PathBuf,
        /// Its `PRAGMA application_id`.
        application_id: i32,
        /// Its tables.
        tables: Vec<String>,
    },
    /// The PostgreSQL schema the store uses holds tables executus-store did not create; it
    /// was left untouched.
    #[error(
        "{location}: schema {schema:?} holds tables executus-store did not create ({}); refusing to touch it",
        tables.join(", ")
    )]
    ForeignSchema {
        /// The server (password redacted).
        location: String,
        /// The schema.
        schema: &'static str,
        /// Its tables.
        tables: Vec<String>,
    },
    /// The file looks like a SQLite database but SQLite reports it corrupt or unreadable.
    #[error("{}: database is corrupt or unreadable: {message}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What SQLite said.
        message: String,
    },
    /// The database holds a schema migration this build does not know (it was written by a
    /// newer executus-store); it was not modified.
    #[error(
        "{location}: schema migration {version} is unknown to this build (the file was written by a newer executus-store)"
    )]
    NewerSchema {
        /// The store's path.
        location: String,
        /// The unknown migration version.
        version: i64,
    },
    /// Applying the embedded schema migrations failed.
    #[error("{location}: schema migration failed: {source}")]
    Migration {
        /// The store's path.
        location: String,
        /// The migrator's error.
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// Reading the file before opening it failed.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The folder for a new store file cannot be created.
    #[error("{}: cannot create the store's folder: {source}", path.display())]
    Folder {
        /// The folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A database operation failed.
    #[error("{location}: {op} failed: {source}")]
    Database {
        /// The store's path.
        location: String,
        /// What the store was doing.
        op: &'static str,
        /// SQLite's error.
        #[source]
        source: sqlx::Error,
    },
    /// Another connection or process held the write lock past the busy timeout on every
    /// attempt.
    #[error(
        "{location}: {op} gave up after {attempts} attempts: the database stayed locked by another writer"
    )]
    Contended {
        /// The store's path.
        location: String,
        /// What the store was doing.
        op: &'static str,
        /// Attempts made.
        attempts: u32,
    },
    /// The operation exists for the other backend only (e.g. WAL statistics of a SQLite
    /// file on a PostgreSQL store), or the backend was not compiled in.
    #[error("{location}: {op} is not available on this backend ({backend})")]
    Unsupported {
        /// The store's location.
        location: String,
        /// What was asked.
        op: &'static str,
        /// The backend the store uses (or the one missing).
        backend: &'static str,
    },
    /// Input the store refuses (a sequence gap, a number out of range...).
    #[error("{location}: invalid {what}: {reason}")]
    Rejected {
        /// The store's path.
        location: String,
        /// What was invalid.
        what: String,
        /// Why.
        reason: String,
    },
    /// A stored row could not be decoded (the store never writes such rows; someone else
    /// changed the file, or a newer build wrote an encoding this build does not know).
    #[error("{location}: undecodable stored data: {message}")]
    Undecodable {
        /// The store's path.
        location: String,
        /// What is wrong.
        message: String,
    },
}

/// SQLite's primary result codes the store classifies.
const SQLITE_BUSY: i32 = 5;
const SQLITE_LOCKED: i32 = 6;
const SQLITE_CORRUPT: i32 = 11;
const SQLITE_NOTADB: i32 = 26;

/// `SQLITE_READONLY_ROLLBACK`: a read-only connection met a hot journal it cannot roll back.
const SQLITE_READONLY_ROLLBACK: i32 = 776;

/// True when a read-only connection could not read the file because of a hot rollback
/// journal (a writer died inside a transaction).
pub(crate) fn is_hot_journal(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            db.code().and_then(|c| c.parse::<i32>().ok()) == Some(SQLITE_READONLY_ROLLBACK)
        }
        _ => false,
    }
}

/// The primary SQLite result code of a database error, if it is one.
pub(crate) fn primary_code(e: &sqlx::Error) -> Option<i32> {
    match e {
        sqlx::Error::Database(db) => db.code().and_then(|c| c.parse::<i32>().ok()).map(|c| c & 0xff),
        _ => None,
    }
}

/// True for lock contention (`SQLITE_BUSY`, `SQLITE_LOCKED` and their extended codes).
pub(crate) fn is_busy(e: &sqlx::Error) -> bool {
    matches!(primary_code(e), Some(SQLITE_BUSY | SQLITE_LOCKED))
}

/// True when SQLite says the file is corrupt or not a database.
pub(crate) fn is_corrupt(e: &sqlx::Error) -> bool {
    matches!(primary_code(e), Some(SQLITE_CORRUPT | SQLITE_NOTADB))
}

impl StoreError {
    /// True if this is lock contention the store may retry.
    pub(crate) fn is_busy(&self) -> bool {
        match self {
            Self::Database { source, .. } => is_busy(source),
            _ => false,
        }
    }

    /// This error as the core's [`PortError`] for `port`.
    pub fn into_port(self, port: &'static str) -> PortError {
        match self {
            Self::Rejected { what, reason, .. } => PortError::Invalid { port, what, reason },
            e @ (Self::Undecodable { .. } | Self::Corrupt { .. }) => {
                PortError::Corrupt { port, message: e.to_string() }
            }
            e => PortError::Backend { port, message: e.to_string() },
        }
    }
}
