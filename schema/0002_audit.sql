-- Tamper-evident audit log (docs/audit-format.md).
-- Rows are appended only by the audit writer, which assigns a gapless seq
-- under a transaction-scoped advisory lock and chains each row's HMAC to
-- the previous one. `details` is stored as the exact canonical JSON text
-- that was MACed (jsonb would reorder and renormalise it).

CREATE TABLE audit_log (
    seq         bigint PRIMARY KEY CHECK (seq >= 1),
    occurred_at timestamptz NOT NULL,
    actor_kind  text NOT NULL CHECK (actor_kind IN ('user', 'api_key', 'agent', 'system', 'anonymous')),
    actor_id    text,
    action      text NOT NULL CHECK (char_length(action) BETWEEN 1 AND 100),
    project_id  uuid,
    target_type text,
    target_id   text,
    outcome     text NOT NULL CHECK (outcome IN ('success', 'failure', 'denied')),
    client_ip   inet,
    request_id  text,
    details     text NOT NULL,
    key_id      text NOT NULL,
    prev_hmac   bytea NOT NULL CHECK (octet_length(prev_hmac) = 32),
    row_hmac    bytea NOT NULL CHECK (octet_length(row_hmac) = 32),
    -- Two rows can never claim the same predecessor: a writer that bypassed
    -- the advisory lock gets a constraint error instead of forking the chain.
    CONSTRAINT audit_log_prev_hmac_key UNIQUE (prev_hmac),
    CONSTRAINT audit_log_row_hmac_key UNIQUE (row_hmac)
);
CREATE INDEX audit_log_time ON audit_log (occurred_at);
CREATE INDEX audit_log_action ON audit_log (action, seq);
CREATE INDEX audit_log_project ON audit_log (project_id, seq) WHERE project_id IS NOT NULL;
CREATE INDEX audit_log_actor ON audit_log (actor_id, seq) WHERE actor_id IS NOT NULL;

-- The application may read and append, nothing else. Revoking from the
-- owner too means even a connection as the owning role must first
-- re-grant itself (a visible, logged act) before it could edit history.
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM PUBLIC;
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM CURRENT_USER;

-- Belt and braces for superusers and owners, who bypass privileges: any
-- UPDATE or TRUNCATE, and any DELETE outside the documented prune path,
-- raises. (A superuser can still disable triggers; that is what the
-- HMAC chain and the external checkpoints are for.)
CREATE FUNCTION audit_log_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('palisade.audit_prune', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_guard();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_guard();
