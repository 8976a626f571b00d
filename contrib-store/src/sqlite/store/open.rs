//! Opening: parse the URL, make sure an existing file is ours before writing to it, connect
//! the writer and the readers, apply the embedded migrations.
//!
//! The ownership check reads the file's first 100 bytes directly (no SQLite involved), then,
//! for a SQLite file, opens one read-only connection without any write pragma to read
//! `PRAGMA application_id`, the table list and our marker row. Only a missing file, an empty
//! file, an empty database, or one of ours proceeds to the read-write connection (which
//! switches the file to WAL). Nothing is deleted or repaired, ever — with one exception, the
//! one every SQLite client makes: a hot rollback journal (a writer killed inside a
//! transaction, e.g. while creating the file) is rolled back, restoring the last committed
//! state, but only once the file is known to be ours or to have been empty before that
//! transaction (the ownership check then reads it `immutable`, ignoring the journal, so
//! another program's file is refused without being touched).

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::{MigrateError, Migrator};
use sqlx::sqlite::{
    SqliteAutoVacuum, SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool,
    SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection, Row};

use super::{APPLICATION_ID, StoreOptions, backoff};
use crate::error::{StoreError, is_busy, is_corrupt, is_hot_journal};

/// The embedded schema migrations (`contrib-store/migrations/sqlite/`).
static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// The SQLite file header ("SQLite format 3\0").
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// How long a caller may wait in line for the single writer connection before the store
/// reports it (a queue this long means the disk stalled, not ordinary contention).
const WRITER_QUEUE_TIMEOUT: Duration = Duration::from_secs(120);

/// Connected pools.
pub(super) struct Opened {
    pub(super) location: String,
    pub(super) writer: SqlitePool,
    pub(super) reader: SqlitePool,
}

/// What the ownership check found at the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    /// Missing, empty, or a database without tables: ours to initialise.
    Fresh,
    /// A database we created.
    Ours {
        /// Whether `application_id` still has to be set (marker table only).
        needs_id: bool,
    },
}

pub(super) async fn open(url: &str, options: &StoreOptions) -> Result<Opened, StoreError> {
    let invalid = |reason: &str| StoreError::InvalidUrl { url: url.to_owned(), reason: reason.to_owned() };
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| invalid("the scheme must be sqlite:"))?;
    if rest.contains('?') {
        return Err(invalid("store URLs take no parameters (use StoreOptions)"));
    }
    if rest.is_empty() {
        return Err(invalid("no path"));
    }
    if rest == ":memory:" {
        return open_memory(options).await;
    }
    // sqlx's parser percent-decodes the path exactly as it would when connecting.
    let parsed = SqliteConnectOptions::from_str(url).map_err(|e| invalid(&e.to_string()))?;
    open_path(parsed.get_filename(), options).await
}

pub(super) async fn open_path(path: &Path, options: &StoreOptions) -> Result<Opened, StoreError> {
    let path = path.to_path_buf();
    let location = path.display().to_string();
    let found = inspect(&path, options).await?;
    let mut write_opts = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(if options.synchronous_full {
            SqliteSynchronous::Full
        } else {
            SqliteSynchronous::Normal
        })
        .busy_timeout(options.busy_timeout)
        .foreign_keys(true)
        .disable_statement_logging();
    if found == Found::Fresh {
        // Must precede the first table; lets retention hand pages back with incremental_vacuum.
        write_opts = write_opts.auto_vacuum(SqliteAutoVacuum::Incremental);
    }
    let writer = connect_retrying(&path, &location, options, || {
        pool_options(1)
            .min_connections(1)
            .acquire_timeout(WRITER_QUEUE_TIMEOUT)
            .connect_with(write_opts.clone())
    })
    .await?;
    initialise(&writer, &path, &location, found, options).await?;
    let read_opts = SqliteConnectOptions::new()
        .filename(&path)
        .busy_timeout(options.busy_timeout)
        .foreign_keys(true)
        .pragma("query_only", "ON")
        .disable_statement_logging();
    let reader = connect_retrying(&path, &location, options, || {
        pool_options(options.readers.max(1))
            .acquire_timeout(WRITER_QUEUE_TIMEOUT)
            .connect_with(read_opts.clone())
    })
    .await?;
    Ok(Opened { location, writer, reader })
}

