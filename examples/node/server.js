'use strict';
// examples/node/server.js: an HTTP backend on um, with node-postgres (pg.Pool).
//
//   cd examples/node && npm ci
//   DATABASE_URL='postgresql://app_backend@127.0.0.1:6432/app' \
//   MAIL_OUTBOX=/tmp/outbox.jsonl PORT=8002 node server.js
//
// The same service as examples/python/app.py: the same endpoints, the same
// JSON, the same error bodies (test/examples/run.sh drives both).  Every
// request that acts as a user runs
//
//   BEGIN; SELECT um_begin(<the bearer token>); ...the request's queries...; COMMIT
//
// on one client checked out of the pool, and PostgreSQL's row-level security
// (um_protect_table in examples/schema.sql) decides which invoices it sees.
// Errors are mapped from their SQLSTATE with um.error_codes, loaded at start.
// Mail is appended to MAIL_OUTBOX (one JSON object a line) where a real backend
// would hand it to its mailer.  The log names method, path, status and time:
// never a password, a token or a request body.
const fs = require('fs');
const http = require('http');
const pg = require('pg');

// bigint (int8, OID 20) and numeric: pg returns both as strings by default,
// and this service keeps it so.  A JavaScript number holds integers exactly
// only up to 2^53, a bigint column up to 2^63: parsing ids with Number()
// would silently corrupt large ids, and JSON has no BigInt.  Ids and amounts
// therefore leave as JSON strings (examples/python does the same), and ids
// arriving from clients are validated as digit strings and bound as text
// with an explicit ::bigint in the SQL.  (Integers *inside* um_export_my_data's
// jsonb are parsed by JSON.parse as numbers: fine for ids below 2^53.)
// We say so explicitly rather than rely on the default:
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => v);
pg.types.setTypeParser(pg.types.builtins.NUMERIC, (v) => v);

// The pool.  node-postgres sends parameterized queries as unnamed statements
// of the extended protocol, which pgbouncer's transaction pooling passes
// through; never give a query a `name` (a named prepared statement lives on
// one server connection, and the next transaction may get another: error
// 26000 or 42P05, before pgbouncer 1.21).  Never call pool.query() for a
// request that acts as a user: each pool.query() may take another connection
// and runs in a transaction of its own, so um_begin would not reach the next.
const pool = new pg.Pool({
  connectionString: process.env.DATABASE_URL,
  max: Number(process.env.POOL_SIZE || 10),
});
pool.on('error', (err) => log(`idle client error ${err.code || ''}`));

const ERROR_CODES = new Map();     // sqlstate -> {name, status}, from um.error_codes
// SQLSTATEs outside um's class UM that this application answers by itself
const OTHER_CODES = {
  '42501': ['insufficient_privilege', 403],   // e.g. a row into an organization you may not write
  '23505': ['unique_violation', 409],
  '23503': ['foreign_key_violation', 409],
  '23514': ['check_violation', 400],
  '23502': ['not_null_violation', 400],
  '22P02': ['invalid_text_representation', 400],
  '22003': ['numeric_value_out_of_range', 400],
  '40001': ['serialization_failure', 503],    // retried first (see inTransaction)
  '40P01': ['deadlock_detected', 503],
  '55000': ['object_not_in_prerequisite_state', 503],
  '25006': ['read_only_sql_transaction', 503],
  '57014': ['query_canceled', 503],
};
const RETRY = new Set(['40001', '40P01']);

function log(line) {
  process.stderr.write(`${new Date().toISOString()} node ${line}\n`);
}

class ApiError extends Error {
  constructor(status, error, message, sqlstate = null, hint = null) {
    super(message);
    this.status = status;
    this.body = { error, sqlstate, message, hint };
  }
}

