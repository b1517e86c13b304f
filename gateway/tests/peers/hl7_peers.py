#!/usr/bin/env python3
"""Real third-party HL7 peers against a running gateway.

1. The `hl7` package's MLLPClient sends every corpus file and checks each ACK
   (MSA-1 = AA, MSA-2 = the message's MSH-10) with hl7's own parser.
2. The `hl7` package's `mllp_send` command sends a file in --loose mode.
3. `hl7apy` builds ADT^A01 messages in v2.3, 2.4, 2.5 and 2.5.1, sends them,
   and parses every ACK and NAK with STRICT validation for that version.

Prints one line per check and a closing "N passed, M failed" line; exits 1 on any failure.
"""
import argparse
import pathlib
import socket
import subprocess
import sys

import hl7
import hl7.client
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.core import Message
from hl7apy.parser import parse_message

SB, EB, CR = b"\x0b", b"\x1c", b"\x0d"
results = {"passed": 0, "failed": 0}


def check(name, ok, detail=""):
    results["passed" if ok else "failed"] += 1
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else ": " + detail))


def unframe(data):
    return data.strip(SB).rstrip(CR).rstrip(EB)


def recv_frame(sock):
    buf = b""
    while not buf.endswith(EB + CR):
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed before a full ACK")
        buf += chunk
    return unframe(buf)


def python_hl7_corpus(port, corpus):
    files = sorted(corpus.glob("*.hl7"))
    with hl7.client.MLLPClient("127.0.0.1", port) as client:
        for f in files:
            raw = f.read_bytes()
            text = raw.decode("utf-8", errors="replace").replace("\r\n", "\r").replace("\n", "\r")
            try:
                msg = hl7.parse(text)
                control_id = str(msg.segment("MSH")[10])
                payload = str(msg)
                how = "hl7.Message"
            except Exception:
                # python-hl7 rejects files that start with a UTF-8 BOM; the gateway must not.
                payload = raw
                first = raw.lstrip(b"\xef\xbb\xbf").split(b"\r")[0].split(b"\n")[0].decode("utf-8", "replace")
                control_id = first.split(first[3])[9]
                how = "raw bytes"
            first = raw.lstrip(b"\xef\xbb\xbf").split(b"\r")[0].split(b"\n")[0].decode("utf-8", "replace")
            fields = first.split(first[3])
            accept_ack = fields[14] if len(fields) > 14 else ""
            if accept_ack in ("NE", "ER"):
                # Enhanced mode, MSH-15=NE or ER: no commit ACK on success.
                client.socket.sendall(SB + (payload if isinstance(payload, bytes) else payload.encode()) + EB + CR)
                client.socket.settimeout(1.0)
                try:
                    extra = client.socket.recv(4096)
                except socket.timeout:
                    extra = b""
                client.socket.settimeout(None)
                check(f"hl7 MLLPClient {f.name} (MSH-15={accept_ack}: no ACK)", extra == b"", f"got {extra!r}")
                continue
            reply = client.send_message(payload)
            while not reply.endswith(EB + CR):
                reply += client.socket.recv(4096)
            ack = hl7.parse(unframe(reply).decode("utf-8"))
            msa = ack.segment("MSA")
            want = "CA" if accept_ack in ("AL", "ER", "SU") or (len(fields) > 15 and fields[15]) else "AA"
            check(f"hl7 MLLPClient {f.name} ({how})", str(msa[1]) == want and str(msa[2]) == control_id,
                  f"want {want}, MSA={msa}")
    return len(files)


def mllp_send_cli(port, corpus, venv_bin):
    f = corpus / "ADT-A01-01.hl7"
    out = subprocess.run([str(venv_bin / "mllp_send"), "--port", str(port), "--loose", "--file", str(f), "127.0.0.1"],
                         capture_output=True, timeout=60)
    text = out.stdout.decode("utf-8", "replace")
    check("hl7 mllp_send --loose ADT-A01-01.hl7", out.returncode == 0 and "MSA|AA|" in text.replace("\r", "\n"),
          f"rc={out.returncode} out={text!r} err={out.stderr!r}")


def hl7apy_message(version, control_id):
    m = Message("ADT_A01", version=version, validation_level=VALIDATION_LEVEL.TOLERANT)
    m.msh.msh_3 = "ECW"
    m.msh.msh_4 = "CLINIC"
    m.msh.msh_5 = "GW"
    m.msh.msh_6 = "CLOUD"
    m.msh.msh_7 = "20240102030405"
    m.msh.msh_9 = "ADT^A01^ADT_A01" if version >= "2.4" else "ADT^A01"
    m.msh.msh_10 = control_id
    m.msh.msh_11 = "P"
    m.msh.msh_12 = version
    m.evn.evn_2 = "20240102030405"
    m.pid.pid_3 = "12345^^^CLINIC^MR"
    m.pid.pid_5 = "DOE^JANE"
    m.pv1.pv1_2 = "O"
    return m.to_er7().encode("utf-8")


def exchange(port, payload):
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(SB + payload + EB + CR)
        return recv_frame(s)


def level_for(version):
    # hl7apy's v2.3 model has no MSH-9.3, so it cannot resolve any v2.3 ACK
    # structure in STRICT mode; v2.3 is parsed TOLERANT and checked field by field.
    return VALIDATION_LEVEL.TOLERANT if version == "2.3" else VALIDATION_LEVEL.STRICT


def hl7apy_acks(port):
    for version in ["2.3", "2.4", "2.5", "2.5.1"]:
        mode = "strictly" if version != "2.3" else "(tolerant)"
        cid = "APY" + version.replace(".", "")
        ack = exchange(port, hl7apy_message(version, cid)).decode("utf-8")
        try:
            parsed = parse_message(ack, validation_level=level_for(version))
            ok = (parsed.msa.msa_1.value == "AA" and parsed.msa.msa_2.value == cid
                  and parsed.msh.msh_12.value.split("^")[0] == version)
            check(f"hl7apy v{version} ACK validates {mode}", ok, ack)
        except Exception as e:  # validation error names what is wrong
            check(f"hl7apy v{version} ACK validates {mode}", False, f"{e}: {ack!r}")

        # A message missing MSH-9 gets AR with an ERR segment valid for its version.
        broken = f"MSH|^~\\&|ECW|CLINIC|GW|CLOUD|20240102030405||||P|{version}\rPID|1||1^^^C^MR\r"
        nak = exchange(port, broken.encode()).decode("utf-8")
        try:
            parsed = parse_message(nak, validation_level=level_for(version))
            errs = [c for c in parsed.children if c.name == "ERR"]
            ok = parsed.msa.msa_1.value == "AR" and len(errs) >= 1 and "101" in errs[0].to_er7()
            check(f"hl7apy v{version} NAK (AR + ERR) validates {mode}", ok, nak)
        except Exception as e:
            check(f"hl7apy v{version} NAK (AR + ERR) validates {mode}", False, f"{e}: {nak!r}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--corpus", type=pathlib.Path, required=True)
    args = ap.parse_args()
    n = python_hl7_corpus(args.port, args.corpus)
    check(f"corpus had files ({n})", n >= 100)
    mllp_send_cli(args.port, args.corpus, pathlib.Path(sys.executable).parent)
    hl7apy_acks(args.port)
    print(f"peers: {results['passed']} passed, {results['failed']} failed")
    sys.exit(1 if results["failed"] else 0)


if __name__ == "__main__":
    main()
