//! [`SqliteSkillStore`]: the skill battery's `SkillStore` on SQLite.
//!
//! Layout (migration `0003_skills.sql`): `skills` (one row per skill: state, active pointer,
//! newest version, times) and `skill_versions` (one immutable row per version, the
//! [`SkillVersion`] as JSON, keyed by skill + version).
//!
//! Guarantees:
//! - Every write method is one `BEGIN IMMEDIATE` transaction that reads the stored state,
//!   checks it (version numbering, lifecycle transition, pointer range) and writes, so the
//!   check and the write are atomic also against other processes sharing the file. Of racing
//!   `put_version`s for one number exactly one wins; the others get
//!   [`SkillError::VersionExists`].
//! - Domain refusals come back as typed [`SkillError`]s and write nothing; backend failures
//!   are [`SkillError::Port`].
//! - Versions are immutable: the store never updates or deletes a `skill_versions` row, and
//!   triggers in the schema refuse it should anyone else try.
//! - `active` reads the skill and its active version in one snapshot.
//!
//! Not guaranteed: an order between concurrent writers beyond what each method promises.

use async_trait::async_trait;
use executus_skill::{ActiveSkill, Skill, SkillError, SkillState, SkillStore, SkillVersion};
use sqlx::sqlite::{Sqlite, SqliteConnection, SqliteRow};
use sqlx::{Row, Transaction};

use crate::error::StoreError;
use crate::sqlite::SqliteStore;
use crate::sqlite::checkpoint::i64_of;

const PORT: &str = "skill";

const SKILL_COLUMNS: &str = "name, state, active_version, latest_version, created_ms, updated_ms";

/// The skill store. Cheap to clone (shares the [`SqliteStore`]).
#[derive(Debug, Clone)]
pub struct SqliteSkillStore {
    store: SqliteStore,
}

/// The outcome of a write transaction: the outer error is the backend's (retried on
/// contention), the inner one a domain refusal decided inside the transaction.
type Decided<T> = Result<Result<T, SkillError>, StoreError>;

fn port(e: StoreError) -> SkillError {
    SkillError::Port(e.into_port(PORT))
}

fn not_found(name: &str) -> SkillError {
    SkillError::NotFound { skill: name.to_owned() }
}

impl SqliteSkillStore {
    /// The skill store over `store` (also [`SqliteStore::skills`]).
    pub fn new(store: SqliteStore) -> Self {
        Self { store }
    }

    /// The underlying store.
    pub fn store(&self) -> &SqliteStore {
        &self.store
    }

    fn decode_skill(&self, row: &SqliteRow) -> Result<Skill, StoreError> {
        const OP: &str = "skill decode";
        let store = &self.store;
        let name: String = row.try_get(0).map_err(|e| store.db(OP, e))?;
        let state: String = row.try_get(1).map_err(|e| store.db(OP, e))?;
        let state: SkillState =
            state.parse().map_err(|e| store.undecodable(format!("skill {name:?}: {e}")))?;
        let number = |i: usize, what: &str| -> Result<u32, StoreError> {
            let v: i64 = row.try_get(i).map_err(|e| store.db(OP, e))?;
            u32::try_from(v)
                .map_err(|_| store.undecodable(format!("skill {name:?}: {what} {v} is out of range")))
        };
        let active_version = number(2, "active_version")?;
        let latest_version = number(3, "latest_version")?;
        let time = |i: usize| -> Result<u64, StoreError> {
            let v: i64 = row.try_get(i).map_err(|e| store.db(OP, e))?;
            Ok(v.max(0) as u64)
        };
        Ok(Skill { state, active_version, latest_version, created_ms: time(4)?, updated_ms: time(5)?, name })
    }

    fn decode_version(&self, name: &str, version: i64, json: &str) -> Result<SkillVersion, StoreError> {
        let v: SkillVersion = serde_json::from_str(json)
            .map_err(|e| self.store.undecodable(format!("skill {name:?} version {version}: {e}")))?;
        if v.name != name || i64::from(v.version) != version {
            return Err(self.store.undecodable(format!(
                "skill {name:?} version {version}: the row holds {:?} version {}",
                v.name, v.version
            )));
        }
        Ok(v)
    }