// Map a database error by its SQLSTATE.  um's messages and hints name nothing
// of another tenant; the DETAIL of other errors (a unique key's values, ...)
// is never passed on; an unknown error says nothing.
function fromDbError(err) {
  const code = err.code;
  const um = ERROR_CODES.get(code);
  const known = um ? [um.name, um.status] : OTHER_CODES[code];
  if (!known) {
    log(`database error ${code || 'none'}`);
    return new ApiError(500, 'internal_error', 'internal error', code || null);
  }
  return new ApiError(known[1], known[0], err.message, code, err.hint || null);
}

// A refusal the database expresses as "no row" (RLS hides what you may not
// change): answered with um's name and status for permission_denied.
function forbidden(message) {
  const um = ERROR_CODES.get('UM070') || { name: 'permission_denied', status: 403 };
  return new ApiError(um.status, um.name, message);
}

// Run work(client) in one transaction on one pooled client.  With a token:
// BEGIN; um_begin(token) [; um_impersonate(id)]; work; COMMIT.  Without:
// nobody acts.  Retries a serialization failure or deadlock twice.
async function inTransaction(work, token = null, impersonate = null) {
  for (let attempt = 0; ; attempt++) {
    const client = await pool.connect();
    let broken = false;
    try {
      await client.query('BEGIN');
      if (token !== null) {
        await client.query('SELECT um_begin($1)', [token]);
        if (impersonate !== null) await client.query('SELECT um_impersonate($1::bigint)', [impersonate]);
      }
      const result = await work(client);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      try {
        await client.query('ROLLBACK');
      } catch (e) {
        broken = true;                     // a dead connection: do not give it back
      }
      if (err instanceof ApiError) throw err;
      if (RETRY.has(err.code) && attempt < 2) {
        await new Promise((r) => setTimeout(r, 50 * (attempt + 1)));
        continue;
      }
      if (err.code) throw fromDbError(err);
      throw err;
    } finally {
      client.release(broken);
    }
  }
}

async function one(client, sql, params) {
  const r = await client.query(sql, params);
  return r.rows[0];
}

// ---- mail ---------------------------------------------------------------------
function sendMail(to, kind, token) {
  fs.appendFileSync(process.env.MAIL_OUTBOX, JSON.stringify({ to, kind, token }) + '\n');
}

// ---- input ----------------------------------------------------------------------
function text(body, key, required = true) {
  const v = body[key];
  if ((v === undefined || v === null) && !required) return null;
  if (typeof v !== 'string' || v === '') throw new ApiError(400, 'bad_request', `${key} must be a non-empty string`);
  return v;
}

// An id from JSON or a path: a number or a string of digits -> a string of digits.
function ident(v, what = 'id') {
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return String(v);
  if (typeof v === 'string' && /^[0-9]{1,19}$/.test(v)) return v;
  throw new ApiError(400, 'bad_request', `${what} must be an id`);
}

function amount(v) {
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  if (typeof v === 'string' && /^-?[0-9]+(\.[0-9]+)?$/.test(v)) return v;
  throw new ApiError(400, 'bad_request', 'amount must be a number');
}

const INVOICE_COLUMNS = 'id, org_id, customer, amount, approved, created_by';
// int8 and numeric columns are strings already (see setTypeParser above)
const invoice = (r) => ({ id: r.id, org_id: r.org_id, customer: r.customer, amount: r.amount,
  approved: r.approved, created_by: r.created_by });

// ---- endpoints -------------------------------------------------------------------
// Each takes (req, ...path ids) and returns [status, JSON body].

async function signUp(req) {
  const email = text(req.body, 'email');
  const password = text(req.body, 'password');
  const name = text(req.body, 'name', false);
  // nobody acting: um issues mailbox secrets only then (UM058 otherwise)
  const secret = await inTransaction(async (c) =>
    (await one(c, 'SELECT um_sign_up($1, $2, $3) AS t', [email, password, name])).t);
  sendMail(email, 'verify', secret);
  // the same answer for every address: nobody learns whether it is registered
  return [202, { status: 'verification_sent' }];
}

