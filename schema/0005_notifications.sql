-- Notifications: channels (where to send), rules (what to send), per-rule
-- cooldowns, and the durable outbox the Notifier delivers from.

CREATE TABLE notification_channels (
    id          uuid PRIMARY KEY,
    project_id  uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    kind        text NOT NULL CHECK (kind IN ('webhook', 'slack', 'discord', 'teams', 'pagerduty', 'email')),
    -- Non-secret settings only (SMTP host, recipients, ...).
    config      jsonb NOT NULL DEFAULT '{}',
    -- scheme://host[:port] of the receiver, shown instead of the masked URL.
    destination text NOT NULL,
    -- Secret settings (URLs carrying tokens, signing secrets, passwords):
    -- XChaCha20-Poly1305 under a key derived from the master secret, bound
    -- to this row's project and id (see src/notify/cipher.rs).
    secrets     bytea NOT NULL,
    -- Which secret fields are set (names only), for the masked view.
    secret_keys text[] NOT NULL DEFAULT '{}',
    enabled     boolean NOT NULL DEFAULT true,
    created_by  uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);
CREATE UNIQUE INDEX notification_channels_name ON notification_channels (project_id, name);

CREATE TABLE notification_rules (
    id            uuid PRIMARY KEY,
    project_id    uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name          text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    trigger       text NOT NULL,
    filters       jsonb NOT NULL DEFAULT '{}',
    cooldown_secs integer NOT NULL CHECK (cooldown_secs BETWEEN 0 AND 86400),
    enabled       boolean NOT NULL DEFAULT true,
    created_by    uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);
CREATE UNIQUE INDEX notification_rules_name ON notification_rules (project_id, name);
CREATE INDEX notification_rules_trigger ON notification_rules (project_id, trigger) WHERE enabled;

CREATE TABLE notification_rule_channels (
    rule_id    uuid NOT NULL REFERENCES notification_rules (id) ON DELETE CASCADE,
    channel_id uuid NOT NULL REFERENCES notification_channels (id) ON DELETE CASCADE,
    PRIMARY KEY (rule_id, channel_id)
);
CREATE INDEX notification_rule_channels_channel ON notification_rule_channels (channel_id);

-- One row per (rule, subject): the subject is the task name, agent or
-- command action, so one noisy task cannot silence alerts about others.
CREATE TABLE notification_cooldowns (
    rule_id       uuid NOT NULL REFERENCES notification_rules (id) ON DELETE CASCADE,
    key           text NOT NULL,
    last_fired_at timestamptz,
    -- Occurrences muted since the last message (reported in the next one).
    suppressed    bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (rule_id, key)
);

CREATE TABLE notification_outbox (
    id              uuid PRIMARY KEY,
    project_id      uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    channel_id      uuid NOT NULL REFERENCES notification_channels (id) ON DELETE CASCADE,
    rule_id         uuid REFERENCES notification_rules (id) ON DELETE SET NULL,
    trigger         text NOT NULL,
    payload         jsonb NOT NULL,
    -- pending -> sending -> sent | failed; sending rows whose lease ran out
    -- (the process died mid-send) go back to pending.
    status          text NOT NULL CHECK (status IN ('pending', 'sending', 'sent', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    lease_until     timestamptz,
    last_error      text,
    last_status     integer,
    created_at      timestamptz NOT NULL,
    finished_at     timestamptz
);
CREATE INDEX notification_outbox_due ON notification_outbox (channel_id, next_attempt_at) WHERE status = 'pending';
CREATE INDEX notification_outbox_leased ON notification_outbox (lease_until) WHERE status = 'sending';
CREATE INDEX notification_outbox_recent ON notification_outbox (project_id, created_at DESC);
CREATE INDEX notification_outbox_finished ON notification_outbox (finished_at) WHERE finished_at IS NOT NULL;
