-- API tokens. Only the SHA-256 of a token is kept: a copy of the database does not
-- give anyone access. A scope (JSON arrays of names, empty = any) limits which
-- components and environments a token may record events for.
CREATE TABLE tokens (
    seq BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(128) NOT NULL,
    role VARCHAR(16) NOT NULL,
    token_hash CHAR(64) NOT NULL,
    scope_components TEXT NOT NULL,
    scope_environments TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE KEY tokens_name (name),
    UNIQUE KEY tokens_hash (token_hash)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