async function verify(req) {
  const token = text(req.body, 'token');
  const password = text(req.body, 'password');
  const session = await inTransaction(async (c) =>
    (await one(c, 'SELECT um_verify_email_and_login($1, $2) AS s', [token, password])).s);
  return [200, { session }];
}

async function requestPasswordReset(req) {
  const email = text(req.body, 'email');
  // nobody acting (UM058 otherwise); token and code null: nothing to mail
  const r = await inTransaction(async (c) =>
    one(c, 'SELECT address, token, code FROM um_request_password_reset($1)', [email]));
  if (r.token !== null) {
    sendMail(r.address, 'reset', r.token);       // the link ...
    sendMail(r.address, 'reset_code', r.code);   // ... and the code, in the same mail
  }
  // the same answer for every address: nobody learns whether it is registered
  return [202, { status: 'reset_sent_if_registered' }];
}

// A login's answer: a session, or (the user has a second factor) the
// challenge to send back with a code to /login/mfa.
function sessionOrChallenge(token) {
  return token.startsWith('umc_') ? [200, { mfa_required: true, challenge: token }] : [200, { session: token }];
}

async function resetPassword(req) {
  const secret = text(req.body, 'secret');
  const password = text(req.body, 'password');
  const email = text(req.body, 'email', false);   // needed with a code
  return sessionOrChallenge(await inTransaction(async (c) =>
    (await one(c, 'SELECT um_reset_password_and_login($1, $2, $3) AS s', [secret, password, email])).s));
}

async function login(req) {
  const email = text(req.body, 'email');
  const password = text(req.body, 'password');
  return sessionOrChallenge(await inTransaction(async (c) => (await one(c, 'SELECT um_login($1, $2) AS s', [email, password])).s));
}

async function loginMfa(req) {
  const challenge = text(req.body, 'challenge');
  const code = text(req.body, 'code');
  const session = await inTransaction(async (c) => (await one(c, 'SELECT um_complete_login($1, $2) AS s', [challenge, code])).s);
  return [200, { session }];
}

async function enrollTotp(req) {
  const row = await req.asUser((c) => one(c,
    'SELECT factor_id::text, secret, otpauth_uri FROM um_enroll_totp($1)', [text(req.body, 'name', false) || 'Authenticator']));
  // the app shows the URI as a QR code; the secret is the user's, shown to them
  return [201, { factor_id: row.factor_id, secret: row.secret, otpauth_uri: row.otpauth_uri }];
}

async function confirmTotp(req, factorId) {
  const row = await req.asUser((c) => one(c, 'SELECT um_confirm_totp($1::bigint, $2) AS codes', [factorId, text(req.body, 'code')]));
  return [200, { recovery_codes: row.codes }];
}

async function logout(req) {
  const token = req.requireToken();
  const ended = await inTransaction(async (c) => (await one(c, 'SELECT um_logout($1) AS e', [token])).e);
  return [200, { ended }];
}

async function me(req) {
  return [200, await req.asUser(async (c) => {
    const who = await one(c, 'SELECT um_current_user_id() AS u, um_real_user_id() AS r');
    const orgs = await c.query('SELECT org_id, slug, name, role, status FROM um_my_organizations() ORDER BY org_id');
    return { user_id: who.u, real_user_id: who.r, organizations: orgs.rows };
  })];
}

async function createOrg(req) {
  const slug = text(req.body, 'slug');
  const name = text(req.body, 'name');
  const orgId = await req.asUser(async (c) =>
    (await one(c, 'SELECT um_create_organization($1, $2, um_current_user_id()) AS id', [slug, name])).id);
  return [201, { org_id: orgId }];
}

