//! The dispatch guard: bounds agents that call agents.
//!
//! When a run dispatches another agent, that child run joins the dispatch tree of its root
//! run. [`DispatchGuard::dispatch`] admits a child only if the tree stays within
//! [`DispatchLimits`] and the child is not repeating one of its own ancestors.
//!
//! # Guarantees
//! - Depth: the root is depth 0; a child deeper than `max_depth` is refused.
//! - Fan-out: one parent dispatches at most `max_fanout` children in total (finished children
//!   still count: the cap is on work started, not on work in flight).
//! - Total: one root's tree admits at most `max_total` dispatches (the root not counted).
//! - Loops: a child whose (agent, input) equals that of a run on its own ancestry (parent,
//!   grandparent, ... root) is refused. The same pair in a sibling branch is not a loop.
//! - Every refusal is a [`DispatchError`] carrying the numbers; nothing is admitted by a
//!   refused call. Checks and admission happen in one actor message, so concurrent dispatches
//!   never overshoot a cap.
//!
//! # What it does not do
//! - It does not run anything or track whether runs are alive: a host registers the root,
//!   asks before each dispatch, and calls [`DispatchGuard::finish_root`] when the root ends.
//! - Inputs are compared by a 64-bit hash, not byte for byte, and never stored.
//! - No persistence: trees live in memory and die with the guard.

mod actor;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
mod tree;

use std::fmt;
use std::sync::Arc;

use ractor::rpc::CallResult;
use ractor::{Actor, ActorRef};

use self::actor::{Guard, GuardMsg};
use self::tree::input_hash;
use crate::RunId;

/// Caps on one root run's dispatch tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DispatchLimits {
    /// Deepest allowed dispatch; the root is depth 0. Default 3.
    pub max_depth: u32,
    /// Children one parent may dispatch in total. Default 8.
    pub max_fanout: u32,
    /// Dispatches one root's tree may hold in total. Default 32.
    pub max_total: u32,
}

impl Default for DispatchLimits {
    fn default() -> Self {
        Self { max_depth: 3, max_fanout: 8, max_total: 32 }
    }
}

/// An admitted dispatch: which tree the child joined and how deep it sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DispatchTicket {
    /// The root run of the child's tree.
    pub root: RunId,
    /// The child's depth (the root is 0).
    pub depth: u32,
}

/// A copy of one dispatch tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeSnapshot {
    /// The root run.
    pub root: RunId,
    /// Dispatches admitted so far (the root not counted).
    pub total: u32,
    /// Every run of the tree, root first, in admission order.
    pub nodes: Vec<TreeNode>,
}

/// One run in a [`TreeSnapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeNode {
    /// The run.
    pub run: RunId,
    /// Its parent; `None` for the root.
    pub parent: Option<RunId>,
    /// The agent it runs.
    pub agent: String,
    /// Its depth (the root is 0).
    pub depth: u32,
    /// Children it has dispatched so far.
    pub children: u32,
}

/// Why a dispatch (or root registration) was refused.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DispatchError {
    /// The child would sit deeper than the cap allows.
    #[error("dispatch refused: the child would be at depth {depth}, deeper than the maximum of {max}")]
    DepthExceeded {
        /// The depth the child would have had.
        depth: u32,
        /// `max_depth`.
        max: u32,
    },
    /// The parent has already dispatched as many children as it may.
    #[error(
        "dispatch refused: run {parent} has already dispatched {children} children, the maximum is {max}"
    )]
    FanoutExceeded {
        /// The parent run.
        parent: RunId,
        /// Children it had dispatched.
        children: u32,
        /// `max_fanout`.
        max: u32,
    },
    /// The root's tree already holds as many dispatches as it may.
    #[error(
        "dispatch refused: the tree of root run {root} already holds {total} dispatches, the maximum is {max}"
    )]
    TotalExceeded {
        /// The root run.
        root: RunId,
        /// Dispatches the tree held.
        total: u32,
        /// `max_total`.
        max: u32,
    },
    /// The same agent with the same input already runs on the child's own ancestry.
    #[error(
        "dispatch refused: agent `{agent}` with this same input is already on the ancestry, as run {ancestor} at depth {depth}"
    )]
    Loop {
        /// The agent being dispatched.
        agent: String,
        /// The ancestor run with the same agent and input.
        ancestor: RunId,
        /// That ancestor's depth.
        depth: u32,
    },
    /// The parent is in no tree: never registered, or its root already finished.
    #[error(
        "dispatch refused: parent run {parent} is in no dispatch tree (never registered, or its root finished)"
    )]
    UnknownParent {
        /// The unknown parent run.
        parent: RunId,
    },
    /// The run id is already in a dispatch tree (as a root or a child).
    #[error("run {run} is already in a dispatch tree")]
    AlreadyRegistered {
        /// The duplicate run id.
        run: RunId,
    },
    /// The guard's actor is no longer running.
    #[error("the dispatch guard is gone")]
    Gone,
    /// The guard's actor could not be started.
    #[error("the dispatch guard could not start: {reason}")]
    Spawn {
        /// What the actor system reported.
        reason: String,
    },
}

