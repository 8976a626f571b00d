//! Host leases: `acquire(host, purpose) -> Lease`, exclusive across every process sharing
//! the store, released on drop, expiring when its holder dies.
//!
//! # Guarantees
//! - **Exclusive.** The store grants a host to one holder at a time (atomically, also across
//!   processes on one SQLite file).
//! - **Expires with its holder.** A lease lasts `ttl` and is renewed every `ttl / 3` by a
//!   task of the holder; a holder that dies (SIGKILL, a crash) stops renewing, and the lease
//!   expires at most `ttl` later.
//! - **Released on drop.** Dropping a [`Lease`] stops its renewal and releases it (in the
//!   background; [`Lease::release`] waits for it).
//! - **Loss is noticed.** A lease revoked by a takeover (see [`Leases::take_over`]) or
//!   expired while its renewals failed reports [`Lease::is_lost`] and resolves
//!   [`Lease::lost`]; work holding it (a bench) stops.
//!
//! # What it does not do
//! Leases are advisory: they keep the fleet's own actions, benches and routing off a host;
//! they do not stop other clients of the host.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clock::{Clock, utc_now};
use crate::error::FleetError;
use crate::state::{Fact, LeaseView, StateHandle};
use crate::store::{FleetStore, LeaseRecord};

/// Grants leases on hosts.
#[derive(Debug, Clone)]
pub struct Leases {
    store: Arc<dyn FleetStore>,
    clock: Arc<dyn Clock>,
    ttl: Duration,
    state: Option<StateHandle>,
}

fn until(now: DateTime<Utc>, ttl: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX)
}

pub(crate) fn view(l: &LeaseRecord) -> LeaseView {
    LeaseView { holder: l.holder.clone(), purpose: l.purpose.clone(), expires: l.expires }
}

impl Leases {
    /// Leases over `store`, lasting `ttl` between renewals, timed by `clock`.
    pub fn new(store: Arc<dyn FleetStore>, clock: Arc<dyn Clock>, ttl: Duration) -> Self {
        Self { store, clock, ttl, state: None }
    }

    /// Reports lease changes to the fleet state too.
    #[must_use]
    pub fn with_state(mut self, state: StateHandle) -> Self {
        self.state = Some(state);
        self
    }

    fn report(&self, host: &str, lease: Option<LeaseView>) {
        if let Some(state) = &self.state {
            state.apply(Fact::Lease { host: host.to_owned(), lease });
        }
    }

    /// Takes `host` for `purpose`.
    ///
    /// # Errors
    /// [`FleetError::LeaseHeld`] naming the holder in the way; [`FleetError::Store`].
    pub async fn acquire(&self, host: &str, purpose: &str) -> Result<Lease, FleetError> {
        let holder = format!("{purpose}:{}:{}", std::process::id(), uuid::Uuid::new_v4().simple());
        let now = utc_now(&*self.clock);
        let record = match self.store.acquire(host, &holder, purpose, now, until(now, self.ttl)).await? {
            Ok(record) => record,
            Err(held) => return Err(FleetError::LeaseHeld { host: host.to_owned(), held }),
        };
        self.report(host, Some(view(&record)));
        let (lost_tx, lost_rx) = watch::channel(false);
        let heartbeat = tokio::spawn(heartbeat(self.clone(), host.to_owned(), holder.clone(), lost_tx));
        Ok(Lease { leases: self.clone(), record, lost: lost_rx, heartbeat: Some(heartbeat), done: false })
    }

    /// The unexpired lease on `host`, if any.
    ///
    /// # Errors
    /// [`FleetError::Store`].
    pub async fn current(&self, host: &str) -> Result<Option<LeaseRecord>, FleetError> {
        Ok(self.store.current(host, utc_now(&*self.clock)).await?)
    }

    /// Revokes whatever lease `host` has; its holder notices at its next renewal.
    ///
    /// # Errors
    /// [`FleetError::Store`].
    pub async fn take_over(&self, host: &str) -> Result<Option<LeaseRecord>, FleetError> {
        let revoked = self.store.revoke(host).await?;
        self.report(host, None);
        Ok(revoked)
    }

    /// The lease time.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}

async fn heartbeat(leases: Leases, host: String, holder: String, lost: watch::Sender<bool>) {
    let every = leases.ttl / 3;
    let mut last_ok = utc_now(&*leases.clock);
    loop {
        tokio::time::sleep(every).await;
        let now = utc_now(&*leases.clock);
        match leases.store.renew(&host, &holder, until(now, leases.ttl)).await {
            Ok(true) => last_ok = now,
            Ok(false) => {
                tracing::warn!(host = %host, "fleet: lease lost (taken over or expired)");
                let _ = lost.send(true);
                return;
            }
            Err(e) => {
                tracing::warn!(host = %host, error = %e, "fleet: lease renewal failed");
                if now >= until(last_ok, leases.ttl) {
                    let _ = lost.send(true);
                    return;
                }
            }
        }
    }
}

/// A held lease. Dropping it releases it.
#[derive(Debug)]
pub struct Lease {
    leases: Leases,
    record: LeaseRecord,
    lost: watch::Receiver<bool>,
    heartbeat: Option<JoinHandle<()>>,
    done: bool,
}

impl Lease {
    /// The host.
    pub fn host(&self) -> &str {
        &self.record.host
    }

    /// The holder id.
    pub fn holder(&self) -> &str {
        &self.record.holder
    }

    /// The record as granted.
    pub fn record(&self) -> &LeaseRecord {
        &self.record
    }

    /// The lease was revoked or expired.
    pub fn is_lost(&self) -> bool {
        *self.lost.borrow()
    }

    /// Resolves when the lease is lost (never, while it is held).
    pub async fn lost(&self) {
        let mut rx = self.lost.clone();
        if rx.wait_for(|lost| *lost).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Releases the lease now.
    ///
    /// # Errors
    /// [`FleetError::Store`].
    pub async fn release(mut self) -> Result<(), FleetError> {
        self.done = true;
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
        let released = self.leases.store.release(&self.record.host, &self.record.holder).await?;
        if released {
            self.leases.report(&self.record.host, None);
        }
        Ok(())
    }

    /// Stops renewing and leaves the lease in the store until it expires, as a holder that
    /// dies would (for tests of expiry, and for a holder handing over to its own restart).
    pub fn abandon(mut self) {
        self.done = true;
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
        if self.done {
            return;
        }
        let leases = self.leases.clone();
        let (host, holder) = (self.record.host.clone(), self.record.holder.clone());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Ok(true) = leases.store.release(&host, &holder).await {
                    leases.report(&host, None);
                }
            });
        }
    }
}