async function listInvoices(req) {
  const org = req.query.get('org_id') !== null ? ident(req.query.get('org_id'), 'org_id') : null;
  return [200, await req.asUser(async (c) => {
    const who = await one(c, 'SELECT um_current_user_id() AS u');
    // no tenant filter needed for safety: RLS shows only permitted rows;
    // org_id narrows the list to one organization of the caller's
    const r = await c.query(`SELECT ${INVOICE_COLUMNS} FROM app.invoices`
      + ' WHERE ($1::bigint IS NULL OR org_id = $1::bigint) ORDER BY id', [org]);
    return { user_id: who.u, invoices: r.rows.map(invoice) };
  })];
}

async function createInvoice(req) {
  const orgId = ident(req.body.org_id, 'org_id');
  const customer = text(req.body, 'customer');
  const amt = amount(req.body.amount);
  const row = await req.asUser((c) => one(c,
    `INSERT INTO app.invoices (org_id, customer, amount) VALUES ($1::bigint, $2, $3::numeric) RETURNING ${INVOICE_COLUMNS}`,
    [orgId, customer, amt]));
  return [201, invoice(row)];
}

// An UPDATE or DELETE that matched no row: the invoice is invisible (404,
// whether or not it exists in another tenant) or visible but not the
// caller's to change (403).
async function missingOrForbidden(c, invoiceId, action) {
  if ((await c.query('SELECT 1 FROM app.invoices WHERE id = $1::bigint', [invoiceId])).rowCount > 0) {
    throw forbidden(`you may not ${action} this invoice`);
  }
  throw new ApiError(404, 'not_found', 'no such invoice');
}

async function updateInvoice(req, invoiceId) {
  invoiceId = ident(invoiceId);
  const b = req.body;
  const customer = text(b, 'customer', false);
  const amt = 'amount' in b ? amount(b.amount) : null;
  const approved = b.approved === undefined ? null : b.approved;
  if (approved !== null && typeof approved !== 'boolean') throw new ApiError(400, 'bad_request', 'approved must be true or false');
  return [200, await req.asUser(async (c) => {
    // approving needs invoice:approve too; RLS checks invoice:update
    const row = await one(c,
      'UPDATE app.invoices SET customer = coalesce($1, customer), amount = coalesce($2::numeric, amount),'
      + ' approved = coalesce($3::boolean, approved)'
      + " WHERE id = $4::bigint AND ($3::boolean IS NULL OR um_has_permission('invoice:approve', org_id))"
      + ` RETURNING ${INVOICE_COLUMNS}`, [customer, amt, approved, invoiceId]);
    if (!row) await missingOrForbidden(c, invoiceId, approved !== null ? 'approve' : 'change');
    return invoice(row);
  })];
}

async function deleteInvoice(req, invoiceId) {
  invoiceId = ident(invoiceId);
  return [200, await req.asUser(async (c) => {
    const row = await one(c, 'DELETE FROM app.invoices WHERE id = $1::bigint RETURNING id', [invoiceId]);
    if (!row) await missingOrForbidden(c, invoiceId, 'delete');
    return { deleted: row.id };
  })];
}

async function invite(req, orgId) {
  orgId = ident(orgId, 'org_id');
  const emails = text(req.body, 'emails');
  const role = req.body.role || 'Member';
  const rows = await req.asUser(async (c) => (await c.query(
    'SELECT email, status, invitation_id, token FROM um_invite($1::bigint, $2, $3)', [orgId, emails, role])).rows);
  // after COMMIT: mail the tokens; the inviter never sees them
  for (const r of rows) if (r.token !== null) sendMail(r.email, 'invitation', r.token);
  return [201, { invitations: rows.map((r) => ({ email: r.email, status: r.status, invitation_id: r.invitation_id })) }];
}

