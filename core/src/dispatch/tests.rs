//! Unit tests of the forest rules (the actor around them is tested in `tests/it/dispatch.rs`).

use super::tree::{Forest, input_hash};
use super::{DispatchError, DispatchLimits};
use crate::RunId;

fn forest(max_depth: u32, max_fanout: u32, max_total: u32) -> Forest {
    Forest::new(DispatchLimits { max_depth, max_fanout, max_total })
}

#[test]
fn defaults_are_three_eight_thirty_two() {
    assert_eq!(DispatchLimits::default(), DispatchLimits { max_depth: 3, max_fanout: 8, max_total: 32 });
}

#[test]
fn input_hash_is_deterministic_and_discriminates() {
    assert_eq!(input_hash("review this diff"), input_hash("review this diff"));
    assert_ne!(input_hash("review this diff"), input_hash("review that diff"));
}

#[test]
fn checks_happen_before_anything_is_admitted() {
    let mut f = forest(1, 1, 10);
    let root = RunId::new();
    f.register_root(root, "planner".into(), input_hash("x")).unwrap();
    let a = RunId::new();
    f.dispatch(root, a, "worker".into(), input_hash("1")).unwrap();
    // Refused for fan-out: nothing changes.
    let b = RunId::new();
    assert!(matches!(
        f.dispatch(root, b, "worker".into(), input_hash("2")),
        Err(DispatchError::FanoutExceeded { children: 1, max: 1, .. })
    ));
    // Refused for depth: nothing changes either.
    assert!(matches!(
        f.dispatch(a, b, "worker".into(), input_hash("2")),
        Err(DispatchError::DepthExceeded { depth: 2, max: 1 })
    ));
    let tree = f.snapshot(root).unwrap();
    assert_eq!(tree.total, 1);
    assert_eq!(tree.nodes.len(), 2);
    assert_eq!(f.tracked_runs(), 2);
}

#[test]
fn duplicate_ids_are_refused() {
    let mut f = forest(3, 8, 32);
    let root = RunId::new();
    f.register_root(root, "a".into(), 1).unwrap();
    assert_eq!(f.register_root(root, "a".into(), 1), Err(DispatchError::AlreadyRegistered { run: root }));
    let child = RunId::new();
    f.dispatch(root, child, "b".into(), 2).unwrap();
    assert_eq!(f.dispatch(root, child, "c".into(), 3), Err(DispatchError::AlreadyRegistered { run: child }));
    assert_eq!(f.register_root(child, "c".into(), 3), Err(DispatchError::AlreadyRegistered { run: child }));
}

#[test]
fn finishing_a_non_root_is_ignored() {
    let mut f = forest(3, 8, 32);
    let root = RunId::new();
    f.register_root(root, "a".into(), 1).unwrap();
    let child = RunId::new();
    f.dispatch(root, child, "b".into(), 2).unwrap();
    f.finish_root(child);
    assert_eq!(f.tracked_runs(), 2);
    f.finish_root(root);
    assert_eq!(f.tracked_runs(), 0);
    assert!(f.snapshot(root).is_none());
}
