//! The dispatch guard: each cap, the ancestry loop, unknown parents, finishing a root.

use executus::RunId;
use executus::dispatch::{DispatchError, DispatchGuard, DispatchLimits, DispatchTicket};

async fn guard(max_depth: u32, max_fanout: u32, max_total: u32) -> DispatchGuard {
    DispatchGuard::spawn(DispatchLimits { max_depth, max_fanout, max_total }).await.expect("guard starts")
}

async fn rooted(guard: &DispatchGuard, agent: &str, input: &str) -> RunId {
    let root = RunId::new();
    guard.register_root(root, agent, input).await.expect("root registered");
    root
}

#[tokio::test]
async fn depth_is_capped() {
    let guard = DispatchGuard::spawn(DispatchLimits::default()).await.unwrap();
    let root = rooted(&guard, "a0", "in").await;
    let mut parent = root;
    for depth in 1..=3 {
        let child = RunId::new();
        let ticket = guard.dispatch(parent, child, &format!("a{depth}"), "in").await.unwrap();
        assert_eq!(ticket, DispatchTicket { root, depth });
        parent = child;
    }
    let refused = guard.dispatch(parent, RunId::new(), "a4", "in").await.unwrap_err();
    assert_eq!(refused, DispatchError::DepthExceeded { depth: 4, max: 3 });
    assert_eq!(
        refused.to_string(),
        "dispatch refused: the child would be at depth 4, deeper than the maximum of 3"
    );
    assert_eq!(guard.tree(root).await.unwrap().total, 3, "the refused child was not admitted");
}

#[tokio::test]
async fn fanout_per_parent_is_capped() {
    let guard = guard(3, 3, 32).await;
    let root = rooted(&guard, "planner", "plan").await;
    let mut children = Vec::new();
    for i in 0..3 {
        let child = RunId::new();
        guard.dispatch(root, child, "worker", &format!("part {i}")).await.unwrap();
        children.push(child);
    }
    let refused = guard.dispatch(root, RunId::new(), "worker", "part 3").await.unwrap_err();
    assert_eq!(refused, DispatchError::FanoutExceeded { parent: root, children: 3, max: 3 });
    assert_eq!(
        refused.to_string(),
        format!("dispatch refused: run {root} has already dispatched 3 children, the maximum is 3")
    );
    // The cap is per parent: a child still has its own fan-out.
    let ticket = guard.dispatch(children[0], RunId::new(), "helper", "x").await.unwrap();
    assert_eq!(ticket.depth, 2);
}

#[tokio::test]
async fn total_dispatches_per_root_are_capped() {
    let guard = guard(3, 8, 5).await;
    let root = rooted(&guard, "planner", "plan").await;
    let a = RunId::new();
    guard.dispatch(root, a, "w", "a").await.unwrap();
    for i in 0..2 {
        guard.dispatch(root, RunId::new(), "w", &format!("r{i}")).await.unwrap();
    }
    for i in 0..2 {
        guard.dispatch(a, RunId::new(), "w", &format!("a{i}")).await.unwrap();
    }
    for parent in [root, a] {
        let refused = guard.dispatch(parent, RunId::new(), "w", "one more").await.unwrap_err();
        assert_eq!(refused, DispatchError::TotalExceeded { root, total: 5, max: 5 });
        assert_eq!(
            refused.to_string(),
            format!(
                "dispatch refused: the tree of root run {root} already holds 5 dispatches, the maximum is 5"
            )
        );
    }
    // Another root has its own budget.
    let other = rooted(&guard, "planner", "plan").await;
    guard.dispatch(other, RunId::new(), "w", "a").await.unwrap();
}

