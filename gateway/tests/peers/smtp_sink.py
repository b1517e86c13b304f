"""A real SMTP server (aiosmtpd) on loopback for the alert e-mail tests.

    smtp_sink.py MODE PORT CERT KEY USER PASSWORD LOG

MODE is "starttls" (plain, STARTTLS required before anything) or "tls"
(implicit TLS). AUTH is required, over TLS only, with USER/PASSWORD. Each
mail taken is appended to LOG as one JSON line: envelope, decoded subject
and body, and whether it came over TLS. Prints "listening PORT" once
ready, then serves until killed.
"""

import email
import email.policy
import json
import ssl
import sys
import time
import warnings

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult


def main():
    # aiosmtpd warns of AUTH without STARTTLS; in "tls" mode all of it is TLS.
    warnings.simplefilter("ignore", UserWarning)
    mode, port, cert, key, user, password, log = sys.argv[1:8]
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            auth_data.login.decode() == user
            and auth_data.password.decode() == password
        )
        # handled=False: aiosmtpd itself answers 535 to a bad login.
        return AuthResult(success=ok, handled=False)

    class Sink:
        async def handle_DATA(self, server, session, envelope):
            msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
            record = {
                "mail_from": envelope.mail_from,
                "rcpt_tos": envelope.rcpt_tos,
                "to": str(msg["to"]),
                "subject": str(msg["subject"]),
                "auto_submitted": str(msg["auto-submitted"]),
                "body": msg.get_content(),
                "raw": envelope.content.decode("utf-8", "replace"),
                "tls": server.transport.get_extra_info("ssl_object") is not None,
                "authenticated": bool(session.authenticated),
            }
            with open(log, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
            return "250 Message accepted for delivery"

    params = dict(authenticator=authenticator, auth_required=True)
    if mode == "starttls":
        params.update(tls_context=ctx, require_starttls=True, auth_require_tls=True)
    else:
        # Implicit TLS: aiosmtpd's auth_require_tls only knows STARTTLS,
        # and here every byte is over TLS anyway.
        params.update(ssl_context=ctx, auth_require_tls=False)
    controller = Controller(Sink(), hostname="127.0.0.1", port=int(port), **params)
    controller.start()
    print(f"listening {port}", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