    async fn skill_in(&self, conn: &mut SqliteConnection, name: &str) -> Result<Option<Skill>, StoreError> {
        let row = sqlx::query(&format!("SELECT {SKILL_COLUMNS} FROM skills WHERE name = ?1"))
            .bind(name)
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| self.store.db("skill read", e))?;
        row.map(|r| self.decode_skill(&r)).transpose()
    }

    async fn version_in(
        &self,
        conn: &mut SqliteConnection,
        name: &str,
        version: u32,
    ) -> Result<Option<SkillVersion>, StoreError> {
        let json: Option<String> =
            sqlx::query_scalar("SELECT record FROM skill_versions WHERE skill = ?1 AND version = ?2")
                .bind(name)
                .bind(i64::from(version))
                .fetch_optional(&mut *conn)
                .await
                .map_err(|e| self.store.db("skill version read", e))?;
        json.map(|j| self.decode_version(name, i64::from(version), &j)).transpose()
    }

    fn encode(&self, version: &SkillVersion) -> Result<(String, i64), StoreError> {
        let json = serde_json::to_string(version).map_err(|e| {
            self.store
                .rejected(format!("skill {:?} version {}", version.name, version.version), e.to_string())
        })?;
        let created = i64_of(&self.store, "created_ms", version.created_ms)?;
        Ok((json, created))
    }

    /// Runs one write transaction: `body` reads, checks and writes; the transaction commits
    /// only when it decides `Ok`, and is rolled back on a refusal.
    async fn decide<T, B, Fut>(&self, op: &'static str, body: B) -> Result<T, SkillError>
    where
        B: Fn(Transaction<'static, Sqlite>) -> Fut,
        Fut: std::future::Future<
                Output = Result<(Transaction<'static, Sqlite>, Result<T, SkillError>), StoreError>,
            >,
    {
        let store = &self.store;
        let body = &body;
        let outcome: Decided<T> = store
            .write(op, || async move {
                let tx = store.begin_write(op).await?;
                let (tx, decided) = body(tx).await?;
                match decided {
                    Ok(value) => {
                        tx.commit().await.map_err(|e| store.db(op, e))?;
                        Ok(Ok(value))
                    }
                    Err(refused) => {
                        tx.rollback().await.map_err(|e| store.db(op, e))?;
                        Ok(Err(refused))
                    }
                }
            })
            .await;
        outcome.map_err(port)?
    }

    async fn create_in(
        &self,
        tx: &mut SqliteConnection,
        first: &SkillVersion,
        json: &str,
        created: i64,
    ) -> Result<Result<Skill, SkillError>, StoreError> {
        const OP: &str = "skill create";
        let store = &self.store;
        let inserted = sqlx::query(
            "INSERT INTO skills (name, state, active_version, latest_version, created_ms, updated_ms) \
             VALUES (?1, 'draft', 1, 1, ?2, ?2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(&first.name)
        .bind(created)
        .execute(&mut *tx)
        .await
        .map_err(|e| store.db(OP, e))?;
        if inserted.rows_affected() == 0 {
            return Ok(Err(SkillError::AlreadyExists { skill: first.name.clone() }));
        }
        sqlx::query("INSERT INTO skill_versions (skill, version, created_ms, record) VALUES (?1, 1, ?2, ?3)")
            .bind(&first.name)
            .bind(created)
            .bind(json)
            .execute(&mut *tx)
            .await
            .map_err(|e| store.db(OP, e))?;
        Ok(Ok(Skill {
            name: first.name.clone(),
            state: SkillState::Draft,
            active_version: 1,
            latest_version: 1,
            created_ms: first.created_ms,
            updated_ms: first.created_ms,
        }))
    }

    async fn put_version_in(
        &self,
        tx: &mut SqliteConnection,
        version: &SkillVersion,
        json: &str,
        created: i64,
    ) -> Result<Result<Skill, SkillError>, StoreError> {
        const OP: &str = "skill put version";
        let store = &self.store;
        let Some(mut skill) = self.skill_in(tx, &version.name).await? else {
            return Ok(Err(not_found(&version.name)));
        };
        let latest = skill.latest_version;
        if version.version <= latest {
            return Ok(Err(SkillError::VersionExists {
                skill: version.name.clone(),
                version: version.version,
            }));
        }
        if version.version != latest + 1 {
            return Ok(Err(SkillError::VersionOutOfOrder {
                skill: version.name.clone(),
                version: version.version,
                expected: latest + 1,
            }));
        }
        sqlx::query(
            "INSERT INTO skill_versions (skill, version, created_ms, record) VALUES (?1, ?2, ?3, ?4)",
        )
        .bind(&version.name)
        .bind(i64::from(version.version))
        .bind(created)
        .bind(json)
        .execute(&mut *tx)
        .await
        .map_err(|e| store.db(OP, e))?;
        sqlx::query("UPDATE skills SET latest_version = ?2, updated_ms = ?3 WHERE name = ?1")
            .bind(&version.name)
            .bind(i64::from(version.version))
            .bind(created)
            .execute(&mut *tx)
            .await
            .map_err(|e| store.db(OP, e))?;
        skill.latest_version = version.version;
        skill.updated_ms = version.created_ms;
        Ok(Ok(skill))
    }

    async fn set_state_in(
        &self,
        tx: &mut SqliteConnection,
        name: &str,
        to: SkillState,
        at_ms: u64,
    ) -> Result<Result<Skill, SkillError>, StoreError> {
        let at = i64_of(&self.store, "at_ms", at_ms)?;
        let Some(mut skill) = self.skill_in(tx, name).await? else {
            return Ok(Err(not_found(name)));
        };
        if let Err(refused) = skill.state.check_transition(name, to) {
            return Ok(Err(refused));
        }
        if skill.state != to {
            sqlx::query("UPDATE skills SET state = ?2, updated_ms = ?3 WHERE name = ?1")
                .bind(name)
                .bind(to.as_str())
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.store.db("skill set state", e))?;
            skill.state = to;
            skill.updated_ms = at_ms;
        }
        Ok(Ok(skill))
    }

    async fn set_active_in(
        &self,
        tx: &mut SqliteConnection,
        name: &str,
        version: u32,
        at_ms: u64,
    ) -> Result<Result<Skill, SkillError>, StoreError> {
        let at = i64_of(&self.store, "at_ms", at_ms)?;
        let Some(mut skill) = self.skill_in(tx, name).await? else {
            return Ok(Err(not_found(name)));
        };
        let latest = skill.latest_version;
        if version == 0 || version > latest {
            return Ok(Err(SkillError::VersionNotFound { skill: name.to_owned(), version, latest }));
        }
        sqlx::query("UPDATE skills SET active_version = ?2, updated_ms = ?3 WHERE name = ?1")
            .bind(name)
            .bind(i64::from(version))
            .bind(at)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.store.db("skill set active version", e))?;
        skill.active_version = version;
        skill.updated_ms = at_ms;
        Ok(Ok(skill))
    }
}

#[async_trait]
impl SkillStore for SqliteSkillStore {
    async fn create(&self, first: SkillVersion) -> Result<Skill, SkillError> {
        first.validate()?;
        if first.version != 1 {
            return Err(SkillError::VersionOutOfOrder {
                skill: first.name,
                version: first.version,
                expected: 1,
            });
        }
        let (json, created) = self.encode(&first).map_err(port)?;
        let (first, json) = (&first, json.as_str());
        self.decide("skill create", |mut tx| async move {
            let decided = self.create_in(&mut tx, first, json, created).await?;
            Ok((tx, decided))
        })
        .await
    }

    async fn put_version(&self, version: SkillVersion) -> Result<Skill, SkillError> {
        version.validate()?;
        let (json, created) = self.encode(&version).map_err(port)?;
        let (version, json) = (&version, json.as_str());
        self.decide("skill put version", |mut tx| async move {
            let decided = self.put_version_in(&mut tx, version, json, created).await?;
            Ok((tx, decided))
        })
        .await
    }

    async fn get(&self, name: &str) -> Result<Option<Skill>, SkillError> {
        const OP: &str = "skill get";
        let store = &self.store;
        store
            .read(OP, || async move {
                let mut conn = store.reader_pool().acquire().await.map_err(|e| store.db(OP, e))?;
                self.skill_in(&mut conn, name).await
            })
            .await
            .map_err(port)
    }

    async fn list(&self) -> Result<Vec<Skill>, SkillError> {
        const OP: &str = "skill list";
        let store = &self.store;
        let rows = store
            .read(OP, || async move {
                sqlx::query(&format!("SELECT {SKILL_COLUMNS} FROM skills ORDER BY name"))
                    .fetch_all(store.reader_pool())
                    .await
                    .map_err(|e| store.db(OP, e))
            })
            .await
            .map_err(port)?;
        rows.iter().map(|r| self.decode_skill(r)).collect::<Result<_, _>>().map_err(port)
    }

    async fn get_version(&self, name: &str, version: u32) -> Result<Option<SkillVersion>, SkillError> {
        const OP: &str = "skill get version";
        let store = &self.store;
        store
            .read(OP, || async move {
                let mut conn = store.reader_pool().acquire().await.map_err(|e| store.db(OP, e))?;
                self.version_in(&mut conn, name, version).await
            })
            .await
            .map_err(port)
    }

    async fn list_versions(&self, name: &str) -> Result<Vec<SkillVersion>, SkillError> {
        const OP: &str = "skill list versions";
        let store = &self.store;
        let rows = store
            .read(OP, || async move {
                sqlx::query("SELECT version, record FROM skill_versions WHERE skill = ?1 ORDER BY version")
                    .bind(name)
                    .fetch_all(store.reader_pool())
                    .await
                    .map_err(|e| store.db(OP, e))
            })
            .await
            .map_err(port)?;
        rows.iter()
            .map(|r| {
                let version: i64 = r.try_get(0).map_err(|e| store.db(OP, e))?;
                let json: String = r.try_get(1).map_err(|e| store.db(OP, e))?;
                self.decode_version(name, version, &json)
            })
            .collect::<Result<_, _>>()
            .map_err(port)
    }

    async fn set_state(&self, name: &str, to: SkillState, at_ms: u64) -> Result<Skill, SkillError> {
        self.decide("skill set state", |mut tx| async move {
            let decided = self.set_state_in(&mut tx, name, to, at_ms).await?;
            Ok((tx, decided))
        })
        .await
    }

    async fn set_active_version(&self, name: &str, version: u32, at_ms: u64) -> Result<Skill, SkillError> {
        self.decide("skill set active version", |mut tx| async move {
            let decided = self.set_active_in(&mut tx, name, version, at_ms).await?;
            Ok((tx, decided))
        })
        .await
    }

    async fn active(&self, name: &str) -> Result<Option<ActiveSkill>, SkillError> {
        const OP: &str = "skill active";
        let store = &self.store;
        store
            .read(OP, || async move {
                // One read transaction: the skill row and the version it points at come from
                // the same snapshot.
                let mut tx = store.begin_read(OP).await?;
                let Some(skill) = self.skill_in(&mut tx, name).await? else { return Ok(None) };
                let version = self.version_in(&mut tx, name, skill.active_version).await?;
                tx.commit().await.map_err(|e| store.db(OP, e))?;
                match version {
                    Some(version) => Ok(Some(ActiveSkill { skill, version })),
                    None => Err(store.undecodable(format!(
                        "skill {name:?} points at version {} which is not stored",
                        skill.active_version
                    ))),
                }
            })
            .await
            .map_err(port)
    }
}
