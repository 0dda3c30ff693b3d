#!/usr/bin/python3
"""examples/python/app.py: an HTTP backend on um, with psycopg 3 and psycopg_pool.

Run it with Debian's python3 (python3-psycopg, python3-psycopg-pool):

    DATABASE_URL='host=127.0.0.1 port=6432 dbname=app user=app_backend' \
    MAIL_OUTBOX=/tmp/outbox.jsonl PORT=8001 /usr/bin/python3 examples/python/app.py

Every request that acts as a user runs in one transaction on one pooled
connection:

    BEGIN; SELECT um_begin(<the bearer token>); ...the request's queries...; COMMIT

and PostgreSQL's row-level security (um_protect_table in examples/schema.sql)
decides which invoices it sees.  The service itself checks no permission.
Database errors are mapped from their SQLSTATE to an HTTP status with
um.error_codes, loaded at start.  Mail (verification and invitation tokens)
is not sent: it is appended to the MAIL_OUTBOX file, one JSON object a line,
where a real backend would hand it to its mailer.  The log names method, path,
status and time: never a password, a token or a request body.

The same endpoints, with the same JSON, are in examples/node/server.js;
test/examples/run.sh drives both.  Ids (bigint) and amounts (numeric) are JSON
strings in every answer: JavaScript numbers cannot hold every bigint.
"""
import json
import logging
import os
import re
import sys
import threading
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import psycopg
from psycopg_pool import ConnectionPool

log = logging.getLogger("invoices")

# ---- the pool ---------------------------------------------------------------
# autocommit=True: psycopg opens no transaction of its own; every request
# opens one explicitly (conn.transaction() sends BEGIN ... COMMIT/ROLLBACK).
# prepare_threshold=None: never prepare statements on the server.  Behind
# pgbouncer's transaction pooling (before 1.21) a prepared statement lives on
# one server connection while the next transaction may get another, which
# fails with 26000 or 42P05 ("prepared statement ... already exists").
POOL = None
ERROR_CODES = {}          # sqlstate -> (name, http status), from um.error_codes

# SQLSTATEs outside um's class UM that this application answers by itself
OTHER_CODES = {
    "42501": ("insufficient_privilege", 403),      # e.g. a row into an organization you may not write
    "23505": ("unique_violation", 409),
    "23503": ("foreign_key_violation", 409),
    "23514": ("check_violation", 400),
    "23502": ("not_null_violation", 400),
    "22P02": ("invalid_text_representation", 400),
    "22003": ("numeric_value_out_of_range", 400),
    "40001": ("serialization_failure", 503),       # retried first (see in_transaction)
    "40P01": ("deadlock_detected", 503),
    "55000": ("object_not_in_prerequisite_state", 503),
    "25006": ("read_only_sql_transaction", 503),
    "57014": ("query_canceled", 503),
}
RETRY = {"40001", "40P01"}


class ApiError(Exception):
    """An answer other than 2xx: status and the JSON error body."""

    def __init__(self, status, error, message, sqlstate=None, hint=None):
        super().__init__(message)
        self.status = status
        self.body = {"error": error, "sqlstate": sqlstate, "message": message, "hint": hint}


def from_db_error(e):
    """Map a psycopg error to an ApiError by its SQLSTATE.  um's messages and
    hints name nothing of another tenant (um reveals nothing about a target
    before its authorization check passes); the DETAIL of other errors (a
    unique key's values, ...) is never passed on; unknown errors say nothing."""
    code = e.sqlstate
    known = ERROR_CODES.get(code) or OTHER_CODES.get(code)
    if known is None:
        log.error("database error %s (%s)", code, type(e).__name__)
        return ApiError(500, "internal_error", "internal error", code)
    name, status = known
    return ApiError(status, name, e.diag.message_primary, code, e.diag.message_hint)


def forbidden(message):
    """A refusal the database expresses as 'no row' (RLS hides what you may
    not change): answered with um's name and status for permission_denied."""
    name, status = ERROR_CODES.get("UM070", ("permission_denied", 403))
    return ApiError(status, name, message)


def in_transaction(work, token=None, impersonate=None):
    """Run work(cur) in one transaction on one pooled connection.  With a
    token: BEGIN; um_begin(token) [; um_impersonate(id)]; work; COMMIT.
    Without: nobody acts (login, sign-up, ...).  Retries a serialization
    failure or deadlock twice; any error rolls the whole transaction back."""
    for attempt in range(3):
        try:
            with POOL.connection() as conn:
                with conn.transaction():
                    cur = conn.cursor()
                    if token is not None:
                        cur.execute("SELECT um_begin(%s)", [token])
                        if impersonate is not None:
                            cur.execute("SELECT um_impersonate(%s::bigint)", [impersonate])
                    return work(cur)
        except psycopg.Error as e:
            if e.sqlstate in RETRY and attempt < 2:
                time.sleep(0.05 * (attempt + 1))
                continue
            raise from_db_error(e) from None


