#!/usr/bin/env python3
"""Writes the synthetic messages of issue 14's breadth work (new families,
SIU timing styles, merges, cancels, exact decimals) beside generate.py's.

Every name, number and date here is invented (no real PHI). Re-run after a
change: `python3 gateway/fhir-map/tests/corpus/generate_breadth.py`. CR segment
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

# ------------------------------------------------------------ ADT visit life
# One inpatient visit V9001 of MRN2001: admit, cancel, admit again, transfer
# and its cancel, discharge and its cancel.
def adt(ctrl, trig, *segs):
    return [msh(ctrl, f"ADT^{trig}^ADT_A01"), f"EVN|{trig}|20240312093000-0500", pid(), *segs]


add("adt_a01_visit.hl7", adt("V1A01", "A01", pv1()))
add("adt_a11_visit.hl7", adt("V1A11", "A11", pv1()))
add("adt_a01_visit_again.hl7", adt("V1A01B", "A01", pv1()))
# The transfer: PV1-3 the new bed, PV1-6 the prior one.
add("adt_a02_visit.hl7", adt("V1A02", "A02", pv1(loc="WARD^202^B^MAINHOSP").replace(
    "^MAINHOSP|E|||", "^MAINHOSP|E||WARD^101^A^MAINHOSP|", 1)))
add("adt_a12_visit.hl7", adt("V1A12", "A12", pv1()))
add("adt_a03_visit.hl7", adt("V1A03", "A03", pv1(discharge="20240315110000-0500")))
add("adt_a13_visit.hl7", adt("V1A13", "A13", pv1()))
add("adt_a05_visit.hl7", adt("V2A05", "A05", pv1(visit="V9002", cls="P", admit="")))

# ------------------------------------------------------------ merges
# MRN2001 (seen above) is merged into MRN2002; then a late result for the
# old MRN and an update of the survivor.
add("adt_a40_merge.hl7", [msh("MRG1", "ADT^A40^ADT_A39"), "EVN|A40|20240316100000-0500",
    pid(mrn="MRN2002", given="New"), "MRG|MRN2001^^^ECW^MR~ALT77^^^OTHER^PI||||||Mergeson^Old^^^^^L"])
add("adt_a08_after_merge.hl7", [msh("MRG2", "ADT^A08^ADT_A01"), "EVN|A08|20240317090000-0500",
    pid(mrn="MRN2002", given="New"), pv1(visit="V9003", admit="20240317080000-0500")])
add("oru_r01_after_merge.hl7", [msh("MRG3", "ORU^R01^ORU_R01", app="REFLAB"), pid(),
    "ORC|RE|ORD2001^ECW|FIL2001^LAB||CM",
    "OBR|1|ORD2001^ECW|FIL2001^LAB|2345-7^Glucose^LN|||20240315080000-0500|||||||||||||||20240318090000-0500||CH|F",
    "OBX|1|NM|2345-7^Glucose^LN||5.4|mmol/L^mmol/L^UCUM|3.9-5.5|N|||F"])

# ------------------------------------------------------------ exact decimals
# Values f64 cannot carry as sent, the normalisations, and an exponent.
add("oru_r01_decimals.hl7", [msh("DEC1", "ORU^R01^ORU_R01", app="REFLAB"), pid(mrn="MRN2101", family="Decimal", given="Dee"),
    "ORC|RE|ORD2101^ECW|FIL2101^LAB||CM",
    "OBR|1|ORD2101^ECW|FIL2101^LAB|24331-1^Lipid panel^LN|||20240311080000-0500|||||||||||||||20240312090000-0500||CH|F",
    "OBX|1|NM|2093-3^Cholesterol^LN||5.50|mmol/L^mmol/L^UCUM|3.50-5.10|H|||F",
    "OBX|2|NM|2571-8^Triglyceride^LN||0.1|mmol/L^mmol/L^UCUM|.5-1.70||||F",
    "OBX|3|NM|2085-9^HDL^LN||1234567890.123456789|mmol/L^mmol/L^UCUM|>=+001.00||||F",
    "OBX|4|NM|13457-7^LDL^LN||1e3|mmol/L^mmol/L^UCUM|<1e3||||F",
    "OBX|5|NM|9830-1^Chol/HDL^LN||+007.10||<=.50||||F",
    "OBX|6|SN|5196-1^HBsAg^LN||<^0.50|IU/mL^IU/mL^UCUM|||||F",
    "OBX|7|SN|2514-8^Ketones^LN||^1.0^-^2.50|mg/dL^mg/dL^UCUM|||||F",
    "OBX|8|SN|5130-0^Titer^LN||^1^:^128.0||||||F"])

# ------------------------------------------------------------ orders, results, pharmacy
DOC = "1234567890^Doctor^Primary^^^Dr^MD^^NPI&2.16.840.1.113883.4.6&ISO^^^^NPI"
add("oml_o21_1.hl7", [msh("OML1", "OML^O21^OML_O21"), pid(mrn="MRN2201", family="Order", given="Olive"),
    "PV1|1|O|CLINIC^EXAM1^^MAINCLINIC",
    f"ORC|NW|ORD2201^ECW||||||||||{DOC}",
    "OBR|1|ORD2201^ECW||2345-7^Glucose^LN|R||20240312080000-0500",
    "SPM|1|SP2201^ECW||119297000^Blood specimen^SCT|||||||||||||20240312080000-0500"])
add("omg_o19_1.hl7", [msh("OMG1", "OMG^O19^OMG_O19"), pid(mrn="MRN2202", family="Order", given="Otto"),
    f"ORC|NW|ORD2202^ECW||||||||||{DOC}",
    "OBR|1|ORD2202^ECW||24627-2^Chest CT^LN|R",
    "NTE|1||Rule out nodule"])
add("oul_r22_1.hl7", [msh("OUL1", "OUL^R22^OUL_R22", app="REFLAB"), pid(mrn="MRN2203", family="Result", given="Rae"),
    "SPM|1|SP2203^LAB||119297000^Blood specimen^SCT|||||||||||||20240311080000-0500",
    "OBR|1|ORD2203^ECW|FIL2203^LAB|2345-7^Glucose^LN|||20240311080000-0500|||||||||||||||20240312090000-0500||CH|F",
    "ORC|RE|ORD2203^ECW|FIL2203^LAB||CM",
    "OBX|1|NM|2345-7^Glucose^LN||5.40|mmol/L^mmol/L^UCUM|3.9-5.5|N|||F"])
add("rde_o11_1.hl7", [msh("RDE1", "RDE^O11^RDE_O11"), pid(mrn="MRN2204", family="Pharma", given="Pia"),
    f"ORC|NW|RX2204^ECW|||||||20240312091500-0500|||{DOC}",
    "TQ1|1||BID&Twice a day&HL70335|||||20240312|20240322",
    "RXE||308191^amoxicillin 500 MG Oral Capsule^RXNORM|500||mg^mg^UCUM|CAP^Capsule^HL70292|Take with food|||20|capsule^capsule^UCUM|0|||RX-2204",
    "RXR|PO^Oral^HL70162"])
add("rds_o13_1.hl7", [msh("RDS1", "RDS^O13^RDS_O13", app="PHARMACY"), pid(mrn="MRN2204", family="Pharma", given="Pia"),
    f"ORC|RE|RX2204^ECW|||||||20240312091500-0500|||{DOC}",
    "RXE||308191^amoxicillin 500 MG Oral Capsule^RXNORM|500||mg^mg^UCUM|CAP^Capsule^HL70292|Take with food|||20|capsule^capsule^UCUM|0|||RX-2204",
    "RXD|1|308191^amoxicillin 500 MG Oral Capsule^RXNORM|20240312120000-0500|20|capsule^capsule^UCUM||RX-2204||Take with food"])
add("ref_i12_1.hl7", [msh("REF1", "REF^I12^REF_I12"),
    "RF1|A^Accepted^HL70283|R^Routine^HL70280|RHEU^Rheumatology^L|||REF2205^ECW|20240312|20240612|20240312|JOINT^Joint pain^L",
    "PRD|RP^Referring Provider^HL70286|Doctor^Primary^^^Dr||||||1234567890^NPI",
    "PRD|RT^Referred to Provider^HL70286|Special^Sam^^^Dr||||||9876543210^NPI",
    pid(mrn="MRN2205", family="Referral", given="Rita"),
    "DG1|1|I10|M25.50^Pain in unspecified joint^I10||20240301|W"])
add("bar_p01_1.hl7", [msh("BAR1", "BAR^P01^BAR_P01"), "EVN|P01|20240312093000-0500",
    pid(mrn="MRN2206", family="Billing", given="Bo") + "|||||ACCT2206^^^ECW^AN",  # PID-18 account
    pv1(visit="V9206", cls="O"),
    "DG1|1|I10|E11.9^Type 2 diabetes mellitus without complications^I10||20240312|F",
    "PR1|1|C4|99213^Office visit^C4||20240312090000-0500"])
add("ppr_pc1_1.hl7", [msh("PPR1", "PPR^PC1^PPR_PC1"), pid(mrn="MRN2207", family="Problem", given="Pat"),
    "PRB|AD|20240312|I10^Essential hypertension^I10|PRB2207^ECW|||20240312||||||active|||20240101"])

for name, text in files.items():
    (OUT / name).write_bytes(text.encode("utf-8"))
print(f"wrote {len(files)} files")
