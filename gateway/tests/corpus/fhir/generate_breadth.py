#!/usr/bin/env python3
"""Writes the synthetic messages of issue 14's breadth work (new families,
SIU timing styles, merges, cancels, exact decimals) beside generate.py's.

Every name, number and date here is invented (no real PHI). Re-run after a
change: `python3 gateway/tests/corpus/fhir/generate_breadth.py`. CR segment
terminators, UTF-8.
"""
import pathlib

OUT = pathlib.Path(__file__).parent
files = {}


def msh(ctrl, mtype, ts="20240312093000-0500", app="ECW"):
    return f"MSH|^~\\&|{app}|CLINIC01|GATEWAY|CLOUD|{ts}||{mtype}|{ctrl}|P|2.5.1|||AL|NE||UNICODE UTF-8"


def pid(mrn="MRN2001", family="Mergeson", given="Old", dob="19700101", sex="F"):
    return (f"PID|1||{mrn}^^^ECW^MR||{family}^{given}^^^^^L||{dob}|{sex}|||"
            f"1 Sample Rd^^Springfield^IL^62701^USA^H||^PRN^PH^^1^555^0101010")


def pv1(visit="V9001", cls="I", admit="20240312080000-0500", discharge="", loc="WARD^101^A^MAINHOSP"):
    return (f"PV1|1|{cls}|{loc}|E|||1234567890^Doctor^Primary^^^Dr^MD^^NPI&2.16.840.1.113883.4.6&ISO^^^^NPI|||MED"
            f"||||1|||3333^Admitter^Adam^^^Dr||{visit}^^^ECW^VN|||||||||||||||||||||||||{admit}|{discharge}")


def add(name, segments):
    files[name] = "\r".join(segments) + "\r"


# ------------------------------------------------------------ SIU timing
# One style each: SCH-11 only (as eCW sends it), TQ1 only, AIS only.
SCH = "SCH|APT800^ECW|APT800F^ECWSCHED||||NEW^New^L|FU^Follow-up visit^L|ROUTINE^Routine^HL70277|20|MIN|{tq}"
add("siu_s12_sch11_only.hl7", [msh("SIUT1", "SIU^S12^SIU_S12"),
    SCH.format(tq="^^20^20260710093000-0500^20260710095000-0500"), pid(),
    "AIS|1|A|99213^Office visit, established^C4", "AIL|1|A|CLINIC^EXAM2^^MAINCLINIC"])
add("siu_s12_tq1_only.hl7", [msh("SIUT2", "SIU^S12^SIU_S12"), SCH.format(tq=""),
    "TQ1|1||||||20260711140000-0500|20260711143000-0500", pid(),
    "AIS|1|A|99213^Office visit, established^C4"])
add("siu_s12_ais_only.hl7", [msh("SIUT3", "SIU^S12^SIU_S12"),
    "SCH|APT802^ECW|APT802F^ECWSCHED||||NEW^New^L|FU^Follow-up visit^L|ROUTINE^Routine^HL70277",
    pid(), "AIS|1|A|99213^Office visit, established^C4|20260712081500-0500|||45|MIN"])
# eCW's own shape without offsets: booked only with a configured default offset.
add("siu_s12_sch11_no_offset.hl7", [msh("SIUT4", "SIU^S12^SIU_S12"),
    SCH.format(tq="^^20^20260710093000^20260710095000"), pid()])
for trig, status in [("S13", "Booked"), ("S16", "Dc"), ("S17", "Deleted"), ("S26", "Noshow")]:
    add(f"siu_{trig.lower()}_1.hl7", [msh(f"SIU{trig}", f"SIU^{trig}^SIU_S12"),
        f"SCH|APT800^ECW|APT800F^ECWSCHED||||NOSHOW^Did not come^L|FU^Follow-up visit^L|ROUTINE^Routine^HL70277|20|MIN|"
        f"^^20^20260710100000-0500^20260710102000-0500||||||||||||||{status}",
        pid(), "AIP|1|A|1234567890^Doctor^Primary^^^^^^NPI&2.16.840.1.113883.4.6&ISO^^^^NPI|D^Doctor^L"])

for name, text in files.items():
    (OUT / name).write_bytes(text.encode("utf-8"))
print(f"wrote {len(files)} files")