# ---- mail -------------------------------------------------------------------
_mail_lock = threading.Lock()


def send_mail(to, kind, token):
    """Hand a message to the mailer: here, one JSON line in MAIL_OUTBOX."""
    line = json.dumps({"to": to, "kind": kind, "token": token}) + "\n"
    with _mail_lock, open(os.environ["MAIL_OUTBOX"], "a", encoding="utf-8") as f:
        f.write(line)


# ---- input ------------------------------------------------------------------
def text(body, key, required=True):
    v = body.get(key)
    if v is None and not required:
        return None
    if not isinstance(v, str) or v == "":
        raise ApiError(400, "bad_request", f"{key} must be a non-empty string")
    return v


def ident(v, what="id"):
    """An id from JSON or a path: a number or a string of digits -> int."""
    if isinstance(v, bool) or not (isinstance(v, int) or (isinstance(v, str) and re.fullmatch(r"[0-9]{1,19}", v))):
        raise ApiError(400, "bad_request", f"{what} must be an id")
    return int(v)


def amount(v):
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        raise ApiError(400, "bad_request", "amount must be a number")
    try:
        d = Decimal(str(v))
    except Exception:
        d = None
    if d is None or not d.is_finite():
        raise ApiError(400, "bad_request", "amount must be a number")
    return d


def sid(v):
    """bigint ids go out as JSON strings (as examples/node does)."""
    return None if v is None else str(v)


INVOICE_COLUMNS = "id, org_id, customer, amount, approved, created_by"


def invoice(row):
    return {"id": sid(row[0]), "org_id": sid(row[1]), "customer": row[2],
            "amount": str(row[3]), "approved": row[4], "created_by": sid(row[5])}


# ---- endpoints ----------------------------------------------------------------
# Each takes (req) and returns (status, JSON body).  req.token is the bearer
# token (or None), req.impersonate the X-Impersonate user id (or None).

def sign_up(req):
    email, password = text(req.body, "email"), text(req.body, "password")
    name = text(req.body, "name", required=False)
    # nobody acting: um issues mailbox secrets only then (UM058 otherwise)
    secret = in_transaction(lambda cur: cur.execute(
        "SELECT um_sign_up(%s, %s, %s)", [email, password, name]).fetchone()[0])
    send_mail(email, "verify", secret)
    # the same answer for every address: nobody learns whether it is registered
    return 202, {"status": "verification_sent"}


def verify(req):
    token, password = text(req.body, "token"), text(req.body, "password")
    session = in_transaction(lambda cur: cur.execute(
        "SELECT um_verify_email_and_login(%s, %s)", [token, password]).fetchone()[0])
    return 200, {"session": session}



def request_password_reset(req):
    email = text(req.body, "email")
    # nobody acting (UM058 otherwise); token and code NULL: nothing to mail
    address, token, code = in_transaction(lambda cur: cur.execute(
        "SELECT address, token, code FROM um_request_password_reset(%s)", [email]).fetchone())
    if token is not None:
        send_mail(address, "reset", token)        # the link ...
        send_mail(address, "reset_code", code)    # ... and the code, in the same mail
    # the same answer for every address: nobody learns whether it is registered
    return 202, {"status": "reset_sent_if_registered"}


def session_or_challenge(token):
    """A login's answer: a session, or (the user has a second factor) the
    challenge to send back with a code to /login/mfa."""
    if token.startswith("umc_"):
        return 200, {"mfa_required": True, "challenge": token}
    return 200, {"session": token}


def reset_password(req):
    secret, password = text(req.body, "secret"), text(req.body, "password")
    email = text(req.body, "email", required=False)      # needed with a code
    return session_or_challenge(in_transaction(lambda cur: cur.execute(
        "SELECT um_reset_password_and_login(%s, %s, %s)", [secret, password, email]).fetchone()[0]))


def login(req):
    email, password = text(req.body, "email"), text(req.body, "password")
    return session_or_challenge(in_transaction(lambda cur: cur.execute(
        "SELECT um_login(%s, %s)", [email, password]).fetchone()[0]))


def login_mfa(req):
    challenge, code = text(req.body, "challenge"), text(req.body, "code")
    session = in_transaction(lambda cur: cur.execute(
        "SELECT um_complete_login(%s, %s)", [challenge, code]).fetchone()[0])
    return 200, {"session": session}


