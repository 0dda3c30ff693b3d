-- The scope tree's rules: a node's fields, its parent (in the same
-- organization, no cycle, at most 64 levels deep), and deletion of a
-- subtree.  Triggers rather than a foreign key of um.scopes to itself:
-- pg_dump warns about every table whose data refers to itself.

CREATE FUNCTION um_internal.scopes_before_write()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_parent_org bigint;
BEGIN
  IF TG_OP = 'UPDATE' AND NEW.org_id <> OLD.org_id THEN
    RAISE EXCEPTION 'a scope node cannot move to another organization'
      USING ERRCODE = 'UM046',
            HINT = 'Create the node in the other organization instead.';
  END IF;
  IF NOT um_internal.identifier_is_valid(NEW.kind) THEN
    RAISE EXCEPTION 'invalid scope kind "%"', NEW.kind
      USING ERRCODE = 'UM008',
            HINT = 'A kind is a lowercase identifier such as project, environment or dashboard_group.';
  END IF;
  IF NOT um_internal.display_name_is_valid(NEW.name) THEN
    RAISE EXCEPTION 'invalid scope name "%"', NEW.name
      USING ERRCODE = 'UM003',
            DETAIL = 'A name has 1 to 200 characters, no leading or trailing blanks and no control characters.',
            HINT = 'Trim the name.';
  END IF;
  IF NEW.parent_id = NEW.id THEN
    RAISE EXCEPTION 'scope node % cannot be its own parent', NEW.id
      USING ERRCODE = 'UM041',
            HINT = 'Pick another node as the parent, or NULL for a top-level node.';
  END IF;
  -- A parent that does not exist (yet) is left to scopes_check_cycle, which
  -- runs at the end of the statement: a bulk load (pg_restore's COPY) may
  -- bring a child before its parent.
  IF NEW.parent_id IS NOT NULL
     AND (TG_OP = 'INSERT' OR NEW.parent_id IS DISTINCT FROM OLD.parent_id) THEN
    SELECT s.org_id INTO v_parent_org FROM um.scopes s WHERE s.id = NEW.parent_id;
    IF FOUND AND v_parent_org <> NEW.org_id THEN
      RAISE EXCEPTION 'scope node % belongs to another organization', NEW.parent_id
        USING ERRCODE = 'UM046',
              DETAIL = 'A node''s parent must be in the same organization as the node.',
              HINT = 'Pick a parent from the same organization (um.scopes.org_id).';
    END IF;
  END IF;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION um_internal.scopes_before_write() IS 'trigger on um.scopes: validates kind and name; a node stays in its organization, is not its own parent, and its parent is in the same organization';
CREATE TRIGGER scopes_before_write BEFORE INSERT OR UPDATE ON um.scopes
  FOR EACH ROW EXECUTE FUNCTION um_internal.scopes_before_write();

-- A new node with an existing parent cannot close a cycle; only re-parenting
-- can, or rows inserted together with explicit ids.  Checked after the
-- statement, when all its rows are visible.
CREATE FUNCTION um_internal.scopes_check_cycle()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_parent_org bigint;
  v_above integer;
  v_below integer;
BEGIN
  IF NEW.parent_id IS NULL THEN
    RETURN NULL;
  END IF;
  IF TG_OP = 'UPDATE' THEN
    PERFORM um_internal.lock_organization(NEW.org_id);
  END IF;
  -- the parent exists, in the same organization, and stays until this
  -- transaction ends (what a foreign key would do; um.scopes has none to
  -- itself, so that pg_dump finds no loop among um's tables' data)
  SELECT s.org_id INTO v_parent_org FROM um.scopes s WHERE s.id = NEW.parent_id FOR KEY SHARE;
  IF NOT FOUND OR v_parent_org <> NEW.org_id THEN
    RAISE EXCEPTION 'scope node % does not exist in organization %', NEW.parent_id, NEW.org_id
      USING ERRCODE = 'UM036',
            DETAIL = format('Node %s names it as its parent.', NEW.id),
            HINT = 'Pass the id of a node of the same organization as the parent, or NULL for a top-level node.';
  END IF;
  IF EXISTS (
      WITH RECURSIVE up(id) AS (
        SELECT NEW.parent_id
        UNION
        SELECT s.parent_id FROM um.scopes s JOIN up ON s.id = up.id
         WHERE s.parent_id IS NOT NULL)
      SELECT 1 FROM up WHERE up.id = NEW.id) THEN
    RAISE EXCEPTION 'scope node % cannot be placed under node %: that would make a cycle', NEW.id, NEW.parent_id
      USING ERRCODE = 'UM041',
            DETAIL = format('Node %s is node %s itself or one of its descendants.', NEW.parent_id, NEW.id),
            HINT = 'Move the node under a node outside its own subtree.';
  END IF;
  -- The evaluator follows at most 64 levels (src/cache.c): a deeper branch
  -- would make every check on it fail, so it is refused here.
  WITH RECURSIVE up(id, d) AS (SELECT NEW.parent_id, 1 UNION ALL SELECT s.parent_id, up.d + 1
                   FROM um.scopes s JOIN up ON s.id = up.id WHERE s.parent_id IS NOT NULL AND up.d <= 64)
  SELECT max(d) INTO v_above FROM up;
  WITH RECURSIVE down(id, d) AS (SELECT NEW.id, 1 UNION ALL SELECT s.id, down.d + 1
                   FROM um.scopes s JOIN down ON s.parent_id = down.id WHERE down.d <= 64)
  SELECT max(d) INTO v_below FROM down;
  IF v_above + v_below > 64 THEN
    RAISE EXCEPTION 'scope node % cannot be placed under node %: its branch would be % levels deep', NEW.id, NEW.parent_id, v_above + v_below
      USING ERRCODE = 'UM041',
            DETAIL = format('Node %s has %s levels above it and its subtree %s levels; a scope tree has at most 64.', NEW.parent_id, v_above - 1, v_below),
            HINT = 'Place the node higher up in the tree, or flatten the tree.';
  END IF;
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION um_internal.scopes_check_cycle() IS 'trigger on um.scopes: the parent exists in the same organization (UM036, locked as a foreign key would); refuses re-parenting that would make a cycle in the scope tree, and a branch deeper than the 64 levels the evaluator follows (UM041)';
CREATE TRIGGER scopes_check_cycle AFTER INSERT OR UPDATE OF parent_id ON um.scopes
  FOR EACH ROW EXECUTE FUNCTION um_internal.scopes_check_cycle();

-- Deleting a node deletes its subtree, one level a statement (what ON
-- DELETE CASCADE of a key to itself would do).
CREATE FUNCTION um_internal.scopes_delete_children()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM gone) THEN          -- every DELETE fires it, an empty one too: stop there
    DELETE FROM um.scopes s USING gone g WHERE s.parent_id = g.id;
  END IF;
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION um_internal.scopes_delete_children() IS 'statement trigger on um.scopes: deleting nodes deletes their children, and so the whole subtree';
CREATE TRIGGER scopes_delete_children AFTER DELETE ON um.scopes
  REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION um_internal.scopes_delete_children();

