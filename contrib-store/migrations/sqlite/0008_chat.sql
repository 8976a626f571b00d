-- executus-store schema, version 8: conversations (executus_chat::ChatHistory).
--
-- `chat_messages`: one row per message, keyed by tenant, user, persona and a gapless sequence
-- number; the message as JSON. Earlier chat bot versions kept the same rows in a table of
-- their own (`chatbot_messages`, created outside the migrations): they move here, so no
-- conversation is lost.
CREATE TABLE IF NOT EXISTS chatbot_messages (
    tenant TEXT NOT NULL,
    user TEXT NOT NULL,
    persona TEXT NOT NULL,
    seq INTEGER NOT NULL,
    message TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant, user, persona, seq)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS chat_messages (
    tenant     TEXT    NOT NULL,
    user       TEXT    NOT NULL,
    persona    TEXT    NOT NULL,
    seq        INTEGER NOT NULL,
    message    TEXT    NOT NULL,   -- JSON of executus_llm::Message
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant, user, persona, seq)
) STRICT, WITHOUT ROWID;

INSERT OR IGNORE INTO chat_messages (tenant, user, persona, seq, message, created_ms)
    SELECT tenant, user, persona, seq, message, created_ms FROM chatbot_messages;

DROP TABLE chatbot_messages;
