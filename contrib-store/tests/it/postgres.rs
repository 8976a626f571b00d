//! What only the PostgreSQL backend does: run leases across processes (the advisory lock,
//! the lease row, expiry, a dead connection, a holder that stopped heartbeating) and the run
//! queue (picks with `SKIP LOCKED`, orphans, per-tenant caps). Two `Store`s on one database
//! are two processes' views: each has its own pool and its own lease connection.

use std::time::Duration;

use executus::ports::{CheckpointStore, StoredStatus};
use executus::{Identity, RunId, RunnableAgent};
use executus_store::postgres::{PgRunQueue, QueuedRequest};
use executus_store::{Store, StoreOptions};

use crate::common::{append, meta};
use crate::pg::PgDb;

/// Many times what any step here takes on a loaded debug build: a hang guard only.
const HANG: Duration = Duration::from_secs(300);

async fn open(db: &PgDb, expiry: Duration) -> Store {
    Store::open_with(&db.url, StoreOptions::default().lease_expiry(expiry)).await.unwrap()
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + HANG;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn request(tenant: &str) -> QueuedRequest {
    QueuedRequest {
        agent: RunnableAgent::new("worker-test", "You help.", "mock/m"),
        input: vec![executus::llm::Message::user("hi")],
        identity: Identity::new("ada", tenant),
        lane: None,
        deliver: false,
        conversation: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lease_is_held_by_one_store_and_released_on_drop() {
    let Some(db) = PgDb::create("a_lease_is_held_by_one_store_and_released_on_drop").await else { return };
    let (first, second) =
        (open(&db, Duration::from_secs(10)).await, open(&db, Duration::from_secs(10)).await);
    let run = RunId::new();
    let held = first.checkpoints().claim(run).await.unwrap().expect("a free run is granted");
    assert!(second.checkpoints().claim(run).await.unwrap().is_none(), "another process is refused");
    assert!(first.checkpoints().claim(run).await.unwrap().is_none(), "not even the same store twice");
    assert!(second.checkpoints().claim(RunId::new()).await.unwrap().is_some(), "leases are per run");
    drop(held);
    // The release runs on the lease connection; the next claim sees it.
    eventually("the released lease is granted to the other store", || async {
        second.checkpoints().claim(run).await.unwrap().is_some_and(|c| {
            drop(c);
            true
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_holders_lease_is_taken_over_only_after_it_expires() {
    let Some(db) = PgDb::create("a_dead_holders_lease_is_taken_over_only_after_it_expires").await else {
        return;
    };
    // A long expiry: the refusal below cannot be a lease that ran out on a slow machine.
    let expiry = Duration::from_secs(20);
    let (first, second) = (open(&db, expiry).await, open(&db, expiry).await);
    let run = RunId::new();
    let _held = first.checkpoints().claim(run).await.unwrap().expect("granted");
    let lost = first.as_postgres().unwrap().lease_lost();
    // The holder's connection dies (as with SIGKILL): its advisory lock is freed at once...
    let admin = db.open().await;
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT backend_pid FROM executus.run_leases WHERE run_id = $1")
        .bind(run.0)
        .fetch_one(&pool)
        .await
        .unwrap();
    sqlx::query("SELECT pg_terminate_backend($1)").bind(pid).execute(&pool).await.unwrap();
    // ...but the lease row still runs: nobody may start it before it expires.
    assert!(second.checkpoints().claim(run).await.unwrap().is_none(), "not before the lease expires");
    // Its expiry comes (moved to now by the server's clock, as time would).
    sqlx::query(
        "UPDATE executus.run_leases SET expires_ms = executus.executus_now_ms() - 1 WHERE run_id = $1",
    )
    .bind(run.0)
    .execute(&pool)
    .await
    .unwrap();
    eventually("the expired lease is taken over", || async {
        second.checkpoints().claim(run).await.unwrap().is_some_and(|c| {
            std::mem::forget(c);
            true
        })
    })
    .await;
    // The first store found out through its heartbeat that its leases are gone.
    tokio::time::timeout(HANG, lost.cancelled()).await.expect("the holder is told its lease was lost");
    drop(admin);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_holder_that_stopped_heartbeating_is_ended_and_replaced() {
    let Some(db) = PgDb::create("a_holder_that_stopped_heartbeating_is_ended_and_replaced").await else {
        return;
    };
    let (first, second) =
        (open(&db, Duration::from_secs(30)).await, open(&db, Duration::from_secs(30)).await);
    let run = RunId::new();
    let _held = first.checkpoints().claim(run).await.unwrap().expect("granted");
    let lost = first.as_postgres().unwrap().lease_lost();
    assert!(second.checkpoints().claim(run).await.unwrap().is_none());
    // The holder's connection is alive but its lease ran out (a hung process): the claimer
    // ends that session, which frees the lock, and takes the run.
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    sqlx::query(
        "UPDATE executus.run_leases SET expires_ms = executus.executus_now_ms() - 1 WHERE run_id = $1",
    )
    .bind(run.0)
    .execute(&pool)
    .await
    .unwrap();
    let taken = second.checkpoints().claim(run).await.unwrap();
    assert!(taken.is_some(), "an expired lease whose holder still has a session is taken over");
    let owner: String = sqlx::query_scalar("SELECT owner FROM executus.run_leases WHERE run_id = $1")
        .bind(run.0)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(owner, second.as_postgres().unwrap().owner());
    tokio::time::timeout(HANG, lost.cancelled()).await.expect("the old holder learns it lost the lease");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn picks_skip_locked_rows_honour_tenant_caps_and_find_orphans() {
    let Some(db) = PgDb::create("picks_skip_locked_rows_honour_tenant_caps_and_find_orphans").await else {
        return;
    };
    let (a, b) = (open(&db, Duration::from_secs(1)).await, open(&db, Duration::from_secs(1)).await);
    let (qa, qb): (PgRunQueue, PgRunQueue) =
        (a.as_postgres().unwrap().queue(), b.as_postgres().unwrap().queue());
    let mut runs = Vec::new();
    for i in 0..12 {
        let run = RunId::new();
        let tenant = if i < 8 { "big" } else { "small" };
        qa.enqueue(run, &request(tenant)).await.unwrap();
        runs.push(run);
    }
    assert!(qa.enqueue(runs[0], &request("big")).await.is_err(), "one row per run");
    // Two workers pick at once, round after round, with a cap of 3 per tenant: never more
    // than 3 of a tenant active, no run picked twice, and in the end 3 + 3.
    let (mut pa, mut pb) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let (ra, rb) = tokio::join!(qa.pick(5, Some(3)), qb.pick(5, Some(3)));
        pa.extend(ra.unwrap());
        pb.extend(rb.unwrap());
    }
    let mut all: Vec<RunId> = pa.iter().chain(&pb).map(|p| p.run_id).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), pa.len() + pb.len(), "a run picked twice");
    let tenant_of = |r: &RunId| if runs[..8].contains(r) { "big" } else { "small" };
    let big = all.iter().filter(|r| tenant_of(r) == "big").count();
    let small = all.iter().filter(|r| tenant_of(r) == "small").count();
    assert_eq!((big, small), (3, 3), "the cap holds across workers");
    // The picks hold leases: the runtime's claim adopts them, another store is refused.
    let one = all[0];
    let picker = if pa.iter().any(|p| p.run_id == one) { &a } else { &b };
    let other = if std::ptr::eq(picker, &a) { &b } else { &a };
    assert!(other.checkpoints().claim(one).await.unwrap().is_none());
    let claim = picker.checkpoints().claim(one).await.unwrap().expect("the reserved lease is handed over");
    // The worker that picked `one` dies: the run is orphaned once its lease expires, and the
    // other worker picks it (first, before queued work).
    picker.checkpoints().append(&[append(&meta(one, 1), StoredStatus::Running, 0..2)]).await.unwrap();
    std::mem::forget(claim);
    let pid: i32 = sqlx::query_scalar("SELECT backend_pid FROM executus.run_leases WHERE run_id = $1")
        .bind(one.0)
        .fetch_one(&sqlx::PgPool::connect(&db.url).await.unwrap())
        .await
        .unwrap();
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .execute(&sqlx::PgPool::connect(&db.url).await.unwrap())
        .await
        .unwrap();
    let other_queue = other.as_postgres().unwrap().queue();
    let deadline = tokio::time::Instant::now() + HANG;
    let found = loop {
        if let Some(p) = other_queue.pick(1, Some(3)).await.unwrap().into_iter().next() {
            break p;
        }
        assert!(tokio::time::Instant::now() < deadline, "the orphan was never picked");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(found.run_id, one, "orphans go first");
    assert!(found.orphan);
    assert!(matches!(found.start, executus_store::postgres::queue::PickedStart::Resume));
    // Finishing marks the queue row; the worker's outcome completes it.
    other.checkpoints().finish(one, StoredStatus::Completed).await.unwrap();
    let entry = other_queue.entry(one).await.unwrap().unwrap();
    assert_eq!(entry.state, executus_store::postgres::QueueState::Finished);
    other_queue.complete(one, "completed", &serde_json::json!({"output": "ok"})).await.unwrap();
    let entry = other_queue.entry(one).await.unwrap().unwrap();
    assert_eq!(entry.state, executus_store::postgres::QueueState::Done);
    assert_eq!(entry.outcome.unwrap()["output"], "ok");
    assert!(entry.picks >= 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_enqueued_through_the_port_keeps_its_request_and_conversation() {
    let Some(db) = PgDb::create("a_run_enqueued_through_the_port_keeps_its_request_and_conversation").await
    else {
        return;
    };
    let store = open(&db, Duration::from_secs(10)).await;
    let queue = store.as_postgres().unwrap().queue();
    let run = RunId::new();
    let agent = RunnableAgent::new("worker-test", "You help.", "mock/m");
    let request = executus::RunRequest::new(agent, vec![executus::llm::Message::user("hi")])
        .identity(Identity::new("ada", "acme"))
        .conversation("sess-7");
    // The port's future follows the run to its end; only the enqueue is under test here.
    let _follow = executus::ports::RunQueue::enqueue(&queue, run, &request).await.unwrap();
    let picked = tokio::time::timeout(HANG, queue.pick(1, None)).await.unwrap().unwrap();
    let [picked] = picked.as_slice() else { panic!("one run picked, got {}", picked.len()) };
    assert_eq!(picked.run_id, run);
    let executus_store::postgres::queue::PickedStart::Fresh(queued) = &picked.start else {
        panic!("a fresh run starts from its request, got {:?}", picked.start)
    };
    assert_eq!(queued.conversation.as_deref(), Some("sess-7"), "the conversation id travels with the run");
    assert_eq!(queued.identity, Identity::new("ada", "acme"));
    assert_eq!(queued.agent.name, "worker-test");
}
