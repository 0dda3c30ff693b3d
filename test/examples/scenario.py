#!/usr/bin/python3
"""test/examples/scenario.py: drive one example service over real HTTP.

    /usr/bin/python3 test/examples/scenario.py --base http://127.0.0.1:PORT --label py \
        --outbox FILE --secrets FILE [--psql-conninfo CONNINFO]

Plays two tenants (and their members) through every endpoint of
examples/python/app.py or examples/node/server.js, then fires concurrent
requests of both tenants.  Prints one "ok - ..." or "not ok - ..." line per
check (test/examples/run.sh numbers them), with "#" diagnostics; the last
check says whether the scenario ran to its end.  Every password and token it
used is appended to --secrets, so that run.sh can check that no log holds one.
Needs only the standard library.
"""
import argparse
import base64
import hashlib
import hmac
import json
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

args = None
failures = 0
secrets = set()


def totp(secret_b32, step_offset=0):
    """What an authenticator app shows (RFC 6238: HMAC-SHA1, 30 s, 6 digits)."""
    key = base64.b32decode(secret_b32 + "=" * (-len(secret_b32) % 8))
    mac = hmac.new(key, struct.pack(">Q", int(time.time()) // 30 + step_offset), hashlib.sha1).digest()
    o = mac[-1] & 0x0F
    return f"{(struct.unpack('>I', mac[o:o + 4])[0] & 0x7FFFFFFF) % 1000000:06d}"


def check(desc, cond, *diag):
    global failures
    print(("ok - " if cond else "not ok - ") + f"[{args.label}] {desc}", flush=True)
    if not cond:
        failures += 1
        for d in diag:
            for line in str(d).splitlines() or [""]:
                print(f"#   {line}", flush=True)


def secret(s):
    if s:
        secrets.add(s)
    return s


def call(method, path, body=None, token=None, impersonate=None):
    """One HTTP request; returns (status, decoded JSON body)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(args.base + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    if impersonate is not None:
        req.add_header("X-Impersonate", str(impersonate))
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, {"raw": raw.decode(errors="replace")}


def expect(desc, got, status, error=None, sqlstate="any"):
    """Check an answer's status (and for errors its name and SQLSTATE, and
    that the body has exactly the four keys of an error)."""
    st, body = got
    ok = st == status
    if error is not None:
        ok = ok and isinstance(body, dict) and body.get("error") == error \
            and set(body) == {"error", "sqlstate", "message", "hint"}
    if sqlstate != "any":
        ok = ok and isinstance(body, dict) and body.get("sqlstate") == sqlstate
    want = f"{status} {error or ''} {'' if sqlstate == 'any' else sqlstate}"
    check(desc, ok, f"got: {st} {json.dumps(body)[:500]}", f"expected: {want}")
    return body


def mail(to, kind):
    """The last message of this kind the service mailed to this address."""
    found = None
    with open(args.outbox, encoding="utf-8") as f:
        for line in f:
            m = json.loads(line)
            if m["to"] == to and m["kind"] == kind:
                found = m["token"]
    return secret(found)


def sign_up_and_verify(email, password, name):
    st, body = call("POST", "/signup", {"email": email, "password": secret(password), "name": name})
    st2, body2 = call("POST", "/verify", {"token": mail(email, "verify"), "password": password})
    session = secret(body2.get("session")) if isinstance(body2, dict) else None
    return st, body, st2, session


def user_id(token):
    return call("GET", "/me", token=token)[1]["user_id"]


def scenario():
    L = args.label
    ada_mail, bob_mail = f"ada.{L}@acme-{L}.example", f"bob.{L}@globex-{L}.example"
    ada_pw, bob_pw = f"ada {L} correct horse", f"bob {L} battery staple"

    # ---- sign-up, verification, login, logout ------------------------------
    st, body, st2, ada = sign_up_and_verify(ada_mail, ada_pw, "Ada Lovelace")
    check("sign-up answers 202 verification_sent, with no token in the answer",
          st == 202 and body == {"status": "verification_sent"}, f"got: {st} {body}")
    check("the mailed token and the password verify the address and log in (a session token)",
          st2 == 200 and isinstance(ada, str) and ada.startswith("um_"), f"got: {st2}")
    st, body = call("POST", "/signup", {"email": ada_mail, "password": secret("someone else's guess"), "name": "Eve"})
    check("a second sign-up for the registered address answers exactly as the first (no enumeration)",
          st == 202 and body == {"status": "verification_sent"}, f"got: {st} {body}")
    expect("and its mailed secret redeems nothing: 410 token_not_valid (UM053)",
           call("POST", "/verify", {"token": mail(ada_mail, "verify"), "password": "someone else's guess"}),
           410, "token_not_valid", "UM053")
    st, body, st2, bob = sign_up_and_verify(bob_mail, bob_pw, "Bob Page")
    check("a second tenant's founder signs up and verifies", st == 202 and st2 == 200 and bob, f"got: {st} {st2}")

    expect("a wrong password: 401 invalid_credentials (UM060)",
           call("POST", "/login", {"email": ada_mail, "password": secret("tr0ub4dor&3")}), 401, "invalid_credentials", "UM060")
    carol_mail = f"carol.{L}@acme-{L}.example"
    call("POST", "/signup", {"email": carol_mail, "password": secret("carol unverified pw"), "name": "Carol"})
    mail(carol_mail, "verify")
    expect("an unverified address cannot log in: 403 email_not_verified (UM063)",
           call("POST", "/login", {"email": carol_mail, "password": "carol unverified pw"}),
           403, "email_not_verified", "UM063")
    expect("a short password is refused at sign-up: 422 password_not_acceptable (UM068)",
           call("POST", "/signup", {"email": f"short.{L}@example.com", "password": "short"}),
           422, "password_not_acceptable", "UM068")
    expect("an invalid address: 400 invalid_email (UM001)",
           call("POST", "/signup", {"email": "not an address", "password": "long enough password"}),
           400, "invalid_email", "UM001")

    st, body = call("POST", "/login", {"email": ada_mail, "password": ada_pw})
    ada2 = secret(body.get("session"))
    check("login returns a second session", st == 200 and ada2 and ada2 != ada, f"got: {st}")
    st1, _ = call("GET", "/me", token=ada2)
    st2, body2 = call("POST", "/logout", token=ada2)
    check("it works until logout, which ends it", st1 == 200 and st2 == 200 and body2 == {"ended": True},
          f"got: {st1} {st2} {body2}")
    expect("the ended session: 401 session_not_valid (UM067)", call("GET", "/me", token=ada2),
           401, "session_not_valid", "UM067")
    expect("no token at all: 401 session_not_valid", call("GET", "/invoices"), 401, "session_not_valid", None)
    expect("a forged token: 401 session_not_valid (UM067)", call("GET", "/invoices", token="um_" + "x" * 43),
           401, "session_not_valid", "UM067")

    # ---- a forgotten password ------------------------------------------------
    rita_mail, rita_pw = f"rita.{L}@acme-{L}.example", f"rita {L} first password"
    _, _, _, rita = sign_up_and_verify(rita_mail, rita_pw, "Rita")
    st, body = call("POST", "/password-reset", {"email": rita_mail})
    link, code = mail(rita_mail, "reset"), mail(rita_mail, "reset_code")
    check("a reset request answers 202 reset_sent_if_registered and mails a link token and a code",
          st == 202 and body == {"status": "reset_sent_if_registered"} and link and code and len(code) == 8,
          f"got: {st} {body}")
    nobody = f"nobody.{L}@acme-{L}.example"
    st, body = call("POST", "/password-reset", {"email": nobody})
    check("an unknown address gets the very same answer, and no mail",
          st == 202 and body == {"status": "reset_sent_if_registered"} and mail(nobody, "reset") is None,
          f"got: {st} {body}")
    new_pw = secret(f"rita {L} second password")
    expect("a code without its address: 400 invalid_argument (UM009)",
           call("POST", "/password-reset/confirm", {"secret": code, "password": new_pw}), 400, "invalid_argument", "UM009")
    wrong = f"{(int(code) + 1) % 100000000:08d}"
    expect("a wrong code: 410 token_not_valid (UM053)",
           call("POST", "/password-reset/confirm", {"secret": wrong, "password": new_pw, "email": rita_mail}),
           410, "token_not_valid", "UM053")
    st, body = call("POST", "/password-reset/confirm", {"secret": link, "password": new_pw})
    rita2 = secret(body.get("session")) if isinstance(body, dict) else None
    check("the link token and a new password: 200 and a session", st == 200 and rita2 and rita2.startswith("um_"),
          f"got: {st} {body}")
    expect("the session from before the reset ended: 401 session_not_valid (UM067)", call("GET", "/me", token=rita),
           401, "session_not_valid", "UM067")
    expect("the link is single use: 410 token_not_valid",
           call("POST", "/password-reset/confirm", {"secret": link, "password": new_pw}), 410, "token_not_valid", "UM053")
    expect("the old password is gone: 401 invalid_credentials",
           call("POST", "/login", {"email": rita_mail, "password": rita_pw}), 401, "invalid_credentials", "UM060")
    call("POST", "/password-reset", {"email": rita_mail})
    third_pw = secret(f"rita {L} third password")
    st, body = call("POST", "/password-reset/confirm", {"secret": mail(rita_mail, "reset_code"), "password": third_pw,
                                                         "email": rita_mail})
    st2, _ = call("GET", "/me", token=secret(body.get("session")) if isinstance(body, dict) else None)
    check("a new request's code with the address works too, and its session is valid", st == 200 and st2 == 200,
          f"got: {st} {body} {st2}")

    # ---- a second factor ------------------------------------------------------
    rita3 = secret(body.get("session")) if isinstance(body, dict) else None
    st, f = call("POST", "/me/mfa/totp", {"name": "Phone"}, rita3)
    factor, totp_secret = (f.get("factor_id"), secret(f.get("secret"))) if isinstance(f, dict) else (None, None)
    check("Rita enrols an authenticator app: 201, a secret and an otpauth URI for the QR code",
          st == 201 and factor and totp_secret and str(f.get("otpauth_uri", "")).startswith("otpauth://totp/"),
          f"got: {st} {f}")
    wrong_code = f"{(int(totp(totp_secret)) + 1) % 1000000:06d}"
    expect("a wrong first code: 401 factor_code_not_valid (UM090)",
           call("POST", f"/me/mfa/totp/{factor}/confirm", {"code": wrong_code}, rita3), 401, "factor_code_not_valid", "UM090")
    st, body = call("POST", f"/me/mfa/totp/{factor}/confirm", {"code": totp(totp_secret)}, rita3)
    recovery = [secret(c) for c in body.get("recovery_codes", [])] if isinstance(body, dict) else []
    check("the app's code confirms it, with 10 recovery codes", st == 200 and len(recovery) == 10, f"got: {st} {body}")
    st, body = call("POST", "/login", {"email": rita_mail, "password": third_pw})
    challenge = secret(body.get("challenge")) if isinstance(body, dict) else None
    check("now the password alone gives a challenge, not a session: 200 mfa_required",
          st == 200 and body.get("mfa_required") is True and challenge and "session" not in body, f"got: {st} {body}")
    expect("the challenge is no session: 401 session_not_valid (UM067)", call("GET", "/me", token=challenge),
           401, "session_not_valid", "UM067")
    st, body = call("POST", "/login/mfa", {"challenge": challenge, "code": recovery[0] if recovery else ""})
    rita4 = secret(body.get("session")) if isinstance(body, dict) else None
    st2, _ = call("GET", "/me", token=rita4)
    check("with a recovery code the login completes: a session that works", st == 200 and rita4 and st2 == 200,
          f"got: {st} {body} {st2}")
    expect("a challenge is single use: 410 token_not_valid (UM053)",
           call("POST", "/login/mfa", {"challenge": challenge, "code": recovery[1] if len(recovery) > 1 else ""}),
           410, "token_not_valid", "UM053")

    # ---- organizations --------------------------------------------------------
    acme = expect("Ada creates her organization: 201", call("POST", "/orgs", {"slug": f"acme-{L}", "name": "Acme"}, ada), 201)
    acme = acme.get("org_id") if isinstance(acme, dict) else None
    globex = call("POST", "/orgs", {"slug": f"globex-{L}", "name": "Globex"}, bob)[1].get("org_id")
    check("ids are JSON strings", isinstance(acme, str) and isinstance(globex, str) and acme != globex,
          f"got: {acme!r} {globex!r}")
    expect("a taken slug: 409 slug_taken (UM021)", call("POST", "/orgs", {"slug": f"acme-{L}", "name": "Mine"}, bob),
           409, "slug_taken", "UM021")
    st, me = call("GET", "/me", token=ada)
    ada_id = me.get("user_id")
    check("Ada's /me: herself, Root of her organization only",
          st == 200 and me.get("real_user_id") == ada_id
          and [(o["org_id"], o["role"]) for o in me.get("organizations", [])] == [(acme, "Root")], f"got: {me}")
    bob_id = user_id(bob)

    # ---- invoices: each tenant sees only its own rows ---------------------------------
    a1 = call("POST", "/invoices", {"org_id": acme, "customer": "Initech", "amount": "1200.00"}, ada)
    a2 = call("POST", "/invoices", {"org_id": acme, "customer": "Hooli", "amount": 80.5}, ada)
    g1 = call("POST", "/invoices", {"org_id": globex, "customer": "Umbrella", "amount": "99999.99"}, bob)
    check("each founder writes invoices into their own organization: 201",
          [a1[0], a2[0], g1[0]] == [201, 201, 201] and a1[1].get("created_by") == ada_id
          and a2[1].get("amount") == "80.50", f"got: {a1} {a2} {g1}")
    inv1, inv2 = a1[1].get("id"), a2[1].get("id")
    st, body = call("GET", "/invoices", token=ada)
    check("Ada lists exactly Acme's two invoices",
          st == 200 and [i["id"] for i in body["invoices"]] == [inv1, inv2]
          and {i["org_id"] for i in body["invoices"]} == {acme}, f"got: {st} {body}")
    st, body = call("GET", "/invoices", token=bob)
    check("Bob lists exactly Globex's one invoice",
          st == 200 and [i["customer"] for i in body["invoices"]] == ["Umbrella"], f"got: {st} {body}")
    body = expect("Bob writes an invoice into Acme: 403 insufficient_privilege (42501, row-level security)",
                  call("POST", "/invoices", {"org_id": acme, "customer": "mischief", "amount": 1}, bob),
                  403, "insufficient_privilege", "42501")
    st, body = call("PATCH", f"/invoices/{inv1}", {"amount": 1}, bob)
    st2, body2 = call("DELETE", f"/invoices/{inv1}", None, bob)
    check("Bob changes or deletes Acme's invoice: 404, as for an invoice that does not exist",
          st == 404 and st2 == 404 and body == body2 == call("DELETE", "/invoices/999999999", None, bob)[1],
          f"got: {st} {body} {st2} {body2}")
    check("and the answers name nothing of Acme's", "Initech" not in json.dumps([body, body2]) and acme not in json.dumps([body, body2]))
    st, body = call("GET", f"/invoices?org_id={acme}", token=bob)
    check("Bob asks for Acme's invoices by id: an empty list", st == 200 and body["invoices"] == [], f"got: {st} {body}")
    st, body = call("GET", "/invoices", token=ada)
    check("Acme still has exactly its two invoices", [i["id"] for i in body["invoices"]] == [inv1, inv2], f"got: {body}")
    expect("an amount that is not a number: 400 bad_request",
           call("POST", "/invoices", {"org_id": acme, "customer": "x", "amount": "lots"}, ada), 400, "bad_request", None)
    expect("a negative amount: 400 check_violation (23514)",
           call("POST", "/invoices", {"org_id": acme, "customer": "x", "amount": "-5"}, ada), 400, "check_violation", "23514")

    # ---- invitations -------------------------------------------------------------------
    dave_mail, dave_pw = f"dave.{L}@contractor-{L}.example", f"dave {L} writes kernels"
    st, body = call("POST", f"/orgs/{acme}/invitations", {"emails": dave_mail, "role": "Member"}, ada)
    check("Ada invites Dave as Member: 201 invited, and the answer holds no token",
          st == 201 and [(i["email"], i["status"]) for i in body["invitations"]] == [(dave_mail, "invited")]
          and "um_" not in json.dumps(body), f"got: {st} {body}")
    dave_invite = mail(dave_mail, "invitation")
    check("the invitation token was mailed", bool(dave_invite))
    st, body = call("POST", "/invitations/accept",
                    {"token": dave_invite, "email": dave_mail, "password": secret(dave_pw), "name": "Dave Cutler"})
    check("Dave, a new address, accepts; a verification is mailed", st == 200 and body.get("verification_sent") is True,
          f"got: {st} {body}")
    st, body = call("POST", "/verify", {"token": mail(dave_mail, "verify"), "password": dave_pw})
    dave = secret(body.get("session"))
    check("Dave verifies and is logged in", st == 200 and dave, f"got: {st} {body}")
    st, me = call("GET", "/me", token=dave)
    dave_id = me.get("user_id")
    check("Dave is a Member of Acme", [(o["org_id"], o["role"]) for o in me.get("organizations", [])] == [(acme, "Member")],
          f"got: {me}")
    st, body = call("GET", "/invoices", token=dave)
    check("Dave (invoice:read) lists Acme's invoices", [i["id"] for i in body.get("invoices", [])] == [inv1, inv2],
          f"got: {st} {body}")
    st, body = call("POST", "/invoices", {"org_id": acme, "customer": "Dave's lunch", "amount": "12"}, dave)
    dave_inv = body.get("id")
    check("Dave (invoice:create) writes one", st == 201 and body.get("created_by") == dave_id, f"got: {st} {body}")
    expect("Dave (no invoice:update) changes one: 403 permission_denied",
           call("PATCH", f"/invoices/{inv1}", {"amount": "1"}, dave), 403, "permission_denied", None)
    expect("Dave (no invoice:delete) deletes one: 403 permission_denied",
           call("DELETE", f"/invoices/{inv1}", None, dave), 403, "permission_denied", None)
    expect("Dave (no member:invite) invites: 403 permission_denied (UM070)",
           call("POST", f"/orgs/{acme}/invitations", {"emails": "x@example.com"}, dave), 403, "permission_denied", "UM070")
    expect("Dave promotes himself: 403 permission_denied (UM070)",
           call("PUT", f"/orgs/{acme}/members/{dave_id}/role", {"role": "Admin"}, dave), 403, "permission_denied", "UM070")

    # ---- role changes and their effect ------------------------------------------------------
    expect("Ada makes Dave Accountant (a role of the application's template): 200",
           call("PUT", f"/orgs/{acme}/members/{dave_id}/role", {"role": "Accountant"}, ada), 200)
    st, body = call("PATCH", f"/invoices/{inv1}", {"amount": "1250.00", "approved": True}, dave)
    check("the Accountant changes and approves an invoice", st == 200 and body.get("amount") == "1250.00"
          and body.get("approved") is True, f"got: {st} {body}")
    expect("but still deletes none: 403 permission_denied", call("DELETE", f"/invoices/{inv2}", None, dave),
           403, "permission_denied", None)
    expect("Ada makes Dave Admin: 200", call("PUT", f"/orgs/{acme}/members/{dave_id}/role", {"role": "Admin"}, ada), 200)
    st, body = call("DELETE", f"/invoices/{inv2}", None, dave)
    st2, body2 = call("GET", "/invoices", token=ada)
    check("the Admin deletes an invoice, and it is gone",
          st == 200 and body == {"deleted": inv2} and [i["id"] for i in body2["invoices"]] == [inv1, dave_inv],
          f"got: {st} {body} {body2}")
    expect("Bob changes Dave's role in Acme: 403 permission_denied (UM070)",
           call("PUT", f"/orgs/{acme}/members/{dave_id}/role", {"role": "Member"}, bob), 403, "permission_denied", "UM070")
    expect("an unknown role: 404 unknown_role (UM032)",
           call("PUT", f"/orgs/{acme}/members/{dave_id}/role", {"role": "Wizard"}, ada), 404, "unknown_role", "UM032")

    # ---- an existing account accepts an invitation -----------------------------------------------
    erin_mail, erin_pw = f"erin.{L}@example.org", f"erin {L} reads everything"
    _, _, _, erin = sign_up_and_verify(erin_mail, erin_pw, "Erin")
    erin_id = user_id(erin)
    call("POST", f"/orgs/{acme}/invitations", {"emails": erin_mail}, ada)
    erin_invite = mail(erin_mail, "invitation")
    expect("an existing account accepts logged out: 403 invitation_other_account (UM056)",
           call("POST", "/invitations/accept", {"token": erin_invite, "email": erin_mail, "password": erin_pw}),
           403, "invitation_other_account", "UM056")
    st, body = call("POST", "/invitations/accept", {"token": erin_invite}, erin)
    check("and accepts logged in as herself", st == 200 and body.get("user_id") == erin_id, f"got: {st} {body}")
    st, body = call("GET", "/invoices", token=erin)
    check("Erin now lists Acme's invoices", len(body.get("invoices", [])) == 2, f"got: {st} {body}")

    # ---- suspension ------------------------------------------------------------------------------------
    expect("Bob suspends Erin in Acme: 403 permission_denied (UM070)",
           call("POST", f"/orgs/{acme}/members/{erin_id}/suspend", None, bob), 403, "permission_denied", "UM070")
    expect("Dave (Admin) suspends Ada (Root): 403 escalation_refused (UM073)",
           call("POST", f"/orgs/{acme}/members/{ada_id}/suspend", None, dave), 403, "escalation_refused", "UM073")
    expect("Ada suspends Erin in Acme: 200", call("POST", f"/orgs/{acme}/members/{erin_id}/suspend", None, ada), 200)
    st, body = call("GET", "/invoices", token=erin)
    st2, me = call("GET", "/me", token=erin)
    check("suspended, Erin sees none of Acme's invoices; her membership says suspended",
          st == 200 and body["invoices"] == [] and [o["status"] for o in me["organizations"]] == ["suspended"],
          f"got: {st} {body} {me}")
    expect("and writes none: 403 (42501)", call("POST", "/invoices", {"org_id": acme, "customer": "x", "amount": 1}, erin),
           403, "insufficient_privilege", "42501")
    expect("suspending her again: 409 suspension_state (UM051)",
           call("POST", f"/orgs/{acme}/members/{erin_id}/suspend", None, ada), 409, "suspension_state", "UM051")
    expect("Ada reactivates Erin: 200", call("POST", f"/orgs/{acme}/members/{erin_id}/reactivate", None, ada), 200)
    st, body = call("GET", "/invoices", token=erin)
    check("and Erin sees Acme's invoices again", len(body.get("invoices", [])) == 2, f"got: {st} {body}")

    # ---- impersonation -------------------------------------------------------------------------------------
    st, body = call("POST", "/impersonation", {"user_id": erin_id}, ada)
    check("Ada (Root) impersonates Erin: 200, in Acme",
          st == 200 and body == {"user_id": erin_id, "real_user_id": ada_id, "organizations": [acme]}, f"got: {st} {body}")
    st, me = call("GET", "/me", token=ada, impersonate=erin_id)
    check("with X-Impersonate, /me is Erin, really Ada", me.get("user_id") == erin_id and me.get("real_user_id") == ada_id,
          f"got: {st} {me}")
    expect("Erin (Member) cannot delete an invoice, so neither can Ada impersonating her: 403",
           call("DELETE", f"/invoices/{inv1}", None, ada, erin_id), 403, "permission_denied", None)
    expect("exporting data while impersonating: 403 impersonation_refused (UM071)",
           call("GET", "/me/export", token=ada, impersonate=erin_id), 403, "impersonation_refused", "UM071")
    st, body = call("POST", "/impersonation/end", None, ada, erin_id)
    check("ending the impersonation: Ada again", st == 200 and body == {"ended": True, "user_id": ada_id, "real_user_id": ada_id},
          f"got: {st} {body}")
    st, me = call("GET", "/me", token=ada)
    check("and the next request, without X-Impersonate, is Ada's", me.get("user_id") == ada_id == me.get("real_user_id"),
          f"got: {me}")
    expect("Ada impersonates Dave, an Admin: 403 impersonation_refused (UM071)",
           call("POST", "/impersonation", {"user_id": dave_id}, ada), 403, "impersonation_refused", "UM071")
    expect("Erin impersonates Ada: 403 permission_denied (UM070)",
           call("POST", "/impersonation", {"user_id": ada_id}, erin), 403, "permission_denied", "UM070")
    expect("Bob impersonates Erin, who is not in his organization: 403 permission_denied (UM070)",
           call("POST", "/impersonation", {"user_id": erin_id}, bob), 403, "permission_denied", "UM070")

    # ---- export ----------------------------------------------------------------------------------------------
    st, body = call("GET", "/me/export", token=ada)
    text = json.dumps(body)
    check("Ada exports her data: her profile and Acme", st == 200 and body.get("profile", {}).get("email") == ada_mail
          and f"acme-{L}" in text, f"got: {st} {text[:300]}")
    check("and nothing of Bob's or Globex's", bob_mail not in text and f"globex-{L}" not in text and "Umbrella" not in text)

    # ---- account deletion ------------------------------------------------------------------------------------------
    expect("Dave deletes his account while an invoice names him: 409 deletion_blocked (UM052)",
           call("DELETE", "/me", None, dave), 409, "deletion_blocked", "UM052")
    expect("Ada, Acme's only Root, deletes hers: 409 deletion_blocked (UM052)",
           call("DELETE", "/me", None, ada), 409, "deletion_blocked", "UM052")
    expect("Erin deletes her account: 200", call("DELETE", "/me", None, erin), 200)
    expect("her session is gone: 401 (UM067)", call("GET", "/me", token=erin), 401, "session_not_valid", "UM067")
    expect("and so is her login: 401 (UM060)", call("POST", "/login", {"email": erin_mail, "password": erin_pw}),
           401, "invalid_credentials", "UM060")
    st, body = call("GET", "/me", token=dave)
    check("Dave's account is untouched", st == 200 and body.get("user_id") == dave_id)

    # ---- concurrency: two tenants' requests share 2 server connections --------------------------------------------
    concurrency(ada, ada_id, acme, bob, bob_id, globex, dave, dave_id)


def concurrency(ada, ada_id, acme, bob, bob_id, globex, dave, dave_id):
    n = args.requests
    callers = [("ada", ada, ada_id, acme), ("bob", bob, bob_id, globex), ("dave", dave, dave_id, acme)]
    before = {org: len(call("GET", "/invoices", token=tok)[1]["invoices"]) for _, tok, _, org in callers[:2]}
    jobs = []
    for i in range(n):
        name, tok, uid, org = callers[i % 3]
        kind = "write" if i % 5 == 0 else ("me" if i % 7 == 0 else "read")
        jobs.append((i, name, tok, uid, org, kind))

    def run(job):
        i, name, tok, uid, org, kind = job
        if kind == "write":
            st, body = call("POST", "/invoices", {"org_id": org, "customer": f"burst {i} by {name}", "amount": i}, tok)
            good = st == 201 and body.get("org_id") == org and body.get("created_by") == uid
        elif kind == "me":
            st, body = call("GET", "/me", token=tok)
            good = st == 200 and body.get("user_id") == uid and [o["org_id"] for o in body["organizations"]] == [org]
        else:
            st, body = call("GET", "/invoices", token=tok)
            good = st == 200 and body.get("user_id") == uid and all(x["org_id"] == org for x in body["invoices"]) \
                and all(not x["customer"].startswith("burst") or x["customer"].endswith(("by ada", "by dave"))
                        == (org == acme) for x in body["invoices"])
        return good, (i, name, kind, st, json.dumps(body)[:300])

    # sample PostgreSQL's backends of the backend role while the burst runs
    peak = [0]
    done = threading.Event()

    def backends():
        try:
            out = subprocess.run(["psql", "-XAtq", "-d", args.psql_conninfo, "-c",
                                  "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app_backend'"],
                                 capture_output=True, text=True, timeout=10).stdout.strip()
            peak[0] = max(peak[0], int(out or 0))
        except (ValueError, subprocess.SubprocessError):
            pass

    def sample():
        while not done.is_set():
            backends()
            time.sleep(0.05)
    sampler = threading.Thread(target=sample, daemon=True)
    if args.psql_conninfo:
        sampler.start()
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=args.threads) as pool:
        results = list(pool.map(run, jobs))
    elapsed = time.monotonic() - started
    done.set()
    if args.psql_conninfo:
        sampler.join()
        backends()          # pgbouncer keeps its server connections open: they are still there
    bad = [r for good, r in results if not good]
    check(f"{n} concurrent requests of two tenants ({args.threads} at a time, {elapsed:.1f}s): every answer holds "
          "only the caller's identity and the caller's tenant's rows", not bad and len(results) == n,
          *[f"wrong: {b}" for b in bad[:5]])
    writes = {acme: sum(1 for j in jobs if j[5] == "write" and j[4] == acme),
              globex: sum(1 for j in jobs if j[5] == "write" and j[4] == globex)}
    after = {org: len(call("GET", "/invoices", token=tok)[1]["invoices"]) for _, tok, _, org in callers[:2]}
    check("afterwards each tenant has exactly its own rows and the ones its users wrote",
          after == {org: before[org] + writes[org] for org in before}, f"before {before} writes {writes} after {after}")
    if args.psql_conninfo:
        check(f"PostgreSQL saw at most 2 backends of app_backend during the burst (pgbouncer default_pool_size = 2): {peak[0]}",
              1 <= peak[0] <= 2, f"peak: {peak[0]}")


def main():
    global args
    p = argparse.ArgumentParser()
    p.add_argument("--base", required=True)
    p.add_argument("--label", required=True)
    p.add_argument("--outbox", required=True)
    p.add_argument("--secrets", required=True)
    p.add_argument("--psql-conninfo", default="")
    p.add_argument("--requests", type=int, default=300)
    p.add_argument("--threads", type=int, default=32)
    args = p.parse_args()
    finished = False
    try:
        scenario()
        finished = True
    except Exception as e:                       # a crash is a failure, with where it happened
        import traceback
        print("# " + traceback.format_exc().replace("\n", "\n# "))
    finally:
        with open(args.secrets, "a", encoding="utf-8") as f:
            for s in sorted(secrets):
                f.write(s + "\n")
    check("the scenario ran to its end", finished)
    sys.exit(0 if finished and failures == 0 else 1)


if __name__ == "__main__":
    main()
