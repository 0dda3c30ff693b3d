-- The tables of what people run themselves (issue 17): password resets,
-- email changes, second factors, and the application's rules for user
-- attributes.  Registered in um.state_tables (20_tables.sql) like the rest.

-- Password resets (79_account_recovery.sql): at most one live request per
-- user, its link token and its code stored only as hashes.
CREATE TABLE um.password_resets (
  user_id bigint PRIMARY KEY REFERENCES um.users ON DELETE CASCADE,
  token_hash bytea NOT NULL CONSTRAINT password_resets_token_hash_key UNIQUE,
  code_hash bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  code_attempts integer NOT NULL DEFAULT 0,
  CONSTRAINT password_resets_expiry_check CHECK (expires_at > created_at)
);
CREATE INDEX password_resets_expires_at_idx ON um.password_resets (expires_at);
COMMENT ON TABLE um.password_resets IS 'outstanding password resets (um_request_password_reset), one per user, single use; the secrets themselves are never stored';
COMMENT ON COLUMN um.password_resets.user_id IS 'whose password the reset sets';
COMMENT ON COLUMN um.password_resets.token_hash IS 'SHA-256 of the link token mailed to the user';
COMMENT ON COLUMN um.password_resets.code_hash IS 'SHA-256 of token_hash and the code mailed with it (um_internal.reset_code_hash)';
COMMENT ON COLUMN um.password_resets.created_at IS 'when it was asked for: a new request replaces it only um.password_reset_interval later';
COMMENT ON COLUMN um.password_resets.expires_at IS 'it can be redeemed until then (um.password_reset_lifetime after the request)';
COMMENT ON COLUMN um.password_resets.code_attempts IS 'wrong codes tried against this request (counted in a transaction of their own); at um.login_max_failures the code is spent, the link still works';

-- Second factors (73_mfa.sql): authenticator apps (TOTP) and WebAuthn
-- credentials a backend verified, and single-use recovery codes.
CREATE TABLE um.mfa_factors (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  user_id bigint NOT NULL REFERENCES um.users ON DELETE CASCADE,
  kind text NOT NULL CONSTRAINT mfa_factors_kind_check CHECK (kind IN ('totp', 'webauthn')),
  name text NOT NULL CONSTRAINT mfa_factors_name_check CHECK (um_internal.display_name_is_valid(name, 100)),
  totp_secret bytea,
  last_step bigint,
  webauthn_credential_id bytea CONSTRAINT mfa_factors_webauthn_credential_id_key UNIQUE,
  webauthn_public_key bytea,
  webauthn_sign_count bigint,
  confirmed_at timestamptz,
  last_used_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT mfa_factors_totp_check CHECK ((kind = 'totp') = (totp_secret IS NOT NULL)),
  CONSTRAINT mfa_factors_webauthn_check
    CHECK ((kind = 'webauthn') = (webauthn_credential_id IS NOT NULL AND webauthn_public_key IS NOT NULL AND webauthn_sign_count IS NOT NULL))
);
CREATE INDEX mfa_factors_user_id_idx ON um.mfa_factors (user_id);
COMMENT ON TABLE um.mfa_factors IS 'second factors of users: TOTP authenticator apps (um_enroll_totp) and WebAuthn credentials; readable by no application role';
COMMENT ON COLUMN um.mfa_factors.id IS 'the factor''s id';
COMMENT ON COLUMN um.mfa_factors.user_id IS 'whose factor it is';
COMMENT ON COLUMN um.mfa_factors.kind IS 'totp (an authenticator app) or webauthn (a security key or passkey a backend verified)';
COMMENT ON COLUMN um.mfa_factors.name IS 'the user''s name for it (Phone, YubiKey)';
COMMENT ON COLUMN um.mfa_factors.totp_secret IS 'the shared TOTP secret (160 bits): the app and um both need it, so it cannot be a hash; protect dumps as you protect password hashes';
COMMENT ON COLUMN um.mfa_factors.last_step IS 'the last 30-second step whose code was accepted: that code, and every earlier one, is never accepted again';
COMMENT ON COLUMN um.mfa_factors.webauthn_credential_id IS 'the WebAuthn credential id';
COMMENT ON COLUMN um.mfa_factors.webauthn_public_key IS 'the credential''s public key (COSE), for the backend that verifies assertions';
COMMENT ON COLUMN um.mfa_factors.webauthn_sign_count IS 'the authenticator''s signature counter as last seen: one that does not grow betrays a cloned key';
COMMENT ON COLUMN um.mfa_factors.confirmed_at IS 'when a first code proved the enrolment; NULL: pending, not yet a factor';
COMMENT ON COLUMN um.mfa_factors.last_used_at IS 'when it last proved a login or a step-up';
COMMENT ON COLUMN um.mfa_factors.created_at IS 'when it was enrolled';

