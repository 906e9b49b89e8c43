-- Least-privilege database roles for Palisade (see SECURITY.md, "Audit log").
--
-- Run as the role that owns the schema (the one `palisade migrate` used),
-- after migrating, each time migrations add tables:
--     psql "$OWNER_URL" -v app_role=palisade_app -f scripts/db-roles.sql
-- Then run `palisade serve` with PALISADE_DATABASE_URL pointing at the app
-- role. The app role can read everything, change ordinary tables, and only
-- read and append the audit log: it cannot UPDATE, DELETE or TRUNCATE it.
GRANT USAGE ON SCHEMA public TO :"app_role";
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO :"app_role";
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO :"app_role";
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM :"app_role";
GRANT SELECT, INSERT ON audit_log TO :"app_role";
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON schema_migrations FROM :"app_role";
