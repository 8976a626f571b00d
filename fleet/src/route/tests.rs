use chrono::DateTime;

use super::*;

fn host(
    liveness: Liveness,
    leased: bool,
    in_flight: u64,
    models: &[(&str, ModelState)],
    speeds: &[(&str, f64)],
) -> HostRoute {
    HostRoute {
        liveness,
        since: DateTime::from_timestamp(0, 0).expect("epoch"),
        leased,
        in_flight,
        models: models.iter().map(|(m, s)| ((*m).to_owned(), s.clone())).collect(),
        speeds: speeds.iter().map(|(m, s)| ((*m).to_owned(), *s)).collect(),
    }
}

fn cands(list: &[&str]) -> Vec<Candidate> {
    list.iter().map(|c| Candidate::parse(c).expect("host/model")).collect()
}

fn order(view: &RoutingView, c: &[Candidate]) -> Vec<String> {
    decide(view, c).order.iter().map(|i| c[*i].to_string()).collect()
}

#[test]
fn a_loaded_model_beats_an_idle_host_that_would_have_to_swap() {
    let view = RoutingView::from_hosts([
        ("a".into(), host(Liveness::Connected, false, 3, &[("m", ModelState::Ready)], &[("m", 10.0)])),
        ("b".into(), host(Liveness::Connected, false, 0, &[("m", ModelState::Stopped)], &[("m", 99.0)])),
        ("c".into(), host(Liveness::Connected, false, 0, &[("m", ModelState::Starting)], &[])),
    ]);
    assert_eq!(order(&view, &cands(&["b/m", "c/m", "a/m"])), ["a/m", "c/m", "b/m"]);
}

#[test]
fn then_fewest_in_flight_then_fastest_then_configuration_order() {
    let ready = [("m", ModelState::Ready)];
    let view = RoutingView::from_hosts([
        ("a".into(), host(Liveness::Connected, false, 2, &ready, &[("m", 50.0)])),
        ("b".into(), host(Liveness::Connected, false, 1, &ready, &[("m", 10.0)])),
        ("c".into(), host(Liveness::Connected, false, 1, &ready, &[("m", 30.0)])),
        ("d".into(), host(Liveness::Connected, false, 1, &ready, &[])),
        ("e".into(), host(Liveness::Connected, false, 1, &ready, &[])),
    ]);
    assert_eq!(
        order(&view, &cands(&["a/m", "e/m", "b/m", "d/m", "c/m"])),
        ["c/m", "b/m", "e/m", "d/m", "a/m"]
    );
}

#[test]
fn down_leased_and_unknown_hosts_are_skipped_and_reconnecting_ones_go_last() {
    let ready = [("m", ModelState::Ready)];
    let view = RoutingView::from_hosts([
        ("down".into(), host(Liveness::Down, false, 0, &ready, &[])),
        ("leased".into(), host(Liveness::Connected, true, 0, &ready, &[])),
        ("flaky".into(), host(Liveness::Reconnecting, false, 0, &ready, &[])),
        ("ok".into(), host(Liveness::Connected, false, 9, &[("m", ModelState::Stopped)], &[])),
    ]);
    let c = cands(&["down/m", "leased/m", "ghost/m", "flaky/m", "ok/m"]);
    let d = decide(&view, &c);
    assert_eq!(d.order, [4, 3]);
    assert_eq!(d.skipped, [(0, SkipWhy::Down), (1, SkipWhy::Leased), (2, SkipWhy::UnknownHost)]);
}

#[tokio::test]
async fn every_candidate_skipped_is_an_exhausted_error_listing_why() {
    let state =
        FleetState::new([("a", "http://127.0.0.1:9")], DateTime::from_timestamp(0, 0).expect("epoch"));
    let board = Arc::new(RoutingBoard::new(&state));
    let mut view = state.host("a").expect("a").clone();
    view.liveness = Liveness::Down;
    board.publish_host(&view);
    let provider = executus_llm::providers::llama_swap::LlamaSwap::new(
        executus_llm::providers::ProviderConfig::new("a", "http://127.0.0.1:9"),
    );
    let model = executus_llm::Provider::model(&provider, "m");
    let auto = AutoModel::new(
        "code",
        vec![(Candidate::parse("a/m").expect("valid"), model)],
        Arc::new(Arc::clone(&board)),
        HealthTracker::default(),
        ChainOptions::default(),
    );
    assert_eq!((auto.provider(), auto.model_id()), ("fleet", "auto:code"));
    let err = auto.generate(Request::user("hi")).await.expect_err("nothing to route to");
    assert_eq!(err.kind, ErrorKind::Exhausted);
    assert_eq!(err.skipped, ["a/m (host down)"]);
}