async function acceptInvitation(req) {
  const token = text(req.body, 'token');
  if (req.token !== null) {
    // an existing account accepts logged in as itself
    const userId = await req.asUser(async (c) => (await one(c, 'SELECT um_accept_invitation($1) AS u', [token])).u);
    return [200, { user_id: userId, verification_sent: false }];
  }
  // a new address: an account with the password chosen, unverified (the
  // inviter could have seen the token); mail a verification right away.
  // um_accept_invitation does not say which address it was for, so the
  // client repeats it (the invitation mail went there).
  const email = text(req.body, 'email');
  const password = text(req.body, 'password');
  const name = text(req.body, 'name', false);
  const [userId, secret] = await inTransaction(async (c) => {
    const u = (await one(c, 'SELECT um_accept_invitation($1, $2, $3) AS u', [token, password, name])).u;
    const s = (await one(c, 'SELECT um_resend_verification($1) AS s', [email])).s;
    return [u, s];
  });
  if (secret !== null) sendMail(email, 'verify', secret);
  return [200, { user_id: userId, verification_sent: secret !== null }];
}

async function setRole(req, orgId, userId) {
  orgId = ident(orgId, 'org_id');
  userId = ident(userId, 'user_id');
  const role = text(req.body, 'role');
  await req.asUser((c) => c.query('SELECT um_set_org_role($1::bigint, $2::bigint, $3)', [orgId, userId, role]));
  return [200, { org_id: orgId, user_id: userId, role }];
}

async function suspend(req, orgId, userId) {
  orgId = ident(orgId, 'org_id');
  userId = ident(userId, 'user_id');
  await req.asUser((c) => c.query('SELECT um_suspend_user($1::bigint, $2::bigint)', [userId, orgId]));
  return [200, { org_id: orgId, user_id: userId, suspended: true }];
}

async function reactivate(req, orgId, userId) {
  orgId = ident(orgId, 'org_id');
  userId = ident(userId, 'user_id');
  await req.asUser((c) => c.query('SELECT um_reactivate_user($1::bigint, $2::bigint)', [userId, orgId]));
  return [200, { org_id: orgId, user_id: userId, suspended: false }];
}

// Impersonation lasts one transaction, so it is per request: this call checks
// it may start and says where it applies; the client then sends
// X-Impersonate: <user_id> with each request (audited each time).
async function impersonate(req) {
  const target = ident(req.body.user_id, 'user_id');
  return [200, await req.asUser(async (c) => {
    // bigint[] arrives as an array of strings (the INT8 parser above)
    const orgs = (await one(c, 'SELECT um_impersonate($1::bigint) AS o', [target])).o;
    const who = await one(c, 'SELECT um_current_user_id() AS u, um_real_user_id() AS r');
    return { user_id: who.u, real_user_id: who.r, organizations: orgs };
  })];
}

async function endImpersonation(req) {
  return [200, await req.asUser(async (c) => {
    const ended = (await one(c, 'SELECT um_end_impersonation() AS e')).e;
    const who = await one(c, 'SELECT um_current_user_id() AS u, um_real_user_id() AS r');
    return { ended, user_id: who.u, real_user_id: who.r };
  })];
}

async function exportMyData(req) {
  return [200, await req.asUser(async (c) => (await one(c, 'SELECT um_export_my_data() AS d')).d)];
}

async function deleteMyAccount(req) {
  await req.asUser((c) => c.query('SELECT um_delete_my_account()'));
  return [200, { deleted: true }];
}

async function health() {
  await inTransaction((c) => c.query('SELECT 1'));
  return [200, { ok: true }];
}

const ID = '([0-9]+)';
const ROUTES = [
  ['GET', '/healthz', health],
  ['POST', '/signup', signUp],
  ['POST', '/verify', verify],
  ['POST', '/password-reset', requestPasswordReset],
  ['POST', '/password-reset/confirm', resetPassword],
  ['POST', '/login', login],
  ['POST', '/login/mfa', loginMfa],
  ['POST', '/me/mfa/totp', enrollTotp],
  ['POST', `/me/mfa/totp/${ID}/confirm`, confirmTotp],
  ['POST', '/logout', logout],
  ['GET', '/me', me],
  ['GET', '/me/export', exportMyData],
  ['DELETE', '/me', deleteMyAccount],
  ['POST', '/orgs', createOrg],
  ['POST', `/orgs/${ID}/invitations`, invite],
  ['POST', '/invitations/accept', acceptInvitation],
  ['PUT', `/orgs/${ID}/members/${ID}/role`, setRole],
  ['POST', `/orgs/${ID}/members/${ID}/suspend`, suspend],
  ['POST', `/orgs/${ID}/members/${ID}/reactivate`, reactivate],
  ['GET', '/invoices', listInvoices],
  ['POST', '/invoices', createInvoice],
  ['PATCH', `/invoices/${ID}`, updateInvoice],
  ['DELETE', `/invoices/${ID}`, deleteInvoice],
  ['POST', '/impersonation', impersonate],
  ['POST', '/impersonation/end', endImpersonation],
].map(([m, p, f]) => [m, new RegExp(`^${p}$`), f]);

