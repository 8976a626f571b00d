//! [`PgSkillStore`]: the skill battery's `SkillStore` on PostgreSQL.
//!
//! Layout: `skills` (lifecycle state, active pointer, newest version) and `skill_versions`
//! (immutable rows, the [`SkillVersion`] as JSON; a trigger refuses updates and deletes).
//!
//! Guarantees: as the SQLite store's — every write method is one transaction that locks the
//! skill's row (`SELECT ... FOR UPDATE`), checks and writes, so of racing `put_version`s for
//! one number on any number of machines exactly one wins and the others get
//! [`SkillError::VersionExists`]; domain refusals write nothing; `active` reads the skill and
//! its active version in one statement (one snapshot).

use async_trait::async_trait;
use executus_skill::{ActiveSkill, Skill, SkillError, SkillState, SkillStore, SkillVersion};
use sqlx::postgres::{PgConnection, PgRow, Postgres};
use sqlx::{Row, Transaction};

use super::PgStore;
use super::checkpoint::i64_of;
use crate::error::StoreError;

const PORT: &str = "skill";

const SKILL_COLUMNS: &str = "name, state, active_version, latest_version, created_ms, updated_ms";

/// The skill store on PostgreSQL. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PgSkillStore {
    store: PgStore,
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

impl PgSkillStore {
    /// The skill store over `store` (also [`PgStore::skills`]).
    pub fn new(store: PgStore) -> Self {
        Self { store }
    }

    /// The underlying store.
    pub fn store(&self) -> &PgStore {
        &self.store
    }

    fn decode_skill(&self, row: &PgRow) -> Result<Skill, StoreError> {
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

    async fn skill_in(&self, conn: &mut PgConnection, name: &str) -> Result<Option<Skill>, StoreError> {
        // Inside a write transaction: the row stays locked until it ends, so the check made
        // on it holds when the write commits (a concurrent writer waits, then re-reads).
        let row = sqlx::query(&format!("SELECT {SKILL_COLUMNS} FROM skills WHERE name = $1 FOR UPDATE"))
            .bind(name)
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| self.store.db("skill read", e))?;
        row.map(|r| self.decode_skill(&r)).transpose()
    }

    async fn version_in(
        &self,
        conn: &mut PgConnection,
        name: &str,
        version: u32,
    ) -> Result<Option<SkillVersion>, StoreError> {
        let json: Option<String> =
            sqlx::query_scalar("SELECT record FROM skill_versions WHERE skill = $1 AND version = $2")
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
        B: Fn(Transaction<'static, Postgres>) -> Fut,
        Fut: std::future::Future<
                Output = Result<(Transaction<'static, Postgres>, Result<T, SkillError>), StoreError>,
            >,
    {
        let store = &self.store;
        let body = &body;
        let outcome: Decided<T> = store
            .write(op, || async move {
                let tx = store.begin(op).await?;
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
        tx: &mut PgConnection,
        first: &SkillVersion,
        json: &str,
        created: i64,
    ) -> Result<Result<Skill, SkillError>, StoreError> {
        const OP: &str = "skill create";
        let store = &self.store;
        let inserted = sqlx::query(
            "INSERT INTO skills (name, state, active_version, latest_version, created_ms, updated_ms) \
             VALUES ($1, 'draft', 1, 1, $2, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(&first.name)
        .bind(created)
        .execute(&mut *tx)
        .await
        .map_err(|e| store.db(OP, e))?;
        if inserted.rows_affected() == 0 {
            return Ok(Err(SkillError::AlreadyExists { skill: first.name.clone() }));
        }
        sqlx::query("INSERT INTO skill_versions (skill, version, created_ms, record) VALUES ($1, 1, $2, $3)")
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
        tx: &mut PgConnection,
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
            "INSERT INTO skill_versions (skill, version, created_ms, record) VALUES ($1, $2, $3, $4)",
        )
        .bind(&version.name)
        .bind(i64::from(version.version))
        .bind(created)
        .bind(json)
        .execute(&mut *tx)
        .await
        .map_err(|e| store.db(OP, e))?;
        sqlx::query("UPDATE skills SET latest_version = $2, updated_ms = $3 WHERE name = $1")
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
        tx: &mut PgConnection,
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
            sqlx::query("UPDATE skills SET state = $2, updated_ms = $3 WHERE name = $1")
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
        tx: &mut PgConnection,
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
        sqlx::query("UPDATE skills SET active_version = $2, updated_ms = $3 WHERE name = $1")
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
impl SkillStore for PgSkillStore {
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
        let store = &self.store;
        let row = sqlx::query(&format!("SELECT {SKILL_COLUMNS} FROM skills WHERE name = $1"))
            .bind(name)
            .fetch_optional(store.pool())
            .await
            .map_err(|e| port(store.db("skill get", e)))?;
        row.map(|r| self.decode_skill(&r)).transpose().map_err(port)
    }

    async fn list(&self) -> Result<Vec<Skill>, SkillError> {
        let store = &self.store;
        let rows = sqlx::query(&format!("SELECT {SKILL_COLUMNS} FROM skills ORDER BY name"))
            .fetch_all(store.pool())
            .await
            .map_err(|e| port(store.db("skill list", e)))?;
        rows.iter().map(|r| self.decode_skill(r)).collect::<Result<_, _>>().map_err(port)
    }

    async fn get_version(&self, name: &str, version: u32) -> Result<Option<SkillVersion>, SkillError> {
        let mut conn =
            self.store.pool().acquire().await.map_err(|e| port(self.store.db("skill get version", e)))?;
        self.version_in(&mut conn, name, version).await.map_err(port)
    }

    async fn list_versions(&self, name: &str) -> Result<Vec<SkillVersion>, SkillError> {
        const OP: &str = "skill list versions";
        let store = &self.store;
        let rows =
            sqlx::query("SELECT version, record FROM skill_versions WHERE skill = $1 ORDER BY version")
                .bind(name)
                .fetch_all(store.pool())
                .await
                .map_err(|e| port(store.db(OP, e)))?;
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
        // One statement: the skill row and the version it points at come from one snapshot.
        let row = sqlx::query(
            "SELECT s.name, s.state, s.active_version, s.latest_version, s.created_ms, s.updated_ms, v.record \
             FROM skills s LEFT JOIN skill_versions v ON v.skill = s.name AND v.version = s.active_version \
             WHERE s.name = $1",
        )
        .bind(name)
        .fetch_optional(store.pool())
        .await
        .map_err(|e| port(store.db(OP, e)))?;
        let Some(row) = row else { return Ok(None) };
        let skill = self.decode_skill(&row).map_err(port)?;
        let json: Option<String> = row.try_get(6).map_err(|e| port(store.db(OP, e)))?;
        match json {
            Some(json) => {
                let version =
                    self.decode_version(name, i64::from(skill.active_version), &json).map_err(port)?;
                Ok(Some(ActiveSkill { skill, version }))
            }
            None => Err(port(store.undecodable(format!(
                "skill {name:?} points at version {} which is not stored",
                skill.active_version
            )))),
        }
    }
}