async fn open_memory(options: &StoreOptions) -> Result<Opened, StoreError> {
    let location = ":memory:".to_owned();
    // sqlx names each `:memory:` database uniquely; the single connection is kept forever
    // because the database lives exactly as long as its last connection.
    let opts = SqliteConnectOptions::from_str("sqlite::memory:")
        .map_err(|e| StoreError::InvalidUrl { url: "sqlite::memory:".into(), reason: e.to_string() })?
        .foreign_keys(true)
        .disable_statement_logging();
    let pool = pool_options(1)
        .min_connections(1)
        .acquire_timeout(WRITER_QUEUE_TIMEOUT)
        .connect_with(opts)
        .await
        .map_err(|source| StoreError::Database { location: location.clone(), op: "open", source })?;
    initialise(&pool, Path::new(":memory:"), &location, Found::Fresh, options).await?;
    Ok(Opened { location, writer: pool.clone(), reader: pool })
}

fn pool_options(max: u32) -> SqlitePoolOptions {
    SqlitePoolOptions::new()
        .max_connections(max)
        .idle_timeout(None)
        .max_lifetime(None)
        .test_before_acquire(false)
}

/// Connects, retrying while another process holds the lock SQLite needs to switch a new
/// file to WAL (that switch cannot wait on the busy timeout).
async fn connect_retrying<F, Fut>(
    path: &Path,
    location: &str,
    options: &StoreOptions,
    mut connect: F,
) -> Result<SqlitePool, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<SqlitePool, sqlx::Error>>,
{
    let max = options.write_attempts.max(1);
    let mut tries = 0;
    loop {
        tries += 1;
        match connect().await {
            Ok(pool) => return Ok(pool),
            Err(e) if is_busy(&e) && tries < max => tokio::time::sleep(backoff(tries)).await,
            Err(e) if is_busy(&e) => {
                return Err(StoreError::Contended {
                    location: location.to_owned(),
                    op: "open",
                    attempts: tries,
                });
            }
            Err(e) => return Err(classify(path, location, "open", e)),
        }
    }
}

fn classify(path: &Path, location: &str, op: &'static str, e: sqlx::Error) -> StoreError {
    if is_corrupt(&e) {
        StoreError::Corrupt { path: path.to_path_buf(), message: e.to_string() }
    } else {
        StoreError::Database { location: location.to_owned(), op, source: e }
    }
}

/// Reads the file header and, for a SQLite file, asks SQLite (read-only) whose it is. A hot
/// journal left by a killed writer is rolled back first when the file turns out to be ours
/// (or was empty before the interrupted transaction); another program's file is refused
/// untouched.
async fn inspect(path: &PathBuf, options: &StoreOptions) -> Result<Found, StoreError> {
    let location = path.display().to_string();
    let first = inspect_once(path, options, false).await;
    let recoverable = match &first {
        // The file was empty before the interrupted transaction: whatever it holds now was
        // never committed, and the file was being created (by us: nobody else creates it
        // at this path and then dies before the first commit).
        Err(StoreError::NotSqlite { .. }) => journal_initial_pages(path).await == Some(0),
        Err(StoreError::Database { source, .. }) if is_hot_journal(source) => {
            // Whose is it? Read the file as it is, ignoring the journal, writing nothing.
            match inspect_once(path, options, true).await {
                Ok(_) => true,
                Err(e) => return Err(e),
            }
        }
        _ => false,
    };
    if !recoverable {
        return first;
    }
    tracing::warn!(
        target: "executus_store",
        path = %location,
        "rolling back a hot journal left by a writer that died inside a transaction"
    );
    roll_back_hot_journal(path, &location, options).await?;
    inspect_once(path, options, false).await
}

/// The database size (pages) before the transaction a `-journal` file belongs to, when
/// that file is a SQLite rollback journal.
async fn journal_initial_pages(path: &Path) -> Option<u32> {
    const JOURNAL_MAGIC: [u8; 8] = [0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7];
    let mut name = path.file_name()?.to_os_string();
    name.push("-journal");
    let bytes = tokio::fs::read(path.with_file_name(name)).await.ok()?;
    if bytes.len() < 20 || bytes[..8] != JOURNAL_MAGIC {
        return None;
    }
    Some(u32::from_be_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]))
}

/// Lets SQLite roll back a hot journal: the first read of a read-write connection does it.
async fn roll_back_hot_journal(
    path: &Path,
    location: &str,
    options: &StoreOptions,
) -> Result<(), StoreError> {
    let opts = SqliteConnectOptions::new()
        .filename(path)
        .busy_timeout(options.busy_timeout)
        .disable_statement_logging();
    let err = |e| classify(path, location, "roll back hot journal", e);
    let mut conn = SqliteConnection::connect_with(&opts).await.map_err(err)?;
    let read = sqlx::query("SELECT count(*) FROM sqlite_schema").fetch_one(&mut conn).await;
    let _ = conn.close().await;
    read.map(|_| ()).map_err(err)
}