function makeRequest(httpReq, url, body) {
  const auth = httpReq.headers.authorization || '';
  const token = auth.startsWith('Bearer ') ? (auth.slice(7).trim() || null) : null;
  const imp = httpReq.headers['x-impersonate'];
  const req = {
    token,
    impersonate: imp ? ident(imp, 'X-Impersonate') : null,
    query: url.searchParams,
    body,
    requireToken() {
      if (token === null) {
        const um = ERROR_CODES.get('UM067') || { name: 'session_not_valid', status: 401 };
        throw new ApiError(um.status, um.name, 'log in first: send Authorization: Bearer <session token>');
      }
      return token;
    },
    asUser(work) {
      return inTransaction(work, req.requireToken(), req.impersonate);
    },
  };
  return req;
}

async function serve(httpReq, res) {
  const started = process.hrtime.bigint();
  const url = new URL(httpReq.url, 'http://localhost');
  const chunks = [];
  for await (const chunk of httpReq) chunks.push(chunk);
  const raw = Buffer.concat(chunks).toString('utf8');
  let status;
  let out;
  try {
    let match = null;
    let fn = null;
    for (const [m, re, f] of ROUTES) {
      const x = re.exec(url.pathname);
      if (x && m === httpReq.method) { match = x; fn = f; break; }
    }
    if (!fn) throw new ApiError(404, 'not_found', 'no such endpoint');
    let body = {};
    if (raw) {
      try { body = JSON.parse(raw); } catch (e) { throw new ApiError(400, 'bad_request', 'the body is not JSON'); }
    }
    if (body === null || typeof body !== 'object' || Array.isArray(body)) {
      throw new ApiError(400, 'bad_request', 'the body must be a JSON object');
    }
    [status, out] = await fn(makeRequest(httpReq, url, body), ...match.slice(1));
  } catch (err) {
    if (err instanceof ApiError) {
      [status, out] = [err.status, err.body];
    } else {                                       // a bug: say nothing about it
      log(`unexpected ${err && err.name}`);
      [status, out] = [500, { error: 'internal_error', sqlstate: null, message: 'internal error', hint: null }];
    }
  }
  const data = Buffer.from(JSON.stringify(out));
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': data.length });
  res.end(data);
  // method, path, status and time only: no header, no body
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  log(`${httpReq.method} ${url.pathname} ${status} ${ms.toFixed(1)}ms`);
}

async function main() {
  const r = await pool.query('SELECT sqlstate, name, http_status FROM um.error_codes');
  for (const row of r.rows) ERROR_CODES.set(row.sqlstate, { name: row.name, status: row.http_status });
  const host = process.env.HOST || '127.0.0.1';
  const port = Number(process.env.PORT || 8002);
  const server = http.createServer((req, res) => { serve(req, res).catch(() => res.destroy()); });
  server.listen({ host, port, backlog: 511 }, () => log(`listening on ${host}:${port} (${ERROR_CODES.size} error codes loaded)`));
  const stop = () => server.close(() => pool.end().then(() => process.exit(0)));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err) => {
  log(`cannot start: ${err.code || ''} ${err.message}`);
  process.exit(1);
});
