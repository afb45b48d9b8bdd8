-- What each test did, item by item (triage_facts_test_items), is computed when first read, not with
-- the other facts (facts.py, LAZY): ~45% of a run's facts, read only for a failed test with no error
-- under it. Files from before computed them with the rest.
ALTER TABLE triage_facts_runs ADD COLUMN test_items_computed BOOLEAN DEFAULT true;
