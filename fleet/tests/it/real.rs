//! Against real `llama-server` processes the stand-in starts: load and unload change the
//! state the fleet shows; the bench measures TTFT and tokens/s from llama.cpp's `timings`;
//! `auto:*` prefers the host with the model loaded and fails over when that host stops
//! mid-run; the response names the host that answered.

use executus_fleet::{ActionKind, ActionRequest, AutoSpec, BenchGrid, Candidate};
use executus_llm::{ChainOptions, Registry, Request};

use crate::common::{self, HANG_GUARD, state_of, until};
use crate::standin::{ModelDef, Options, Standin};

fn load(host: &str, model: &str) -> ActionRequest {
    ActionRequest {
        host: host.into(),
        kind: ActionKind::Load(model.into()),
        confirm: false,
        actor: "test".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_unload_and_a_swap_show_in_the_fleet_state() {
    if !common::llama("real::load_unload_and_a_swap_show_in_the_fleet_state") {
        return;
    }
    let standin = Standin::start(Options {
        models: vec![ModelDef::new("chat", "tiny-llama3"), ModelDef::new("qwen", "tiny-qwen2")],
        ..Options::default()
    })
    .await;
    let fleet = common::fleet(common::config(&[("desk", standin.url())]), None).await;
    let mut sub = fleet.subscribe().await.expect("subscribe");
    until(&mut sub, "connected", |s| s.host("desk").is_some_and(|h| h.synced)).await;
    let ticket = fleet.act(load("desk", "chat")).await.expect("queued");
    tokio::time::timeout(HANG_GUARD, ticket.done()).await.expect("hang guard").expect("loaded");
    until(&mut sub, "chat ready", |s| state_of(s, "desk", "chat").as_deref() == Some("ready")).await;
    let s = until(&mut sub, "the warm-up request's activity row", |s| {
        s.host("desk").is_some_and(|h| h.recent.iter().any(|a| a.model == "chat" && a.status == 200))
    })
    .await;
    assert!(
        s.host("desk").expect("desk").recent.iter().any(|a| a.output_tokens >= 1),
        "tokens from the real answer"
    );
    // Loading another model swaps: chat stops, qwen starts.
    let ticket = fleet.act(load("desk", "qwen")).await.expect("queued");
    tokio::time::timeout(HANG_GUARD, ticket.done()).await.expect("hang guard").expect("loaded");
    let s = until(&mut sub, "swapped", |s| state_of(s, "desk", "qwen").as_deref() == Some("ready")).await;
    assert_eq!(state_of(&s, "desk", "chat").as_deref(), Some("stopped"));
    let ticket = fleet
        .act(ActionRequest {
            host: "desk".into(),
            kind: ActionKind::UnloadAll,
            confirm: false,
            actor: "test".into(),
        })
        .await
        .expect("queued");
    tokio::time::timeout(HANG_GUARD, ticket.done()).await.expect("hang guard").expect("unloaded");
    until(&mut sub, "all stopped", |s| state_of(s, "desk", "qwen").as_deref() == Some("stopped")).await;
    // The states were recorded as history.
    let recorded = fleet.store().latest_model_states("desk").await.expect("states");
    assert!(recorded.iter().all(|r| r.state.as_str() == "stopped"), "{recorded:?}");
    standin.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bench_measures_ttft_and_tokens_per_second_from_timings() {
    if !common::llama("real::the_bench_measures_ttft_and_tokens_per_second_from_timings") {
        return;
    }
    let standin =
        Standin::start(Options { models: vec![ModelDef::new("chat", "tiny-llama3")], ..Options::default() })
            .await;
    let fleet = common::fleet(common::config(&[("desk", standin.url())]), None).await;
    let mut sub = fleet.subscribe().await.expect("subscribe");
    until(&mut sub, "connected", |s| s.host("desk").is_some_and(|h| h.synced)).await;
    let grid = BenchGrid {
        prompt_tokens: vec![16, 64],
        gen_tokens: vec![8],
        concurrency: vec![1, 2],
        repetitions: 2,
    };
    let mut progress = Vec::new();
    let run = tokio::time::timeout(HANG_GUARD * 3, fleet.bench("desk", "chat", &grid, |p| progress.push(p)))
        .await
        .expect("hang guard")
        .expect("bench");
    assert_eq!(run.aborted, None);
    assert_eq!(run.cells.len(), 4);
    for cell in &run.cells {
        assert_eq!((cell.errors, cell.first_error.as_deref()), (0, None), "{cell:?}");
        assert_eq!(cell.samples, 2 * cell.concurrency, "{cell:?}");
        assert!(cell.ttft_ms.p50 > 0.0 && cell.ttft_ms.p90 >= cell.ttft_ms.p50, "{cell:?}");
        assert!(cell.gen_tps.p50 > 0.0 && cell.prompt_tps.p50 > 0.0, "{cell:?}");
        assert_eq!(cell.source, executus_fleet::bench::SpeedSource::Timings, "llama.cpp sends timings");
        assert!(cell.prompt_tokens_seen >= f64::from(cell.prompt_tokens) * 0.5, "{cell:?}");
    }
    assert_eq!(progress.last().map(|p| (p.done, p.total)), Some((grid.requests(), grid.requests())));
    // Stored, on the leaderboard, fed to routing; the lease is gone.
    let board = fleet.leaderboard().await.expect("leaderboard");
    assert_eq!(board.len(), 1);
    assert_eq!((board[0].host.as_str(), board[0].model.as_str()), ("desk", "chat"));
    assert_eq!(Some(board[0].gen_tps), run.gen_tps());
    let s = until(&mut sub, "bench speed", |s| {
        s.host("desk").is_some_and(|h| h.speeds.get("chat").is_some_and(|sp| sp.bench.is_some()))
    })
    .await;
    assert_eq!(s.host("desk").expect("desk").speeds["chat"].bench, run.gen_tps());
    assert!(fleet.leases().current("desk").await.expect("lease").is_none());
    standin.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_prefers_the_loaded_host_and_fails_over_when_it_stops_mid_run() {
    if !common::llama("real::auto_prefers_the_loaded_host_and_fails_over_when_it_stops_mid_run") {
        return;
    }
    let a =
        Standin::start(Options { models: vec![ModelDef::new("chat", "tiny-llama3")], ..Options::default() })
            .await;
    let b =
        Standin::start(Options { models: vec![ModelDef::new("chat", "tiny-llama3")], ..Options::default() })
            .await;
    let mut config = common::config(&[("a", a.url()), ("b", b.url())]);
    config.autos = vec![AutoSpec {
        name: "chat".into(),
        candidates: vec![
            Candidate::parse("a/chat").expect("valid"),
            Candidate::parse("b/chat").expect("valid"),
        ],
    }];
    let fleet = common::fleet(config, None).await;
    let mut sub = fleet.subscribe().await.expect("subscribe");
    until(&mut sub, "both connected", |s| s.hosts.iter().all(|h| h.synced)).await;
    // Only b has the model loaded, so b is preferred although a comes first in the list.
    let ticket = fleet.act(load("b", "chat")).await.expect("queued");
    tokio::time::timeout(HANG_GUARD, ticket.done()).await.expect("hang guard").expect("loaded");
    until(&mut sub, "b ready", |s| state_of(s, "b", "chat").as_deref() == Some("ready")).await;

    let registry = Registry::new();
    fleet.register_auto(&registry, &ChainOptions::default()).expect("register");
    let model = registry.parse("auto:chat").expect("auto:chat is a model spec");
    let request = || Request { max_tokens: Some(8), ..Request::user("Say hi.") };
    let first = tokio::time::timeout(HANG_GUARD, model.generate(request()))
        .await
        .expect("hang guard")
        .expect("answer");
    assert_eq!(first.provider, "b", "served by the host with the model loaded");
    assert_eq!(a.state_of("chat"), Some("stopped"), "a was not asked: no swap");

    // Mid-run, b goes away (its model server stops and it stops answering) before the fleet
    // has noticed: the next request fails over through the chain to a, which loads it.
    b.shutdown().await;
    let second = tokio::time::timeout(HANG_GUARD, model.generate(request()))
        .await
        .expect("hang guard")
        .expect("failover");
    assert_eq!(second.provider, "a", "the response names the host that answered");
    assert_eq!(a.state_of("chat"), Some("ready"));
    // Once b is seen down, routing skips it outright.
    until(&mut sub, "b not connected", |s| {
        s.host("b").is_some_and(|h| h.liveness != executus_fleet::Liveness::Connected)
    })
    .await;
    let chain =
        fleet.auto_models(registry.health(), &ChainOptions::default())[0].route().await.expect("route");
    assert_eq!(chain.targets().next(), Some("a/chat"), "a (loaded, connected) first now");
    a.shutdown().await;
}
