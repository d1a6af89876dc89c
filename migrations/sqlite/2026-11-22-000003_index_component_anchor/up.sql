-- Reports of one component over all its environments (stats?component=api)
-- filter on the component and a time range: without this index the planner
-- can only range over time for all components, or over the component for all
-- time.
CREATE INDEX deployments_component_only_anchor ON deployments (component, anchor_at, seq);
