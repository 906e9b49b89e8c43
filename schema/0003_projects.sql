-- Projects, memberships, invitations, password resets and API keys.
-- As in 0001, every credential column is an HMAC-SHA256 (32 bytes) under a
-- purpose key derived from PALISADE_SECRET (invitation/v1, password-reset/v1,
-- api-key/v1); no table holds a usable token.

CREATE TABLE projects (
    id          uuid PRIMARY KEY,
    slug        text NOT NULL,
    name        text NOT NULL,
    description text NOT NULL DEFAULT '',
    created_by  uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    archived_at timestamptz,                      -- NULL = active; archived projects are read-only
    CONSTRAINT projects_slug_key UNIQUE (slug),
    CONSTRAINT projects_slug_shape CHECK (slug ~ '^[a-z0-9][a-z0-9-]{1,48}[a-z0-9]$'),
    CONSTRAINT projects_name_len CHECK (char_length(name) BETWEEN 1 AND 200),
    CONSTRAINT projects_description_len CHECK (char_length(description) <= 2000)
);

CREATE TABLE memberships (
    id         uuid PRIMARY KEY,
    project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       text NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    CONSTRAINT memberships_project_user_key UNIQUE (project_id, user_id),
    CONSTRAINT memberships_role CHECK (role IN ('viewer', 'auditor', 'operator', 'admin'))
);
CREATE INDEX memberships_user ON memberships (user_id);

CREATE TABLE invitations (
    id          uuid PRIMARY KEY,
    project_id  uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    email       text NOT NULL,                    -- normalised
    role        text NOT NULL,
    token_hash  bytea NOT NULL,                   -- HMAC(invitation key, token)
    invited_by  uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    accepted_at timestamptz,
    accepted_by uuid REFERENCES users (id) ON DELETE SET NULL,
    revoked_at  timestamptz,
    CONSTRAINT invitations_token_hash_key UNIQUE (token_hash),
    CONSTRAINT invitations_token_hash_len CHECK (octet_length(token_hash) = 32),
    CONSTRAINT invitations_role CHECK (role IN ('viewer', 'auditor', 'operator', 'admin')),
    CONSTRAINT invitations_single_outcome CHECK (accepted_at IS NULL OR revoked_at IS NULL)
);
CREATE INDEX invitations_project_pending ON invitations (project_id, email)
    WHERE accepted_at IS NULL AND revoked_at IS NULL;

CREATE TABLE password_reset_tokens (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash  bytea NOT NULL,                   -- HMAC(password-reset key, token)
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    consumed_at timestamptz,
    requested_ip inet,
    CONSTRAINT password_reset_tokens_hash_key UNIQUE (token_hash),
    CONSTRAINT password_reset_tokens_hash_len CHECK (octet_length(token_hash) = 32)
);
CREATE INDEX password_reset_tokens_user_open ON password_reset_tokens (user_id) WHERE consumed_at IS NULL;

CREATE TABLE api_keys (
    id           uuid PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         text NOT NULL,
    prefix       text NOT NULL,                   -- first characters of the key, for recognition only
    key_hash     bytea NOT NULL,                  -- HMAC(api-key key, whole key)
    scopes       text[] NOT NULL,
    project_id   uuid REFERENCES projects (id) ON DELETE CASCADE,  -- optional binding
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz,
    last_used_at timestamptz,
    last_used_ip inet,
    revoked_at   timestamptz,
    CONSTRAINT api_keys_key_hash_key UNIQUE (key_hash),
    CONSTRAINT api_keys_key_hash_len CHECK (octet_length(key_hash) = 32),
    CONSTRAINT api_keys_name_len CHECK (char_length(name) BETWEEN 1 AND 200),
    CONSTRAINT api_keys_prefix_len CHECK (char_length(prefix) <= 16)
);
CREATE INDEX api_keys_user ON api_keys (user_id) WHERE revoked_at IS NULL;
