-- Validators: the rules for names, addresses and permission names, as
-- IMMUTABLE functions shared by CHECK constraints (the last line of defence)
-- and by the triggers and API functions that explain a rejection with a
-- um-specific SQLSTATE and a hint.  The SQL ones are plpgsql: a CHECK
-- constraint calls them at every write of the row (um_internal.lock_organization
-- writes an organization's row at each membership change), and a pinned
-- search_path keeps a SQL function from being inlined, so it would be
-- planned again at every statement; plpgsql keeps its plan for the session.

CREATE FUNCTION um_internal.permission_name_is_valid(name text, allow_wildcards boolean DEFAULT false)
RETURNS boolean
AS 'MODULE_PATHNAME', 'um_permission_name_is_valid'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION um_internal.permission_name_is_valid(text, boolean) IS
  'true when name is "resource:action" (lowercase ASCII letters, digits, "_" and "-"); with allow_wildcards "*" may stand for a whole part';

CREATE FUNCTION um_internal.assert_permission_name(name text, allow_wildcards boolean DEFAULT false)
RETURNS text
AS 'MODULE_PATHNAME', 'um_assert_permission_name'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION um_internal.assert_permission_name(text, boolean) IS
  'returns name, or raises SQLSTATE UM010 saying what is wrong with it';

CREATE FUNCTION @extschema@.um_permission_matches(pattern text, permission text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'um_permission_matches'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.um_permission_matches(text, text) IS
  'does a grant of pattern (which may use "*" for a whole part) cover permission?  e.g. um_permission_matches(''service:*'', ''service:read'')';

-- Pragmatic RFC 5321 shape: ASCII local part of at most 64 bytes (dot-atom),
-- a domain of at least two DNS labels with an alphabetic top-level label,
-- at most 254 bytes in all.  Internationalized domains are accepted in their
-- punycode (xn--) form.
CREATE FUNCTION um_internal.email_is_valid(email text)
RETURNS boolean
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN octet_length(email) <= 254
     AND octet_length(split_part(email, '@', 1)) <= 64
     AND email ~ '^[A-Za-z0-9!#$%&''*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&''*+/=?^_`{|}~-]+)*@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+([A-Za-z]{2,63}|xn--[A-Za-z0-9-]{1,59})$';
END
$$;
COMMENT ON FUNCTION um_internal.email_is_valid(text) IS 'true when email is a plausible ASCII e-mail address (IDN domains in punycode)';

-- A DNS name of at least two labels with an alphabetic (or punycode)
-- top-level label, in lowercase, at most 253 bytes: the domain part that
-- um_internal.email_is_valid accepts.
CREATE FUNCTION um_internal.domain_is_valid(domain text)
RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
RETURN octet_length(domain) <= 253
   AND domain ~ '^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+([a-z]{2,63}|xn--[a-z0-9-]{1,59})$';
COMMENT ON FUNCTION um_internal.domain_is_valid(text) IS 'true when domain is a lowercase DNS name of at least two labels, as in an address um accepts';

CREATE FUNCTION um_internal.assert_email(email text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF NOT um_internal.email_is_valid(email) THEN
    RAISE EXCEPTION 'invalid email address "%"', email
      USING ERRCODE = 'UM001',
            DETAIL = 'An address is local-part@domain, in ASCII, at most 254 bytes, with a domain of at least two labels.',
            HINT = 'Check the address for typos; write internationalized domains in their xn-- (punycode) form.';
  END IF;
END
$$;
COMMENT ON FUNCTION um_internal.assert_email(text) IS
  'raises SQLSTATE UM001 when email is not a valid address (see um_internal.email_is_valid); NULL passes, for NOT NULL to refuse';

-- Display names (organizations, users, roles, teams, scope nodes): no
-- surrounding blanks, no control characters, 1 to max_len characters.
CREATE FUNCTION um_internal.display_name_is_valid(name text, max_len integer DEFAULT 200)
RETURNS boolean
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN name = btrim(name, E' \t\r\n') AND length(name) BETWEEN 1 AND max_len AND name !~ '[[:cntrl:]]';
END
$$;
COMMENT ON FUNCTION um_internal.display_name_is_valid(text, integer) IS 'true when name has 1 to max_len characters, no surrounding blanks and no control characters';

CREATE FUNCTION um_internal.slug_is_valid(slug text)
RETURNS boolean
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN slug ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$';
END
$$;
COMMENT ON FUNCTION um_internal.slug_is_valid(text) IS 'true when slug is 1 to 63 lowercase letters, digits and inner hyphens (usable in a URL or host name)';

-- BCP 47 subset: language, optional script, optional region ("en", "pt-BR", "zh-Hant-TW", "es-419").
CREATE FUNCTION um_internal.locale_is_valid(locale text)
RETURNS boolean
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN locale ~ '^[a-z]{2,3}(-[A-Z][a-z]{3})?(-([A-Z]{2}|[0-9]{3}))?$';
END
$$;
COMMENT ON FUNCTION um_internal.locale_is_valid(text) IS 'true when locale is a BCP 47 language tag such as en, pt-BR, zh-Hant-TW or es-419';

-- E.164: "+", country code, subscriber number; 8 to 15 digits in all.
CREATE FUNCTION um_internal.mobile_is_valid(mobile text)
RETURNS boolean
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN mobile ~ '^\+[1-9][0-9]{6,14}$';
END
$$;
COMMENT ON FUNCTION um_internal.mobile_is_valid(text) IS 'true when mobile is an E.164 number such as +14155550123';

-- Identifiers chosen by applications: scope kinds, audit actions.
CREATE FUNCTION um_internal.identifier_is_valid(ident text)
RETURNS boolean
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN ident ~ '^[a-z][a-z0-9_]{0,62}$';
END
$$;
COMMENT ON FUNCTION um_internal.identifier_is_valid(text) IS 'true when ident is a lowercase identifier of at most 63 bytes';

-- A time zone is valid when it has the shape of an IANA name and PostgreSQL
-- knows it.  STABLE, not IMMUTABLE: the time zone database may change.
CREATE FUNCTION um_internal.timezone_is_valid(tz text)
RETURNS boolean
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF tz !~ '^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$' OR length(tz) > 64 THEN
    RETURN false;
  END IF;
  PERFORM pg_catalog.now() AT TIME ZONE tz;
  RETURN true;
EXCEPTION WHEN invalid_parameter_value OR feature_not_supported THEN
  RETURN false;
END
$$;
COMMENT ON FUNCTION um_internal.timezone_is_valid(text) IS 'true when tz is an IANA time zone name PostgreSQL knows, such as Europe/Paris';