def enroll_totp(req):
    factor_id, secret, uri = req.as_user(lambda cur: cur.execute(
        "SELECT factor_id, secret, otpauth_uri FROM um_enroll_totp(%s)",
        [text(req.body, "name", required=False) or "Authenticator"]).fetchone())
    # the app shows the URI as a QR code; the secret is the user's, shown to them
    return 201, {"factor_id": sid(factor_id), "secret": secret, "otpauth_uri": uri}


def confirm_totp(req, factor_id):
    codes = req.as_user(lambda cur: cur.execute(
        "SELECT um_confirm_totp(%s::bigint, %s)", [factor_id, text(req.body, "code")]).fetchone()[0])
    return 200, {"recovery_codes": codes}


def logout(req):
    token = req.require_token()
    ended = in_transaction(lambda cur: cur.execute("SELECT um_logout(%s)", [token]).fetchone()[0])
    return 200, {"ended": ended}


def me(req):
    def work(cur):
        user_id, real_id = cur.execute("SELECT um_current_user_id(), um_real_user_id()").fetchone()
        orgs = cur.execute("SELECT org_id, slug, name, role, status FROM um_my_organizations() ORDER BY org_id").fetchall()
        return {"user_id": sid(user_id), "real_user_id": sid(real_id),
                "organizations": [{"org_id": sid(o[0]), "slug": o[1], "name": o[2], "role": o[3], "status": o[4]}
                                  for o in orgs]}
    return 200, req.as_user(work)


def create_org(req):
    slug, name = text(req.body, "slug"), text(req.body, "name")
    org_id = req.as_user(lambda cur: cur.execute(
        "SELECT um_create_organization(%s, %s, um_current_user_id())", [slug, name]).fetchone()[0])
    return 201, {"org_id": sid(org_id)}


def list_invoices(req):
    org = req.query.get("org_id")
    org = ident(org, "org_id") if org is not None else None

    def work(cur):
        user_id = cur.execute("SELECT um_current_user_id()").fetchone()[0]
        # no tenant filter needed for safety: RLS shows only permitted rows;
        # org_id narrows the list to one organization of the caller's
        rows = cur.execute(f"SELECT {INVOICE_COLUMNS} FROM app.invoices"
                           " WHERE (%s::bigint IS NULL OR org_id = %s::bigint) ORDER BY id", [org, org]).fetchall()
        return {"user_id": sid(user_id), "invoices": [invoice(r) for r in rows]}
    return 200, req.as_user(work)


def create_invoice(req):
    org_id = ident(req.body.get("org_id"), "org_id")
    customer, amt = text(req.body, "customer"), amount(req.body.get("amount"))
    row = req.as_user(lambda cur: cur.execute(
        f"INSERT INTO app.invoices (org_id, customer, amount) VALUES (%s, %s, %s) RETURNING {INVOICE_COLUMNS}",
        [org_id, customer, amt]).fetchone())
    return 201, invoice(row)


def _missing_or_forbidden(cur, invoice_id, action):
    """An UPDATE or DELETE that matched no row: the invoice is invisible
    (404, whether or not it exists in another tenant) or visible but not
    the caller's to change (403)."""
    if cur.execute("SELECT 1 FROM app.invoices WHERE id = %s", [invoice_id]).fetchone():
        raise forbidden(f"you may not {action} this invoice")
    raise ApiError(404, "not_found", "no such invoice")


def update_invoice(req, invoice_id):
    invoice_id = ident(invoice_id)
    b = req.body
    customer = text(b, "customer", required=False)
    amt = amount(b["amount"]) if "amount" in b else None
    approved = b.get("approved")
    if approved is not None and not isinstance(approved, bool):
        raise ApiError(400, "bad_request", "approved must be true or false")

    def work(cur):
        # approving needs invoice:approve too; RLS checks invoice:update
        row = cur.execute(
            f"UPDATE app.invoices SET customer = coalesce(%s, customer), amount = coalesce(%s, amount),"
            f" approved = coalesce(%s, approved)"
            f" WHERE id = %s AND (%s::boolean IS NULL OR um_has_permission('invoice:approve', org_id))"
            f" RETURNING {INVOICE_COLUMNS}", [customer, amt, approved, invoice_id, approved]).fetchone()
        if row is None:
            _missing_or_forbidden(cur, invoice_id, "approve" if approved is not None else "change")
        return invoice(row)
    return 200, req.as_user(work)


