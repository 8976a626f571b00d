-- executus-store schema, version 5: budget spend and reservations
-- (executus_budget::BudgetStore).
--
-- Amounts are integer nano-dollars (executus_budget::Money, at most i64::MAX).
-- `budget_reservations`: one row per granted reservation; AUTOINCREMENT so an id is never
-- reused. `budget_holds`: the money a reservation holds in each of its scopes (amount and
-- expiry repeated so a scope's live holds are one covering-index range sum).
-- `budget_spend`: one row per scope per settled call. `budget_spend_hours`: the same spend
-- summed per scope per whole UTC hour, kept equal to the detail rows by every write (settle
-- adds, prune subtracts, in the same transaction). A window sum is the detail rows of the
-- window's first, partial hour plus the hour rows after it: at most an hour of rows and
-- one row per hour, however much the scope spent. `try_reserve` reads the sums and inserts
-- in one BEGIN IMMEDIATE transaction, so reservations from any number of processes sharing
-- the file never hold more than a cap.
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

CREATE TABLE IF NOT EXISTS budget_spend_hours (
    scope   TEXT    NOT NULL,
    hour_ms INTEGER NOT NULL,   -- the hour's start, Unix ms, a multiple of 3 600 000
    amount  INTEGER NOT NULL CHECK (amount >= 0),
    PRIMARY KEY (scope, hour_ms)
) STRICT, WITHOUT ROWID;
