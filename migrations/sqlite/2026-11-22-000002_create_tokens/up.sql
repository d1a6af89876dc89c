-- API tokens. Only the SHA-256 of a token is kept: a copy of the database does not
-- give anyone access. A scope (JSON arrays of names, empty = any) limits which
-- components and environments a token may record events for.
CREATE TABLE tokens (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    scope_components TEXT NOT NULL,
    scope_environments TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