def delete_invoice(req, invoice_id):
    invoice_id = ident(invoice_id)

    def work(cur):
        row = cur.execute("DELETE FROM app.invoices WHERE id = %s RETURNING id", [invoice_id]).fetchone()
        if row is None:
            _missing_or_forbidden(cur, invoice_id, "delete")
        return {"deleted": sid(row[0])}
    return 200, req.as_user(work)


def invite(req, org_id):
    org_id = ident(org_id, "org_id")
    emails, role = text(req.body, "emails"), req.body.get("role") or "Member"
    rows = req.as_user(lambda cur: cur.execute(
        "SELECT email, status, invitation_id, token FROM um_invite(%s, %s, %s)", [org_id, emails, role]).fetchall())
    # after COMMIT: mail the tokens; the inviter never sees them
    for email, _status, _id, token in rows:
        if token is not None:
            send_mail(email, "invitation", token)
    return 201, {"invitations": [{"email": r[0], "status": r[1], "invitation_id": sid(r[2])} for r in rows]}


def accept_invitation(req):
    token = text(req.body, "token")
    if req.token is not None:
        # an existing account accepts logged in as itself
        user_id = req.as_user(lambda cur: cur.execute("SELECT um_accept_invitation(%s)", [token]).fetchone()[0])
        return 200, {"user_id": sid(user_id), "verification_sent": False}
    # a new address: an account with the password chosen, unverified (the
    # inviter could have seen the token); mail a verification right away.
    # um_accept_invitation does not say which address it was for, so the
    # client repeats it (the invitation mail went there).
    email, password = text(req.body, "email"), text(req.body, "password")
    name = text(req.body, "name", required=False)

    def work(cur):
        uid = cur.execute("SELECT um_accept_invitation(%s, %s, %s)", [token, password, name]).fetchone()[0]
        secret = cur.execute("SELECT um_resend_verification(%s)", [email]).fetchone()[0]
        return uid, secret
    user_id, secret = in_transaction(work)
    if secret is not None:
        send_mail(email, "verify", secret)
    return 200, {"user_id": sid(user_id), "verification_sent": secret is not None}


def set_role(req, org_id, user_id):
    org_id, user_id = ident(org_id, "org_id"), ident(user_id, "user_id")
    role = text(req.body, "role")
    req.as_user(lambda cur: cur.execute("SELECT um_set_org_role(%s, %s, %s)", [org_id, user_id, role]))
    return 200, {"org_id": sid(org_id), "user_id": sid(user_id), "role": role}


def suspend(req, org_id, user_id):
    org_id, user_id = ident(org_id, "org_id"), ident(user_id, "user_id")
    req.as_user(lambda cur: cur.execute("SELECT um_suspend_user(%s, %s)", [user_id, org_id]))
    return 200, {"org_id": sid(org_id), "user_id": sid(user_id), "suspended": True}


def reactivate(req, org_id, user_id):
    org_id, user_id = ident(org_id, "org_id"), ident(user_id, "user_id")
    req.as_user(lambda cur: cur.execute("SELECT um_reactivate_user(%s, %s)", [user_id, org_id]))
    return 200, {"org_id": sid(org_id), "user_id": sid(user_id), "suspended": False}


def impersonate(req):
    # Impersonation lasts one transaction, so it is per request: this call
    # checks it may start and says where it applies; the client then sends
    # X-Impersonate: <user_id> with each request (audited each time).
    target = ident(req.body.get("user_id"), "user_id")

    def work(cur):
        orgs = cur.execute("SELECT um_impersonate(%s::bigint)", [target]).fetchone()[0]
        user_id, real_id = cur.execute("SELECT um_current_user_id(), um_real_user_id()").fetchone()
        return {"user_id": sid(user_id), "real_user_id": sid(real_id), "organizations": [sid(o) for o in orgs]}
    return 200, req.as_user(work)


def end_impersonation(req):
    def work(cur):
        ended = cur.execute("SELECT um_end_impersonation()").fetchone()[0]
        user_id, real_id = cur.execute("SELECT um_current_user_id(), um_real_user_id()").fetchone()
        return {"ended": ended, "user_id": sid(user_id), "real_user_id": sid(real_id)}
    return 200, req.as_user(work)


def export_my_data(req):
    return 200, req.as_user(lambda cur: cur.execute("SELECT um_export_my_data()").fetchone()[0])


def delete_my_account(req):
    req.as_user(lambda cur: cur.execute("SELECT um_delete_my_account()"))
    return 200, {"deleted": True}


def health(req):
    in_transaction(lambda cur: cur.execute("SELECT 1"))
    return 200, {"ok": True}


