//! PostgreSQL for the tests: the server named by `EXECUTUS_TEST_PG_URL` (started by
//! `scripts/peer-postgres.sh`, which `scripts/test.sh` runs), one fresh database per use,
//! dropped afterwards.
//!
//! Without the variable: under `CI=true` every PostgreSQL test fails (a CI run must never
//! pass without them); elsewhere each one says loudly, on stderr and on the terminal, that it
//! did not run.

use std::sync::atomic::{AtomicU32, Ordering};

use executus_store::Store;
use sqlx::Connection as _;

/// The admin URL, or `None` after the notice (outside CI).
pub fn admin_url(test: &str) -> Option<String> {
    match std::env::var("EXECUTUS_TEST_PG_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url.trim().to_owned()),
        _ => {
            let line = format!(
                "NOTICE: {test}: PostgreSQL part NOT RUN — EXECUTUS_TEST_PG_URL is not set (start one with scripts/peer-postgres.sh)"
            );
            if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
                panic!("{line}; under CI=true a PostgreSQL that cannot be started fails the run");
            }
            // Straight to the process's stderr (the harness captures `eprintln!` of passing
            // tests, not this), and to the terminal when there is one.
            use std::io::Write as _;
            let _ = writeln!(std::io::stderr(), "{line}");
            if let Ok(mut tty) = std::fs::OpenOptions::new().write(true).open("/dev/tty") {
                let _ = writeln!(tty, "{line}");
            }
            None
        }
    }
}

/// A database of its own on the test server, dropped (connections and all) with this value.
pub struct PgDb {
    /// Its URL.
    pub url: String,
    name: String,
    admin: String,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl PgDb {
    /// A fresh, empty database, or `None` when no server is configured (see [`admin_url`]).
    pub async fn create(test: &str) -> Option<Self> {
        let admin = admin_url(test)?;
        let name = format!(
            "executus_t{}_{}_{:04x}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst),
            fastrand::u16(..)
        );
        let mut conn =
            sqlx::PgConnection::connect(&admin).await.expect("the test PostgreSQL accepts connections");
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.expect("create database");
        let _ = conn.close().await;
        let url = with_database(&admin, &name);
        Some(Self { url, name, admin })
    }

    /// A new store on this database.
    pub async fn open(&self) -> Store {
        Store::open(&self.url).await.expect("open the PostgreSQL store")
    }
}

/// `admin` with its database replaced by `name`.
pub fn with_database(admin: &str, name: &str) -> String {
    let (base, query) = match admin.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (admin, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..].find('/').map_or(base.len(), |i| scheme_end + i);
    let mut url = format!("{}/{name}", &base[..host_end]);
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    url
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Drop runs outside (or inside) a runtime: a thread of its own with its own runtime.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                    let _ = conn.close().await;
                }
            });
        })
        .join();
    }
}
