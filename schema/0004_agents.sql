-- Agent gateway: agents and their tokens, ingested events projected into
-- tasks / workers / queues, and operator commands with their lifecycle.
-- Every row carries project_id, and every lookup from an agent frame or a
-- request is filtered by the caller's project.

-- pg_trgm powers substring search on task names and ids (a trusted
-- extension since PostgreSQL 13: the database owner may create it).
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE agents (
    id            uuid PRIMARY KEY,
    project_id    uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name          text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    -- lowercase hex HMAC-SHA256(master ‖ "z4j-agent-token-v1", token): the
    -- z4j protocol's construction, so agents minted elsewhere can move over.
    token_hash    text NOT NULL CHECK (char_length(token_hash) = 64),
    created_by    uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at    timestamptz NOT NULL,
    revoked_at    timestamptz,
    last_seen_at  timestamptz,
    agent_version text,
    framework     text,
    engines       text[] NOT NULL DEFAULT '{}',
    capabilities  jsonb NOT NULL DEFAULT '{}',
    host_name     text,
    CONSTRAINT agents_token_hash_key UNIQUE (token_hash)
);
CREATE UNIQUE INDEX agents_project_name_live ON agents (project_id, name) WHERE revoked_at IS NULL;

CREATE TABLE tasks (
    project_id    uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    engine        text NOT NULL,
    task_id       text NOT NULL,
    name          text,
    queue         text,
    worker        text,
    state         text NOT NULL,
    agent_id      uuid,
    received_at   timestamptz,
    started_at    timestamptz,
    finished_at   timestamptz,
    runtime_ms    bigint,
    retries       integer NOT NULL DEFAULT 0,
    exception     text,
    args          jsonb,
    kwargs        jsonb,
    result        jsonb,
    -- occurred_at of the newest event applied; the state of the newest
    -- event wins, so replays and out-of-order batches converge.
    last_event_at timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    PRIMARY KEY (project_id, engine, task_id)
);
CREATE INDEX tasks_recent ON tasks (project_id, last_event_at DESC, engine DESC, task_id DESC);
CREATE INDEX tasks_state_recent ON tasks (project_id, state, last_event_at DESC, engine DESC, task_id DESC);
CREATE INDEX tasks_name_recent ON tasks (project_id, name, last_event_at DESC, engine DESC, task_id DESC);
CREATE INDEX tasks_queue_recent ON tasks (project_id, queue, last_event_at DESC, engine DESC, task_id DESC);
CREATE INDEX tasks_worker_recent ON tasks (project_id, worker, last_event_at DESC, engine DESC, task_id DESC);
CREATE INDEX tasks_search ON tasks USING gin (name gin_trgm_ops, task_id gin_trgm_ops);

CREATE TABLE task_events (
    project_id  uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    id          uuid NOT NULL,                 -- the agent's event id (dedupe key within a project)
    engine      text NOT NULL,
    task_id     text NOT NULL,
    kind        text NOT NULL,
    occurred_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    agent_id    uuid,
    data        jsonb NOT NULL,                -- redacted by the brain before storage
    PRIMARY KEY (project_id, id)
);
CREATE INDEX task_events_task ON task_events (project_id, engine, task_id, occurred_at);
CREATE INDEX task_events_recent ON task_events (project_id, received_at DESC);

CREATE TABLE workers (
    project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    engine     text NOT NULL,
    name       text NOT NULL,
    agent_id   uuid,
    state      text NOT NULL,
    first_seen timestamptz NOT NULL,
    last_seen  timestamptz NOT NULL,
    succeeded  bigint NOT NULL DEFAULT 0,
    failed     bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (project_id, engine, name)
);

CREATE TABLE queues (
    project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    engine     text NOT NULL,
    name       text NOT NULL,
    depth      bigint,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (project_id, engine, name)
);

CREATE TABLE commands (
    id                   uuid PRIMARY KEY,
    project_id           uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    agent_id             uuid REFERENCES agents (id) ON DELETE SET NULL,
    engine               text NOT NULL,
    action               text NOT NULL,
    target_type          text NOT NULL,
    target_id            text,
    parameters           jsonb NOT NULL,
    status               text NOT NULL CHECK (status IN ('pending', 'dispatched', 'acked', 'succeeded', 'failed', 'timed_out')),
    issued_by            uuid REFERENCES users (id) ON DELETE SET NULL,
    issued_at            timestamptz NOT NULL,
    dispatched_at        timestamptz,
    acked_at             timestamptz,
    finished_at          timestamptz,
    expires_at           timestamptz NOT NULL,   -- pending commands nobody picked up by then time out
    delivery_claim_token uuid NOT NULL,
    session_id           text,
    result               jsonb,
    error                text
);
CREATE INDEX commands_project_recent ON commands (project_id, issued_at DESC);
CREATE INDEX commands_open ON commands (project_id, status) WHERE status IN ('pending', 'dispatched', 'acked');
