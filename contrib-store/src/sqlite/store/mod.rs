//! [`SqliteStore`]: the one entry point — opening, connections, contention handling, page
//! statistics. Its guarantees are documented on [`SqliteStore`] itself.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{Sqlite, SqlitePool};
use sqlx::{Row, Transaction};

use crate::error::StoreError;
use crate::options::StoreOptions;
use crate::sqlite::audit::SqliteAuditStore;
use crate::sqlite::budget::SqliteBudgetStore;
use crate::sqlite::chat::SqliteChatStore;
use crate::sqlite::checkpoint::SqliteCheckpointStore;
use crate::sqlite::persona::SqlitePersonaStore;
use crate::sqlite::schedule::SqliteScheduleStore;
use crate::sqlite::skill::SqliteSkillStore;

mod open;
mod retention;

/// The `PRAGMA application_id` of every database this crate creates ("EXEC" in ASCII).
pub const APPLICATION_ID: i32 = 0x4558_4543;

/// Page accounting of the database file (WAL content included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreStats {
    /// Bytes per page.
    pub page_size: u64,
    /// Pages in the database.
    pub page_count: u64,
    /// Pages on the free list (allocated in the file but unused).
    pub freelist_count: u64,
}

impl StoreStats {
    /// Bytes in pages that hold data: `(page_count - freelist_count) * page_size`.
    pub fn used_bytes(&self) -> u64 {
        self.page_count.saturating_sub(self.freelist_count) * self.page_size
    }
}

