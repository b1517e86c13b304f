#!/usr/bin/env python3
"""Validate ORU^R01 v2.5.1 messages with hl7apy (STRICT).

Usage: validate_oru.py FILE...  (segments separated by CR)

Each file is parsed with hl7apy's strict validation for its version, with
groups found (the ORU_R01 structure), then validated; a few fields eCW
relies on are checked too (PID-3, OBR-3, OBX-2/3/11). Prints one line per
file and "N passed, M failed"; exits 1 on any failure.
"""
import sys

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

from report import report


def check(path):
    text = open(path, "rb").read().decode("utf-8").replace("\r\n", "\r").replace("\n", "\r")
    msg = parse_message(text, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
    if not msg.validate():
        raise ValueError("hl7apy validate() returned False")
    if msg.msh.msh_9.to_er7() != "ORU^R01^ORU_R01" or msg.msh.msh_12.to_er7() != "2.5.1":
        raise ValueError("not an ORU^R01 v2.5.1")
    result = msg.oru_r01_patient_result
    if not result.oru_r01_patient.pid.pid_3.to_er7():
        raise ValueError("PID-3 is empty")
    count = 0
    for order in result.oru_r01_order_observation:
        count += 1
        for obs in [c for c in order.children if c.name == "ORU_R01_OBSERVATION"]:
            obx = obs.obx
            if not obx.obx_3.to_er7() or not obx.obx_11.to_er7():
                raise ValueError("OBX-3 or OBX-11 empty")
    if count == 0:
        raise ValueError("no ORDER_OBSERVATION group")


def main(paths):
    return report(check, paths)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