/// One ownership check; `immutable` reads the file as it is, ignoring journals and locks.
async fn inspect_once(path: &PathBuf, options: &StoreOptions, immutable: bool) -> Result<Found, StoreError> {
    let io = |source| StoreError::Io { path: path.clone(), source };
    let mut header = Vec::with_capacity(100);
    match tokio::fs::File::open(path).await {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Found::Fresh),
        Err(e) => return Err(io(e)),
        Ok(file) => {
            use tokio::io::AsyncReadExt;
            file.take(100).read_to_end(&mut header).await.map_err(io)?;
        }
    }
    if header.is_empty() {
        // SQLite treats a zero-length file as an empty database.
        return Ok(Found::Fresh);
    }
    if header.len() < 100 || !header.starts_with(SQLITE_MAGIC) {
        return Err(StoreError::NotSqlite { path: path.clone() });
    }
    let location = path.display().to_string();
    let opts = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .immutable(immutable)
        .busy_timeout(options.busy_timeout)
        .disable_statement_logging();
    let mut conn =
        SqliteConnection::connect_with(&opts).await.map_err(|e| classify(path, &location, "inspect", e))?;
    let result = inspect_schema(&mut conn, path, &location).await;
    let _ = conn.close().await;
    result
}

async fn inspect_schema(
    conn: &mut SqliteConnection,
    path: &Path,
    location: &str,
) -> Result<Found, StoreError> {
    let err = |e| classify(path, location, "inspect", e);
    let application_id: i32 = sqlx::query("PRAGMA application_id")
        .fetch_one(&mut *conn)
        .await
        .map_err(err)?
        .try_get(0)
        .map_err(err)?;
    if application_id == APPLICATION_ID {
        return Ok(Found::Ours { needs_id: false });
    }
    let tables: Vec<String> = sqlx::query(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(err)?
    .iter()
    .map(|r| r.try_get::<String, _>(0))
    .collect::<Result<_, _>>()
    .map_err(err)?;
    if application_id == 0 && tables.is_empty() {
        return Ok(Found::Fresh);
    }
    if application_id == 0 && tables.iter().any(|t| t == "executus_meta") {
        let owner: Option<String> = sqlx::query("SELECT value FROM executus_meta WHERE key = 'owner'")
            .fetch_optional(&mut *conn)
            .await
            .map_err(err)?
            .map(|r| r.try_get(0))
            .transpose()
            .map_err(err)?;
        if owner.as_deref() == Some("executus-store") {
            return Ok(Found::Ours { needs_id: true });
        }
    }
    Err(StoreError::Foreign { path: path.to_path_buf(), application_id, tables })
}

/// Marks a fresh database as ours and applies the migrations.
async fn initialise(
    writer: &SqlitePool,
    path: &Path,
    location: &str,
    found: Found,
    options: &StoreOptions,
) -> Result<(), StoreError> {
    if matches!(found, Found::Fresh | Found::Ours { needs_id: true }) {
        sqlx::query(&format!("PRAGMA application_id = {APPLICATION_ID}"))
            .execute(writer)
            .await
            .map_err(|e| classify(path, location, "mark database", e))?;
    }
    // Two processes creating the same file at once may both try migration 1; the loser
    // fails on the migrations table and, on retry, finds it applied.
    let max = options.write_attempts.max(1);
    let mut tries = 0;
    loop {
        tries += 1;
        match MIGRATOR.run(writer).await {
            Ok(()) => return Ok(()),
            Err(MigrateError::VersionMissing(version)) => {
                return Err(StoreError::NewerSchema { location: location.to_owned(), version });
            }
            Err(MigrateError::Execute(e)) if is_corrupt(&e) => {
                return Err(StoreError::Corrupt { path: path.to_path_buf(), message: e.to_string() });
            }
            Err(e @ (MigrateError::Execute(_) | MigrateError::ExecuteMigration(..))) if tries < max => {
                tracing::debug!(target: "executus_store", error = %e, attempt = tries, "migration attempt failed; retrying");
                tokio::time::sleep(backoff(tries)).await;
            }
            Err(source) => return Err(StoreError::Migration { location: location.to_owned(), source }),
        }
    }
}