/// A cheap, cloneable handle to the dispatch guard.
///
/// The guard's actor lives as long as any clone of its handle; dropping the last clone stops
/// it and forgets every tree.
#[derive(Clone)]
pub struct DispatchGuard {
    inner: Arc<Inner>,
}

struct Inner {
    actor: ActorRef<GuardMsg>,
    limits: DispatchLimits,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Last handle gone: nobody can ask any more, so do not leak the actor.
        self.actor.stop(None);
    }
}

impl fmt::Debug for DispatchGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DispatchGuard").field("limits", &self.inner.limits).finish_non_exhaustive()
    }
}

impl DispatchGuard {
    /// Starts a guard enforcing `limits`.
    ///
    /// # Errors
    /// [`DispatchError::Spawn`] if the actor system could not start the guard's actor.
    pub async fn spawn(limits: DispatchLimits) -> Result<Self, DispatchError> {
        let (actor, _join) = Actor::spawn(None, Guard, limits)
            .await
            .map_err(|e| DispatchError::Spawn { reason: e.to_string() })?;
        Ok(Self { inner: Arc::new(Inner { actor, limits }) })
    }

    /// The limits this guard enforces.
    pub fn limits(&self) -> DispatchLimits {
        self.inner.limits
    }

    /// Starts a tree rooted at `root` (depth 0), running `agent` on `input`.
    ///
    /// # Errors
    /// [`DispatchError::AlreadyRegistered`] if `root` is already in a tree;
    /// [`DispatchError::Gone`] if the guard's actor is no longer running.
    pub async fn register_root(&self, root: RunId, agent: &str, input: &str) -> Result<(), DispatchError> {
        let agent = agent.to_owned();
        let input = input_hash(input);
        self.ask(|reply| GuardMsg::RegisterRoot { root, agent, input, reply }).await?
    }

    /// Admits `child` (running `agent` on `input`) under `parent`, or refuses it.
    ///
    /// # Errors
    /// In the order checked: [`UnknownParent`](DispatchError::UnknownParent),
    /// [`AlreadyRegistered`](DispatchError::AlreadyRegistered) (the child id is taken),
    /// [`DepthExceeded`](DispatchError::DepthExceeded),
    /// [`FanoutExceeded`](DispatchError::FanoutExceeded),
    /// [`TotalExceeded`](DispatchError::TotalExceeded), [`Loop`](DispatchError::Loop);
    /// [`Gone`](DispatchError::Gone) if the guard's actor is no longer running.
    pub async fn dispatch(
        &self,
        parent: RunId,
        child: RunId,
        agent: &str,
        input: &str,
    ) -> Result<DispatchTicket, DispatchError> {
        let agent = agent.to_owned();
        let input = input_hash(input);
        self.ask(|reply| GuardMsg::Dispatch { parent, child, agent, input, reply }).await?
    }

    /// Forgets the whole tree of `root` (call it when the root run ends). A run id that is
    /// not a root is ignored. Later dispatches under any run of that tree get
    /// [`DispatchError::UnknownParent`].
    pub async fn finish_root(&self, root: RunId) {
        // Fire and forget: the caller needs no answer, and later requests from this caller
        // queue behind it, so they already see the tree gone.
        let _ = self.inner.actor.cast(GuardMsg::FinishRoot(root));
    }

    /// A copy of the tree rooted at `root`, or `None` if there is none (or the guard is gone).
    pub async fn tree(&self, root: RunId) -> Option<TreeSnapshot> {
        self.ask(|reply| GuardMsg::Tree { root, reply }).await.ok().flatten()
    }

    /// How many runs the guard tracks across all trees (0 once every root has finished).
    ///
    /// # Errors
    /// [`DispatchError::Gone`] if the guard's actor is no longer running.
    pub async fn tracked_runs(&self) -> Result<usize, DispatchError> {
        self.ask(GuardMsg::TrackedRuns).await
    }

    async fn ask<T: Send + 'static>(
        &self,
        message: impl FnOnce(ractor::RpcReplyPort<T>) -> GuardMsg,
    ) -> Result<T, DispatchError> {
        match self.inner.actor.call(message, None).await {
            Ok(CallResult::Success(answer)) => Ok(answer),
            _ => Err(DispatchError::Gone),
        }
    }
}
