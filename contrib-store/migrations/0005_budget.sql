-- executus-store schema, version 5: budget spend and reservations
-- (executus_budget::BudgetStore).
--
-- Amounts are integer nano-dollars (executus_budget::Money, at most i64::MAX).
-- `budget_reservations`: one row per granted reservation; AUTOINCREMENT so an id is never
-- reused. `budget_holds`: the money a reservation holds in each of its scopes (amount and
-- expiry repeated so a scope's live holds are one covering-index range sum).
-- `budget_spend`: one row per scope per settled call, summed over a window through a
-- covering index. `try_reserve` reads the sums and inserts in one BEGIN IMMEDIATE
-- transaction, so reservations from any number of processes sharing the file never hold
-- more than a cap.
CREATE TABLE IF NOT EXISTS budget_reservations (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    amount     INTEGER NOT NULL CHECK (amount >= 0),
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL
) STRICT;

CREATE INDEX IF NOT EXISTS budget_reservations_expiry ON budget_reservations (expires_ms);

CREATE TABLE IF NOT EXISTS budget_holds (
    reservation INTEGER NOT NULL REFERENCES budget_reservations (id) ON DELETE CASCADE,
    scope       TEXT    NOT NULL,
    amount      INTEGER NOT NULL CHECK (amount >= 0),
    expires_ms  INTEGER NOT NULL,
    PRIMARY KEY (reservation, scope)
) STRICT, WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS budget_holds_live ON budget_holds (scope, expires_ms, amount);

CREATE TABLE IF NOT EXISTS budget_spend (
    id     INTEGER PRIMARY KEY,
    scope  TEXT    NOT NULL,
    at_ms  INTEGER NOT NULL,
    amount INTEGER NOT NULL CHECK (amount > 0)
) STRICT;

CREATE INDEX IF NOT EXISTS budget_spend_window ON budget_spend (scope, at_ms, amount);
CREATE INDEX IF NOT EXISTS budget_spend_age ON budget_spend (at_ms);
