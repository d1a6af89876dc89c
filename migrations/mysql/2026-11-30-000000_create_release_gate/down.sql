ALTER TABLE tokens DROP COLUMN scope_team_projects;
DROP TABLE gate_audit;
DROP TABLE gate_outbox;
DROP TABLE approval_links;
DROP TABLE release_approvers;
DROP TABLE releases;