CREATE TABLE um.mfa_recovery_codes (
  user_id bigint NOT NULL REFERENCES um.users ON DELETE CASCADE,
  code_hash bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT mfa_recovery_codes_pkey PRIMARY KEY (user_id, code_hash)
);
COMMENT ON TABLE um.mfa_recovery_codes IS 'single-use recovery codes of users with a second factor (shown once, at the first confirmation or a regeneration); only their hashes';
COMMENT ON COLUMN um.mfa_recovery_codes.user_id IS 'whose code it is';
COMMENT ON COLUMN um.mfa_recovery_codes.code_hash IS 'SHA-256 of the user id and the code (80 random bits)';
COMMENT ON COLUMN um.mfa_recovery_codes.created_at IS 'when it was issued';

-- Email changes (76_email_change.sql): at most one pending per user; the
-- new address takes effect only when its mailbox confirms it.
CREATE TABLE um.email_changes (
  user_id bigint PRIMARY KEY REFERENCES um.users ON DELETE CASCADE,
  new_email text NOT NULL CONSTRAINT email_changes_new_email_check CHECK (um_internal.email_is_valid(new_email)),
  requested_by bigint,
  confirm_hash bytea CONSTRAINT email_changes_confirm_hash_key UNIQUE,
  cancel_hash bytea CONSTRAINT email_changes_cancel_hash_key UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  CONSTRAINT email_changes_expiry_check CHECK (expires_at > created_at)
);
COMMENT ON TABLE um.email_changes IS 'pending email address changes (um_request_email_change), one per user; the secrets themselves are never stored';
COMMENT ON COLUMN um.email_changes.user_id IS 'whose address changes';
COMMENT ON COLUMN um.email_changes.new_email IS 'the address asked for; it replaces the user''s once its mailbox confirms (um_confirm_email_change)';
COMMENT ON COLUMN um.email_changes.requested_by IS 'the acting user who asked (the user, or an admin); NULL for a um administrator';
COMMENT ON COLUMN um.email_changes.confirm_hash IS 'SHA-256 of the confirmation token mailed to the new address (NULL until um_email_change_mail issues it)';
COMMENT ON COLUMN um.email_changes.cancel_hash IS 'SHA-256 of the cancel token mailed to the old address with the notice';
COMMENT ON COLUMN um.email_changes.created_at IS 'when it was asked for';
COMMENT ON COLUMN um.email_changes.expires_at IS 'it can be confirmed until then (24 hours after the request)';

-- What an application keeps in um.users.attributes, key by key, and who may
-- change each (78_profile.sql): an attribute that decides data access must
-- not be changed by the user it restricts.
CREATE TABLE um.user_attribute_rules (
  key text PRIMARY KEY CONSTRAINT user_attribute_rules_key_check CHECK (key ~ '^[a-z][a-z0-9_]{0,62}$'),
  editable_by text NOT NULL DEFAULT 'admin'
    CONSTRAINT user_attribute_rules_editable_by_check CHECK (editable_by IN ('user', 'admin', 'nobody')),
  description text,
  created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE um.user_attribute_rules IS 'the keys of um.users.attributes the application declared (um_declare_user_attribute), each with who may change it; other keys only um administrators set';
COMMENT ON COLUMN um.user_attribute_rules.key IS 'the attribute''s key: a lowercase identifier';
COMMENT ON COLUMN um.user_attribute_rules.editable_by IS 'user: the user (um_update_profile) and admins; admin: admins with user:update in each of the user''s organizations (um_update_user), never the user; nobody: um administrators only (read-only for tenants)';
COMMENT ON COLUMN um.user_attribute_rules.description IS 'what the attribute means, for forms and reviews';
COMMENT ON COLUMN um.user_attribute_rules.created_at IS 'when it was declared';

-- Logins waiting for a second factor (73_mfa.sql): the first step's proof,
-- for 5 minutes, single use.
CREATE TABLE um.login_challenges (
  token_hash bytea PRIMARY KEY,
  user_id bigint NOT NULL REFERENCES um.users ON DELETE CASCADE,
  method text NOT NULL,
  password_changed_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  CONSTRAINT login_challenges_expiry_check CHECK (expires_at > created_at)
);
CREATE INDEX login_challenges_user_id_idx ON um.login_challenges (user_id);
COMMENT ON TABLE um.login_challenges IS 'logins whose first step (a password, a reset, ...) succeeded for a user with a second factor: um_complete_login turns one into a session at assurance level 2';
COMMENT ON COLUMN um.login_challenges.token_hash IS 'SHA-256 of the challenge token (umc_...) the first step returned';
COMMENT ON COLUMN um.login_challenges.user_id IS 'who is logging in';
COMMENT ON COLUMN um.login_challenges.method IS 'how the first step went (the session''s method)';
COMMENT ON COLUMN um.login_challenges.password_changed_at IS 'the password the first step checked: a change since voids the challenge';
COMMENT ON COLUMN um.login_challenges.created_at IS 'when the first step succeeded';
COMMENT ON COLUMN um.login_challenges.expires_at IS 'the second step must come before (5 minutes)';