/// The SQLite store: the one entry point. `SqliteStore::open("sqlite://executus.db")` creates the file if
/// missing, checks that an existing file is ours, applies the embedded migrations, and hands
/// out the typed stores ([`SqliteStore::checkpoints`], [`SqliteStore::personas`], [`SqliteStore::skills`],
/// [`SqliteStore::audit`], [`SqliteStore::budget`], [`SqliteStore::schedule`]), all sharing its connections.
///
/// Connections: SQLite allows one writer at a time, so the store keeps exactly one writer
/// connection (a pool of one: callers queue for it in order) and a small pool of reader
/// connections (default 4) that, thanks to WAL, read a consistent snapshot without ever
/// blocking the writer or being blocked by it. Every write is one `BEGIN IMMEDIATE`
/// transaction, so the write lock is taken up front and a transaction never fails half-way
/// on a lock upgrade.
///
/// Contention: between processes sharing the file, a writer waits up to the busy timeout
/// (default 5 s) for the lock, and the whole transaction is retried with jittered backoff on
/// `SQLITE_BUSY`/`SQLITE_LOCKED` up to `write_attempts` times; a caller never sees a raw
/// `SQLITE_BUSY`, only [`StoreError::Contended`] if the lock stays held through all of it.
///
/// Durability: WAL with `synchronous = NORMAL`. A committed transaction survives the
/// process dying at any instant (SIGKILL, panic, OOM kill): the crash test in
/// `tests/it/crash.rs` kills a real process at many points and checks exactly that. What it
/// does not survive is the machine losing power or the OS crashing before the WAL is synced
/// (at the next checkpoint): the last commits may then be lost, never half-applied — the
/// database stays consistent. Use [`StoreOptions::synchronous_full`] if that window matters
/// more than write latency.
///
/// What it does not do: it never deletes or rewrites a file it did not create (see
/// [`SqliteStore::open`]), and it never reads or changes the payloads the core writes.
///
/// Cheap to clone; clones share the connections.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    location: String,
    writer: SqlitePool,
    reader: SqlitePool,
    options: StoreOptions,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore").field("location", &self.inner.location).finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url`: `sqlite://path.db`,
    /// `sqlite:path.db`, or `sqlite::memory:` for a private in-memory database.
    ///
    /// An existing file is opened only if it is ours: empty, or a SQLite database carrying
    /// our `application_id` or our marker table. Anything else — a file that is not SQLite,
    /// another program's database — is refused before a single byte of it is written.
    ///
    /// # Errors
    /// [`StoreError::InvalidUrl`], [`StoreError::NotSqlite`], [`StoreError::Foreign`],
    /// [`StoreError::Corrupt`], [`StoreError::NewerSchema`] (the file was written by a
    /// newer build), [`StoreError::Migration`], [`StoreError::Io`] or
    /// [`StoreError::Database`], each naming the path.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with(url, StoreOptions::default()).await
    }

    /// [`SqliteStore::open`] with options.
    ///
    /// # Errors
    /// As [`SqliteStore::open`].
    pub async fn open_with(url: &str, options: StoreOptions) -> Result<Self, StoreError> {
        let opened = open::open(url, &options).await?;
        Ok(Self {
            inner: Arc::new(Inner {
                location: opened.location,
                writer: opened.writer,
                reader: opened.reader,
                options,
            }),
        })
    }

    /// Opens the database file at `path` (see [`SqliteStore::open`]).
    ///
    /// # Errors
    /// As [`SqliteStore::open`].
    pub async fn open_path(
        path: impl AsRef<std::path::Path>,
        options: StoreOptions,
    ) -> Result<Self, StoreError> {
        let opened = open::open_path(path.as_ref(), &options).await?;
        Ok(Self {
            inner: Arc::new(Inner {
                location: opened.location,
                writer: opened.writer,
                reader: opened.reader,
                options,
            }),
        })
    }

    /// Where the store lives (a path, or `:memory:`).
    pub fn location(&self) -> &str {
        &self.inner.location
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &StoreOptions {
        &self.inner.options
    }

    /// The checkpoint store (`executus::ports::CheckpointStore`) over this database.
    pub fn checkpoints(&self) -> SqliteCheckpointStore {
        SqliteCheckpointStore::new(self.clone())
    }

    /// The persona store (`executus_persona::PersonaStore`) over this database.
    pub fn personas(&self) -> SqlitePersonaStore {
        SqlitePersonaStore::new(self.clone())
    }

    /// The skill store (`executus_skill::SkillStore`) over this database.
    pub fn skills(&self) -> SqliteSkillStore {
        SqliteSkillStore::new(self.clone())
    }

    /// The audit store (`executus_audit::AuditStore`) over this database.
    pub fn audit(&self) -> SqliteAuditStore {
        SqliteAuditStore::new(self.clone())
    }

    /// The budget store (`executus_budget::BudgetStore`) over this database.
    pub fn budget(&self) -> SqliteBudgetStore {
        SqliteBudgetStore::new(self.clone())
    }

    /// The schedule store (`executus_schedule::ScheduleStore`) over this database.
    pub fn schedule(&self) -> SqliteScheduleStore {
        SqliteScheduleStore::new(self.clone())
    }

    /// The chat history store (`executus_chat::ChatHistory`) over this database.
    pub fn chats(&self) -> SqliteChatStore {
        SqliteChatStore::new(self.clone())
    }

    /// Page accounting of the database (reads through the WAL, so it is current).
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn stats(&self) -> Result<StoreStats, StoreError> {
        self.read("stats", || async {
            let row = sqlx::query(
                "SELECT p.page_size, c.page_count, f.freelist_count \
                 FROM pragma_page_size() AS p, pragma_page_count() AS c, pragma_freelist_count() AS f",
            )
            .fetch_one(&self.inner.reader)
            .await
            .map_err(|e| self.db("stats", e))?;
            let get = |i: usize| -> Result<u64, StoreError> {
                let v: i64 = row.try_get(i).map_err(|e| self.db("stats", e))?;
                Ok(v.max(0) as u64)
            };
            Ok(StoreStats { page_size: get(0)?, page_count: get(1)?, freelist_count: get(2)? })
        })
        .await
    }

    /// Copies the WAL back into the database file and truncates it (SQLite does this on its
    /// own every ~1000 pages; call it before copying the file or to reclaim WAL space).
    ///
    /// # Errors
    /// [`StoreError::Database`].
    pub async fn checkpoint_wal(&self) -> Result<(), StoreError> {
        let mut conn = self.inner.writer.acquire().await.map_err(|e| self.db("wal checkpoint", e))?;
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&mut *conn)
            .await
            .map_err(|e| self.db("wal checkpoint", e))?;
        Ok(())
    }

    /// Closes every connection (after in-flight operations finish). Further calls fail.
    pub async fn close(&self) {
        self.inner.writer.close().await;
        self.inner.reader.close().await;
    }

    /// Every spend row `(scope, at_ms, amount)`, oldest first (for [`crate::copy`]).
    pub(crate) async fn export_spend(&self) -> Result<Vec<(String, i64, i64)>, StoreError> {
        sqlx::query_as("SELECT scope, at_ms, amount FROM budget_spend ORDER BY at_ms, id")
            .fetch_all(&self.inner.reader)
            .await
            .map_err(|e| self.db("export spend", e))
    }

    /// Every watermark `(job, fire_ms)` (for [`crate::copy`]).
    pub(crate) async fn export_watermarks(&self) -> Result<Vec<(String, i64)>, StoreError> {
        sqlx::query_as("SELECT job, fire_ms FROM schedule_watermarks ORDER BY job")
            .fetch_all(&self.inner.reader)
            .await
            .map_err(|e| self.db("export watermarks", e))
    }

    pub(crate) fn reader_pool(&self) -> &SqlitePool {
        &self.inner.reader
    }

    pub(crate) fn now_ms(&self) -> u64 {
        self.inner.options.clock.now_ms()
    }

    pub(crate) fn db(&self, op: &'static str, source: sqlx::Error) -> StoreError {
        StoreError::Database { location: self.inner.location.clone(), op, source }
    }

    pub(crate) fn rejected(&self, what: impl Into<String>, reason: impl Into<String>) -> StoreError {
        StoreError::Rejected {
            location: self.inner.location.clone(),
            what: what.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn undecodable(&self, message: impl Into<String>) -> StoreError {
        StoreError::Undecodable { location: self.inner.location.clone(), message: message.into() }
    }

    /// Begins a write transaction on the single writer connection, taking the write lock
    /// up front (`BEGIN IMMEDIATE`).
    pub(crate) async fn begin_write(
        &self,
        op: &'static str,
    ) -> Result<Transaction<'static, Sqlite>, StoreError> {
        self.inner.writer.begin_with("BEGIN IMMEDIATE").await.map_err(|e| self.db(op, e))
    }

    /// Begins a read transaction (one consistent snapshot) on a reader connection.
    pub(crate) async fn begin_read(
        &self,
        op: &'static str,
    ) -> Result<Transaction<'static, Sqlite>, StoreError> {
        self.inner.reader.begin().await.map_err(|e| self.db(op, e))
    }

    /// Runs one write transaction (`attempt` begins, writes and commits), retrying the
    /// whole of it on lock contention with jittered exponential backoff.
    pub(crate) async fn write<T, F, Fut>(&self, op: &'static str, attempt: F) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        self.retrying(op, attempt).await
    }

    /// Runs a read, retrying on the rare busy answers a WAL reader can get (recovery).
    pub(crate) async fn read<T, F, Fut>(&self, op: &'static str, attempt: F) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        self.retrying(op, attempt).await
    }

    async fn retrying<T, F, Fut>(&self, op: &'static str, mut attempt: F) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let max = self.inner.options.write_attempts.max(1);
        let mut tries = 0;
        loop {
            tries += 1;
            match attempt().await {
                Err(e) if e.is_busy() => {
                    if tries >= max {
                        return Err(StoreError::Contended {
                            location: self.inner.location.clone(),
                            op,
                            attempts: tries,
                        });
                    }
                    tracing::debug!(target: "executus_store", op, attempt = tries, "database busy; retrying");
                    tokio::time::sleep(backoff(tries)).await;
                }
                other => return other,
            }
        }
    }
}

/// 10 ms, 20 ms, 40 ms ... capped at 500 ms, with up to 50% jitter so processes that met
/// the same lock do not retry in lockstep.
fn backoff(attempt: u32) -> Duration {
    let base = 10u64.saturating_mul(1 << attempt.min(6)).min(500);
    Duration::from_millis(base / 2 + fastrand::u64(0..=base / 2))
}
