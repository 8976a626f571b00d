//! [`RunRequest`]: what to run and how; [`RunInput`]: a run's input as text or messages.

use executus_llm::Message;

use crate::agent::RunnableAgent;
use crate::identity::Identity;
use crate::ids::RunId;

/// What to run and how.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// The agent.
    pub agent: RunnableAgent,
    /// The input messages.
    pub input: Vec<Message>,
    /// Who the run acts for.
    pub identity: Identity,
    /// The dispatching run (for child runs).
    pub parent: Option<RunId>,
    /// Lane override.
    pub lane: Option<String>,
    /// Deliver the outcome through the `Delivery` port.
    pub deliver: bool,
    /// Use this run id (e.g. a host's own id); default a fresh one.
    pub run_id: Option<RunId>,
    /// Keep events from the start for the handle's first `events()` call (default true;
    /// `Runtime::run`, whose caller cannot watch, turns it off). Until that call they are
    /// held in a small buffer (at most [`EVENT_CAPACITY`](super::handle::EVENT_CAPACITY)), not a channel.
    pub watch: bool,
    /// The conversation the run belongs to (a gateway session, a chat), reported on its
    /// spans as `gen_ai.conversation.id`; default the run id. Not kept across a resume.
    pub conversation: Option<String>,
}

impl RunRequest {
    /// A request for `agent` with `input`.
    pub fn new(agent: RunnableAgent, input: impl Into<RunInput>) -> Self {
        Self {
            agent,
            input: input.into().0,
            identity: Identity::default(),
            parent: None,
            lane: None,
            deliver: false,
            run_id: None,
            watch: true,
            conversation: None,
        }
    }

    /// Whether the run keeps its events for the handle's first `events()` call (default
    /// true). A host that only awaits outcomes turns it off: an unwatched run builds no
    /// event and keeps no attempt log nobody will read (about 4 KiB per in-flight run at its
    /// third step); `events()` then sees events from its call on.
    #[must_use]
    pub fn watch(mut self, watch: bool) -> Self {
        self.watch = watch;
        self
    }

    /// Sets the conversation id reported on the run's spans (`gen_ai.conversation.id`).
    #[must_use]
    pub fn conversation(mut self, id: impl Into<String>) -> Self {
        self.conversation = Some(id.into());
        self
    }

    /// Sets the identity.
    #[must_use]
    pub fn identity(mut self, identity: Identity) -> Self {
        self.identity = identity;
        self
    }

    /// Sets the lane.
    #[must_use]
    pub fn lane(mut self, lane: impl Into<String>) -> Self {
        self.lane = Some(lane.into());
        self
    }

    /// Delivers the outcome through the `Delivery` port.
    #[must_use]
    pub fn deliver(mut self) -> Self {
        self.deliver = true;
        self
    }

    /// Sets the parent run.
    #[must_use]
    pub fn parent(mut self, parent: RunId) -> Self {
        self.parent = Some(parent);
        self
    }

    /// Uses this run id.
    #[must_use]
    pub fn run_id(mut self, run_id: RunId) -> Self {
        self.run_id = Some(run_id);
        self
    }
}

/// A run's input: text or messages.
#[derive(Debug, Clone)]
pub struct RunInput(pub Vec<Message>);

impl From<&str> for RunInput {
    fn from(s: &str) -> Self {
        Self(vec![Message::user(s)])
    }
}

impl From<String> for RunInput {
    fn from(s: String) -> Self {
        Self(vec![Message::user(s)])
    }
}

impl From<Vec<Message>> for RunInput {
    fn from(m: Vec<Message>) -> Self {
        Self(m)
    }
}

impl From<Message> for RunInput {
    fn from(m: Message) -> Self {
        Self(vec![m])
    }
}
