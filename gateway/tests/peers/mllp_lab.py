#!/usr/bin/env python3
"""A reference-lab MLLP listener built on the `hl7` package's asyncio MLLP
server (hl7.mllp.start_hl7_server), for the gateway's mllp destination test.

Each message is parsed by `hl7`, logged to LOG as "control_id<TAB>answer"
(and its text, segments on lines, appended to LOG.msgs),
and answered with `hl7`'s own create_ack, scripted by MSH-10:
  contains "NAK-AE"       -> AE with MSA-3 "PID-3 unknown to the lab"
  contains "AR-ONCE"      -> AR the first time, AA after
  contains "SILENT-ONCE"  -> no answer the first time (the gateway times out), AA after
  anything else           -> AA
Prints "listening PORT" once ready. Runs until killed (the test bounds it).
"""
import asyncio
import sys

import hl7
import hl7.mllp

seen = {}


async def main():
    log_path = sys.argv[1]
    log = open(log_path, "a", buffering=1)
    msgs = open(log_path + ".msgs", "a", buffering=1)

    async def handle(reader, writer):
        try:
            while not writer.is_closing():
                msg = await reader.readmessage()
                cid = str(msg.segment("MSH")[10])
                msgs.write(str(msg).replace("\r", "\n") + "\n")
                seen[cid] = seen.get(cid, 0) + 1
                first = seen[cid] == 1
                if "NAK-AE" in cid:
                    code = "AE"
                elif "AR-ONCE" in cid and first:
                    code = "AR"
                elif "SILENT-ONCE" in cid and first:
                    log.write(f"{cid}\tsilent\n")
                    continue
                else:
                    code = "AA"
                ack = msg.create_ack(code, message_id="LAB" + cid)
                if code == "AE":
                    # MSA-3 (text message), re-parsed so hl7 frames it as a Message.
                    ack = hl7.parse(str(ack).rstrip("\r") + "|PID-3 unknown to the lab")
                log.write(f"{cid}\t{code}\n")
                writer.writemessage(ack)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await hl7.mllp.start_hl7_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print(f"listening {port}", flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