ID = r"([0-9]+)"
ROUTES = [
    ("GET", r"/healthz", health),
    ("POST", r"/signup", sign_up),
    ("POST", r"/verify", verify),
    ("POST", r"/password-reset", request_password_reset),
    ("POST", r"/password-reset/confirm", reset_password),
    ("POST", r"/login", login),
    ("POST", r"/login/mfa", login_mfa),
    ("POST", r"/me/mfa/totp", enroll_totp),
    ("POST", rf"/me/mfa/totp/{ID}/confirm", confirm_totp),
    ("POST", r"/logout", logout),
    ("GET", r"/me", me),
    ("GET", r"/me/export", export_my_data),
    ("DELETE", r"/me", delete_my_account),
    ("POST", r"/orgs", create_org),
    ("POST", rf"/orgs/{ID}/invitations", invite),
    ("POST", r"/invitations/accept", accept_invitation),
    ("PUT", rf"/orgs/{ID}/members/{ID}/role", set_role),
    ("POST", rf"/orgs/{ID}/members/{ID}/suspend", suspend),
    ("POST", rf"/orgs/{ID}/members/{ID}/reactivate", reactivate),
    ("GET", r"/invoices", list_invoices),
    ("POST", r"/invoices", create_invoice),
    ("PATCH", rf"/invoices/{ID}", update_invoice),
    ("DELETE", rf"/invoices/{ID}", delete_invoice),
    ("POST", r"/impersonation", impersonate),
    ("POST", r"/impersonation/end", end_impersonation),
]
ROUTES = [(m, re.compile(p + r"\Z"), f) for m, p, f in ROUTES]


class Request:
    def __init__(self, handler, query, body):
        auth = handler.headers.get("Authorization") or ""
        self.token = (auth[7:].strip() or None) if auth.startswith("Bearer ") else None
        imp = handler.headers.get("X-Impersonate")
        self.impersonate = ident(imp, "X-Impersonate") if imp else None
        self.query = query
        self.body = body

    def require_token(self):
        if self.token is None:
            name, status = ERROR_CODES.get("UM067", ("session_not_valid", 401))
            raise ApiError(status, name, "log in first: send Authorization: Bearer <session token>")
        return self.token

    def as_user(self, work):
        return in_transaction(work, self.require_token(), self.impersonate)


class Handler(BaseHTTPRequestHandler):
    server_version = "um-example-python"
    protocol_version = "HTTP/1.1"

    def _serve(self, method):
        started = time.monotonic()
        path, _, qs = self.path.partition("?")
        query = {k: v[-1] for k, v in parse_qs(qs).items()}
        try:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            for m, pattern, fn in ROUTES:
                match = pattern.match(path)
                if match and m == method:
                    break
            else:
                raise ApiError(404, "not_found", "no such endpoint")
            try:
                body = json.loads(raw) if raw else {}
            except ValueError:
                raise ApiError(400, "bad_request", "the body is not JSON") from None
            if not isinstance(body, dict):
                raise ApiError(400, "bad_request", "the body must be a JSON object")
            status, out = fn(Request(self, query, body), *match.groups())
        except ApiError as e:
            status, out = e.status, e.body
        except Exception as e:                      # a bug: say nothing about it
            log.exception("unexpected %s", type(e).__name__)
            status, out = 500, {"error": "internal_error", "sqlstate": None, "message": "internal error", "hint": None}
        data = json.dumps(out).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        # method, path, status and time only: no header, no body
        log.info("%s %s %d %.1fms", method, path, status, (time.monotonic() - started) * 1000)

    def do_GET(self): self._serve("GET")
    def do_POST(self): self._serve("POST")
    def do_PUT(self): self._serve("PUT")
    def do_PATCH(self): self._serve("PATCH")
    def do_DELETE(self): self._serve("DELETE")

    def log_message(self, fmt, *args):             # http.server's own log: off (_serve logs)
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


def main():
    global POOL
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s python %(message)s")
    POOL = ConnectionPool(os.environ["DATABASE_URL"], min_size=2, max_size=int(os.environ.get("POOL_SIZE", "10")),
                          kwargs={"autocommit": True, "prepare_threshold": None}, open=True)
    POOL.wait(timeout=30)
    with POOL.connection() as conn:
        for sqlstate, name, status in conn.execute("SELECT sqlstate, name, http_status FROM um.error_codes"):
            ERROR_CODES[sqlstate] = (name, status)
    host, port = os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "8001"))
    server = Server((host, port), Handler)
    log.info("listening on %s:%d (%d error codes loaded)", host, port, len(ERROR_CODES))
    try:
        server.serve_forever()
    finally:
        POOL.close()


if __name__ == "__main__":
    main()
