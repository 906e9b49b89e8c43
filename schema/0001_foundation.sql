-- Foundation: users, browser sessions, first-boot setup token, login lockout.
-- Every credential column holds an HMAC-SHA256 under a purpose key derived
-- from PALISADE_SECRET; no table stores a usable token.

CREATE TABLE users (
    id                  uuid PRIMARY KEY,
    email               text NOT NULL,            -- normalised (lower-case, IDNA domain)
    display_name        text NOT NULL DEFAULT '',
    password_hash       text NOT NULL,            -- Argon2id PHC string
    is_admin            boolean NOT NULL DEFAULT false,
    is_active           boolean NOT NULL DEFAULT true,
    password_changed_at timestamptz NOT NULL,
    last_login_at       timestamptz,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    CONSTRAINT users_email_key UNIQUE (email),
    CONSTRAINT users_email_len CHECK (char_length(email) BETWEEN 3 AND 254),
    CONSTRAINT users_display_name_len CHECK (char_length(display_name) <= 200)
);

CREATE TABLE sessions (
    id             uuid PRIMARY KEY,              -- public handle for listing/revoking; not a credential
    token_hash     bytea NOT NULL,                -- HMAC(session key, cookie token)
    csrf_hash      bytea NOT NULL,                -- HMAC(csrf key, csrf cookie)
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at     timestamptz NOT NULL,
    last_seen_at   timestamptz NOT NULL,
    expires_at     timestamptz NOT NULL,          -- absolute lifetime
    revoked_at     timestamptz,
    revoked_reason text,
    ip             inet,
    user_agent     text,
    CONSTRAINT sessions_token_hash_key UNIQUE (token_hash),
    CONSTRAINT sessions_token_hash_len CHECK (octet_length(token_hash) = 32),
    CONSTRAINT sessions_csrf_hash_len CHECK (octet_length(csrf_hash) = 32)
);
CREATE INDEX sessions_user_active ON sessions (user_id) WHERE revoked_at IS NULL;

-- At most one pending first-boot token (the singleton key enforces it).
CREATE TABLE setup_tokens (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    token_hash bytea NOT NULL CHECK (octet_length(token_hash) = 32),
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL
);

-- Failed-login counters per normalised email, keyed by an HMAC of the email
-- so unknown addresses typed by attackers are not stored in clear. Lives in
-- PostgreSQL so a restart or a second replica sees the same lock.
CREATE TABLE login_lockouts (
    email_hash       bytea PRIMARY KEY CHECK (octet_length(email_hash) = 32),
    failures         integer NOT NULL,
    window_starts_at timestamptz NOT NULL,
    locked_until     timestamptz,
    updated_at       timestamptz NOT NULL
);