#[tokio::test]
async fn a_repeat_on_the_ancestry_is_a_loop_but_not_elsewhere() {
    let guard = guard(5, 8, 32).await;
    let root = rooted(&guard, "planner", "plan the release").await;
    let researcher = RunId::new();
    guard.dispatch(root, researcher, "researcher", "topic A").await.unwrap();

    // Same agent + same input as the root, two levels up.
    let refused = guard.dispatch(researcher, RunId::new(), "planner", "plan the release").await.unwrap_err();
    assert_eq!(refused, DispatchError::Loop { agent: "planner".into(), ancestor: root, depth: 0 });
    assert_eq!(
        refused.to_string(),
        format!(
            "dispatch refused: agent `planner` with this same input is already on the ancestry, as run {root} at depth 0"
        )
    );
    // Same agent + same input as the parent.
    assert_eq!(
        guard.dispatch(researcher, RunId::new(), "researcher", "topic A").await,
        Err(DispatchError::Loop { agent: "researcher".into(), ancestor: researcher, depth: 1 })
    );
    // Same agent, different input: allowed.
    let deeper = RunId::new();
    guard.dispatch(researcher, deeper, "researcher", "topic B").await.unwrap();
    // Same input, different agent: allowed.
    guard.dispatch(researcher, RunId::new(), "summariser", "topic A").await.unwrap();
    // The same (agent, input) in a sibling branch is not on its ancestry: allowed.
    let sibling = RunId::new();
    guard.dispatch(root, sibling, "researcher", "topic A").await.unwrap();
    // ...but below that sibling it is a loop again, found at the sibling.
    assert_eq!(
        guard.dispatch(sibling, RunId::new(), "researcher", "topic A").await,
        Err(DispatchError::Loop { agent: "researcher".into(), ancestor: sibling, depth: 1 })
    );
    // Refusals admitted nothing: root + researcher + deeper + summariser + sibling.
    let tree = guard.tree(root).await.unwrap();
    assert_eq!((tree.total, tree.nodes.len()), (4, 5));
}

#[tokio::test]
async fn an_unknown_parent_is_refused() {
    let guard = guard(3, 8, 32).await;
    let stranger = RunId::new();
    let refused = guard.dispatch(stranger, RunId::new(), "w", "x").await.unwrap_err();
    assert_eq!(refused, DispatchError::UnknownParent { parent: stranger });
    assert!(refused.to_string().contains(&stranger.to_string()));
    assert_eq!(guard.tracked_runs().await.unwrap(), 0);
}

#[tokio::test]
async fn finish_root_frees_the_whole_tree() {
    let guard = guard(3, 8, 32).await;
    let root = rooted(&guard, "planner", "plan").await;
    let child = RunId::new();
    guard.dispatch(root, child, "w", "a").await.unwrap();
    let grandchild = RunId::new();
    guard.dispatch(child, grandchild, "w", "b").await.unwrap();
    let other = rooted(&guard, "planner", "other plan").await;

    let tree = guard.tree(root).await.unwrap();
    let runs: Vec<(RunId, Option<RunId>, u32)> =
        tree.nodes.iter().map(|n| (n.run, n.parent, n.depth)).collect();
    assert_eq!(runs, [(root, None, 0), (child, Some(root), 1), (grandchild, Some(child), 2)]);
    assert_eq!(guard.tracked_runs().await.unwrap(), 4);

    guard.finish_root(root).await;
    assert!(guard.tree(root).await.is_none());
    assert_eq!(guard.tracked_runs().await.unwrap(), 1, "only the other root is left");
    assert_eq!(
        guard.dispatch(grandchild, RunId::new(), "w", "c").await,
        Err(DispatchError::UnknownParent { parent: grandchild })
    );
    // The id is free again, and the other tree is untouched.
    guard.register_root(root, "planner", "plan").await.unwrap();
    assert_eq!(guard.tree(other).await.unwrap().nodes.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_dispatches_never_overshoot_a_cap() {
    let guard = guard(3, 8, 32).await;
    let root = rooted(&guard, "planner", "plan").await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let guard = guard.clone();
        tasks.push(tokio::spawn(async move {
            guard.dispatch(root, RunId::new(), "w", &format!("part {i}")).await
        }));
    }
    let mut admitted = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => admitted += 1,
            Err(DispatchError::FanoutExceeded { children: 8, max: 8, .. }) => {}
            Err(other) => panic!("unexpected refusal: {other}"),
        }
    }
    assert_eq!(admitted, 8);
    assert_eq!(guard.tree(root).await.unwrap().total, 8);
}
