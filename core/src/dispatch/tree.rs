//! The dispatch forest: one tree per root run, and the rules for growing it.
//!
//! Pure bookkeeping, no I/O; the actor owns one [`Forest`]. Every check is O(1) except the
//! ancestry walk, which is O(depth) and depth is capped.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use super::{DispatchError, DispatchLimits, DispatchTicket, TreeNode, TreeSnapshot};
use crate::RunId;

/// A stable-within-the-process digest of a dispatch input. Only the digest is kept, so a large
/// prompt costs eight bytes per node; `DefaultHasher::new()` is deterministic (fixed keys), and
/// trees are never persisted, so stability across builds does not matter.
pub(crate) fn input_hash(input: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    input.hash(&mut hasher);
    hasher.finish()
}

struct Node {
    root: RunId,
    parent: Option<RunId>,
    depth: u32,
    agent: String,
    input: u64,
    /// Children dispatched by this run so far (never decremented while the tree lives).
    children: u32,
}

struct Root {
    /// Dispatches admitted under this root so far (the root itself not included).
    total: u32,
    /// Every run of the tree, root first, in admission order.
    members: Vec<RunId>,
}

pub(crate) struct Forest {
    limits: DispatchLimits,
    nodes: HashMap<RunId, Node>,
    roots: HashMap<RunId, Root>,
}

impl Forest {
    pub(crate) fn new(limits: DispatchLimits) -> Self {
        Self { limits, nodes: HashMap::new(), roots: HashMap::new() }
    }

    pub(crate) fn register_root(
        &mut self,
        root: RunId,
        agent: String,
        input: u64,
    ) -> Result<(), DispatchError> {
        if self.nodes.contains_key(&root) {
            return Err(DispatchError::AlreadyRegistered { run: root });
        }
        self.nodes.insert(root, Node { root, parent: None, depth: 0, agent, input, children: 0 });
        self.roots.insert(root, Root { total: 0, members: vec![root] });
        Ok(())
    }

    pub(crate) fn dispatch(
        &mut self,
        parent: RunId,
        child: RunId,
        agent: String,
        input: u64,
    ) -> Result<DispatchTicket, DispatchError> {
        let limits = self.limits;
        let parent_node = self.nodes.get(&parent).ok_or(DispatchError::UnknownParent { parent })?;
        if self.nodes.contains_key(&child) {
            return Err(DispatchError::AlreadyRegistered { run: child });
        }
        let root = parent_node.root;
        let depth = parent_node.depth + 1;
        if depth > limits.max_depth {
            return Err(DispatchError::DepthExceeded { depth, max: limits.max_depth });
        }
        if parent_node.children >= limits.max_fanout {
            return Err(DispatchError::FanoutExceeded {
                parent,
                children: parent_node.children,
                max: limits.max_fanout,
            });
        }
        let total = self.roots.get(&root).map_or(0, |r| r.total);
        if total >= limits.max_total {
            return Err(DispatchError::TotalExceeded { root, total, max: limits.max_total });
        }
        // The child's ancestry: parent, grandparent, ..., root. Siblings and cousins are not
        // on it, so the same (agent, input) in another branch is allowed.
        let mut cursor = Some(parent);
        while let Some(id) = cursor {
            let Some(node) = self.nodes.get(&id) else {
                break;
            };
            if node.input == input && node.agent == agent {
                return Err(DispatchError::Loop { agent, ancestor: id, depth: node.depth });
            }
            cursor = node.parent;
        }

        if let Some(p) = self.nodes.get_mut(&parent) {
            p.children += 1;
        }
        if let Some(r) = self.roots.get_mut(&root) {
            r.total += 1;
            r.members.push(child);
        }
        self.nodes.insert(child, Node { root, parent: Some(parent), depth, agent, input, children: 0 });
        Ok(DispatchTicket { root, depth })
    }

    /// Drops the whole tree of `root`. A run id that is not a root is ignored.
    pub(crate) fn finish_root(&mut self, root: RunId) {
        if let Some(tree) = self.roots.remove(&root) {
            for run in tree.members {
                self.nodes.remove(&run);
            }
        }
    }

    pub(crate) fn snapshot(&self, root: RunId) -> Option<TreeSnapshot> {
        let tree = self.roots.get(&root)?;
        let nodes = tree
            .members
            .iter()
            .filter_map(|run| {
                self.nodes.get(run).map(|n| TreeNode {
                    run: *run,
                    parent: n.parent,
                    agent: n.agent.clone(),
                    depth: n.depth,
                    children: n.children,
                })
            })
            .collect();
        Some(TreeSnapshot { root, total: tree.total, nodes })
    }

    /// How many runs are tracked across all trees (for tests: a finished tree leaves none).
    pub(crate) fn tracked_runs(&self) -> usize {
        self.nodes.len()
    }
}
