//! [`Identity`]: who a run acts for. Every run carries one; budgets, audit rows, lanes
//! (tenant fairness) and policy rules key on it.

use serde::{Deserialize, Serialize};

/// Who is calling: a user within a tenant, with roles.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Identity {
    /// User id (opaque to executus).
    pub user: String,
    /// Tenant id; lanes share capacity fairly across tenants.
    pub tenant: String,
    /// Roles, for policy rules.
    #[serde(default)]
    pub roles: Vec<String>,
}

impl Identity {
    /// A user in a tenant, without roles.
    pub fn new(user: impl Into<String>, tenant: impl Into<String>) -> Self {
        Self { user: user.into(), tenant: tenant.into(), roles: Vec::new() }
    }

    /// Adds a role.
    #[must_use]
    pub fn with_role(mut self, role: impl Into<String>) -> Self {
        self.roles.push(role.into());
        self
    }

    /// True if the identity has `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

impl Default for Identity {
    /// The anonymous local user in the `default` tenant.
    fn default() -> Self {
        Self::new("anonymous", "default")
    }
}
