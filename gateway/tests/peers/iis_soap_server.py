"""A state immunization registry on loopback, speaking the CDC IIS SOAP
transport (WSDL urn:cdc:iisb:2011, SOAP 1.2, document/literal) as the WSDL
defines it, for the gateway's iis_soap destination tests.

It parses every request with a real XML parser and validates it against the
WSDL's submitSingleMessage: the SOAP 1.2 envelope and Content-Type (with the
action), the body's one element in the urn:cdc:iisb:2011 namespace with
username, password, facilityID and hl7Message in that order. A request that
breaks the WSDL is answered with a SOAP Sender fault and logged as invalid.

Verdicts (the registry's HL7 ACK in <return>, or the WSDL's faults):
- wrong username/password/facilityID: SecurityFault (HTTP 500);
- an hl7Message over MAX_BYTES: MessageTooLargeFault (HTTP 500);
- a VXU whose RXA-5 holds "BADVAX": ACK AE with the error text;
- otherwise ACK AA.

Usage: iis_soap_server.py LOG USERNAME PASSWORD FACILITY
Prints "listening PORT" once ready; appends one JSON line per request to LOG.
"""

import json
import sys
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape

SOAP = "http://www.w3.org/2003/05/soap-envelope"
IIS = "urn:cdc:iisb:2011"
MAX_BYTES = 200_000
LOG, USER, PASSWORD, FACILITY = sys.argv[1:5]


def envelope(body):
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="{SOAP}">'
        f"<soap:Body>{body}</soap:Body></soap:Envelope>"
    )


def fault(name, code, reason, sender=True):
    value = "soap:Sender" if sender else "soap:Receiver"
    return envelope(
        f"<soap:Fault><soap:Code><soap:Value>{value}</soap:Value></soap:Code>"
        f'<soap:Reason><soap:Text xml:lang="en">{escape(reason)}</soap:Text></soap:Reason>'
        f'<soap:Detail><iis:{name} xmlns:iis="{IIS}"><iis:Code>{code}</iis:Code>'
        f"<iis:Reason>{escape(reason)}</iis:Reason><iis:Detail>{escape(reason)}</iis:Detail>"
        f"</iis:{name}></soap:Detail></soap:Fault>"
    )


def ack(hl7, code, text=""):
    segs = [s for s in hl7.replace("\n", "\r").split("\r") if s]
    msh = segs[0].split("|")
    control = msh[9] if len(msh) > 9 else ""
    err = f"\rERR|||102^Data type error^HL70357|E||||{text}" if code != "AA" else ""
    return (
        f"MSH|^~\\&|{msh[4]}|{msh[5]}|{msh[2]}|{msh[3]}|20240101120000||ACK^V04^ACK|R{control}|P|2.5.1\r"
        f"MSA|{code}|{control}|{text}{err}\r"
    )


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, xml, record):
        with open(LOG, "a") as f:
            f.write(json.dumps(record) + "\n")
        body = xml.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/soap+xml; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def invalid(self, why):
        self.answer(500, fault("UnknownFault", "0", f"not a valid request: {why}"), {"invalid": why})

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        ctype = self.headers.get("Content-Type", "")
        if not ctype.startswith("application/soap+xml") or f'action="{IIS}:submitSingleMessage"' not in ctype:
            return self.invalid(f"Content-Type {ctype!r}")
        try:
            root = ET.fromstring(raw)
        except ET.ParseError as e:
            return self.invalid(f"XML: {e}")
        if root.tag != f"{{{SOAP}}}Envelope":
            return self.invalid(f"root {root.tag}")
        body = root.find(f"{{{SOAP}}}Body")
        if body is None or len(body) != 1:
            return self.invalid("Body must hold exactly one element")
        op = body[0]
        if op.tag != f"{{{IIS}}}submitSingleMessage":
            return self.answer(
                500,
                fault("UnsupportedOperationFault", "1", f"operation {op.tag} is not supported"),
                {"unsupported": op.tag},
            )
        names = [c.tag for c in op]
        want = [f"{{{IIS}}}{n}" for n in ("username", "password", "facilityID", "hl7Message")]
        if names != want:
            return self.invalid(f"children {names}")
        user, password, facility, hl7 = (c.text or "" for c in op)
        if (user, password, facility) != (USER, PASSWORD, FACILITY):
            return self.answer(
                500,
                fault("SecurityFault", "10", "Invalid username, password or facilityID"),
                {"security": user},
            )
        if len(hl7.encode()) > MAX_BYTES:
            return self.answer(
                500,
                fault("MessageTooLargeFault", "30", f"message over {MAX_BYTES} bytes"),
                {"too_large": len(hl7)},
            )
        bad = any(s.startswith("RXA|") and "BADVAX" in s for s in hl7.split("\r"))
        code, text = ("AE", "RXA-5 vaccine code BADVAX is not in the CVX table") if bad else ("AA", "")
        reply = envelope(
            f'<ns2:submitSingleMessageResponse xmlns:ns2="{IIS}">'
            f"<ns2:return>{escape(ack(hl7, code, text), {chr(13): '&#13;'})}</ns2:return>"
            f"</ns2:submitSingleMessageResponse>"
        )
        self.answer(200, reply, {"hl7": hl7, "code": code})


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(f"listening {server.server_address[1]}", flush=True)
server.serve_forever()
