#!/usr/bin/env python3
"""Writes the synthetic HL7 v2 corpus for the fhir transform tests.

Every name, number and date here is invented (no real PHI). Re-run after a
change: `python3 gateway/fhir-map/tests/corpus/generate.py`. Files are written
with CR segment terminators, UTF-8 unless MSH-18 says 8859/1.
"""
import pathlib

OUT = pathlib.Path(__file__).parent

PATIENTS = [
    # (mrn, authority, family, given, dob, sex, race, ethnicity)
    ("MRN1001", "ECW", "Testperson", "Alpha", "19800115", "F", "2106-3^White^CDCREC", "N^Not Hispanic or Latino^HL70189"),
    ("MRN1002", "ECW", "Müller", "Zoë", "19750302", "F", "2028-9^Asian^CDCREC", "2186-5^Not Hispanic or Latino^CDCREC"),
    ("MRN1003", "ECW", "Núñez", "José", "19911224", "M", "2054-5^Black or African American^CDCREC", "H^Hispanic or Latino^HL70189"),
    ("MRN1004", "ECW&2.16.840.1.113883.3.999.1&ISO", "Øverby", "Åse", "20010609", "F", "2106-3^White^CDCREC~1002-5^American Indian or Alaska Native^CDCREC", ""),
    ("MRN1005", "ECW", "Nguyễn", "Thị", "19680830", "F", "2028-9^Asian^CDCREC", "N^Not Hispanic^HL70189"),
    ("MRN1006", "ECW", "O'Sample", "Bryn", "2015", "U", "", ""),
    ("MRN1007", "ECW", "D\\T\\Example", "Kai", "199002", "O", "2131-1^Other Race^CDCREC", ""),
    ("MRN1008", "ECW", "Fictus", "Quinn", "19590101", "M", "2076-8^Native Hawaiian or Other Pacific Islander^CDCREC", "U^Unknown^HL70189"),
]

files = {}


def msh(app, ctrl, mtype, version="2.5.1", ts="20240312093000-0500", charset="UNICODE UTF-8"):
    extra = f"|||AL|NE||{charset}" if version != "2.3" else ""
    return f"MSH|^~\\&|{app}|CLINIC01|GATEWAY|CLOUD|{ts}||{mtype}|{ctrl}|P|{version}{extra}"


def pid(p, extra_ids="", phone="^PRN^PH^^1^555^0100001", lang="eng^English^ISO639", marital="M"):
    mrn, auth, fam, giv, dob, sex, race, eth = p
    ids = f"{mrn}^^^{auth}^MR" + (f"~{extra_ids}" if extra_ids else "")
    return (f"PID|1||{ids}||{fam}^{giv}^Q^^^^L||{dob}|{sex}||{race}|"
            f"100 Example Ave^Unit 2^Springfield^IL^62701^USA^H||{phone}|^WPN^PH^^1^555^0100099|{lang}|{marital}||||||{eth}")


def pv1(visit, cls="O", admit="20240312090000-0500", discharge="", loc="CLINIC^EXAM1^^MAINCLINIC"):
    return (f"PV1|1|{cls}|{loc}|R|||1234567890^Doctor^Primary^A^^Dr^MD^^NPI&2.16.840.1.113883.4.6&ISO^^^^NPI|"
            f"2222^Referrer^Rita^^^Dr||MED||||1|||3333^Admitter^Adam^^^Dr||{visit}^^^ECW^VN|||||||||||||||||||||||||{admit}|{discharge}")


def add(name, segments):
    files[name] = "\r".join(segments) + "\r"


# ---------------------------------------------------------------- ADT
for i, trig in enumerate(["A01", "A04", "A03", "A08", "A31"]):
    for j, p in enumerate(PATIENTS[:3]):
        ctrl = f"ADT{trig}{j}"
        version = "2.3" if j == 2 else "2.5.1"
        structure = "" if version == "2.3" else f"^ADT_{'A01' if trig in ('A01','A04','A08') else trig}"
        segs = [msh("ECW", ctrl, f"ADT^{trig}{structure}", version), f"EVN|{trig}|20240312093000-0500"]
        segs.append(pid(p))
        if trig in ("A01", "A08"):
            segs.append("PD1|||Main Clinic^^ORG77|1234567890^Doctor^Primary^A^^Dr^MD^^NPI&2.16.840.1.113883.4.6&ISO^^^^NPI")
        if trig != "A31":
            dis = "20240314110000-0500" if trig == "A03" else ""
            cls = "I" if trig in ("A01", "A03") else "O"
            segs.append(pv1(f"V{1000 + j}", cls, discharge=dis))
            segs.append("PV2|||R07.9^Chest pain, unspecified^I10")
        segs.append(f"NK1|1|Testrelative^Sam|SPO^Spouse^HL70063|1 Other Rd^^Springfield^IL^62702^USA|^PRN^PH^^1^555^0100123")
        if trig in ("A01", "A04", "A08"):
            segs.append("AL1|1|DA|70618^Penicillin^RXNORM|SV|Hives~Wheezing|20200101")
            segs.append("AL1|2|FA|LOCALPEANUT^Peanut^LOCAL-ALLERGY|MO|Rash")
            segs.append("DG1|1|I10|E11.9^Type 2 diabetes mellitus without complications^I10|Diabetes|20240312|F")
            segs.append("IN1|1|GOLD^Gold Plan|INS01^^^PAYERS|Example Health Plan|PO Box 1^^Springfield^IL^62700||^^PH^^1^555^0100777|GRP42|Example Employer|||20240101|20241231||||SEL^Self|||||||||||||||||||POL-{}".format(1000 + i * 10 + j))
            segs.append("IN2||123-45-6789")
        segs.append("ZPI|1|custom eCW data|should be ignored")
        add(f"adt_{trig.lower()}_{j + 1}.hl7", segs)

# A04 then A08 for one patient (idempotency test).
p = PATIENTS[3]
add("adt_a04_same_patient.hl7", [msh("ECW", "SAME1", "ADT^A04^ADT_A01"), "EVN|A04|20240301080000-0500", pid(p), pv1("V7000")])
add("adt_a08_same_patient.hl7", [msh("ECW", "SAME2", "ADT^A08^ADT_A01"), "EVN|A08|20240302080000-0500",
                                 pid(p, phone="^PRN^PH^^1^555^0100002~^NET^Internet^ase@example.invalid", marital="S"), pv1("V7000")])
# Empty and missing fields, explicit nulls, Latin-1 charset, escapes.
add("adt_a04_sparse.hl7", [msh("ECW", "SPARSE1", "ADT^A04^ADT_A01", "2.3"), "EVN|A04", "PID|1||MRN2001||Sparse", "PV1|1"])
add("adt_a08_nulls.hl7", [msh("ECW", "NULLS1", "ADT^A08^ADT_A01"), "EVN|A08|20240302", 'PID|1||MRN2002^^^ECW^MR||Nullwell^Pat||""|F|||""||""', "PV1|1|O|||||||||||||||||V2002"])
add("adt_a01_escapes.hl7", [msh("ECW", "ESC1", "ADT^A01^ADT_A01"), "EVN|A01|20240301",
                            "PID|1||MRN\\F\\2003^^^ECW^MR~SSN9^^^SSA^SS||Smith\\T\\Jones^Ann\\S\\Marie^^^^^L~Nick^Annie^^^^^N||19700101|F",
                            "PV1|1|E|ER^BAY\\E\\1^^MAINCLINIC|||||||||||||||||V2003|||||||||||||||||||||||||20240301120000-0500",
                            "DG1|1||R51^Headache \\X2F\\ migraine^I10|||W"])
files["adt_a08_latin1.hl7"] = None  # written below as ISO-8859-1

# ---------------------------------------------------------------- ORU
def obx_nm(n, code, name, value, units, rng, flag, status="F", sub=""):
    return f"OBX|{n}|NM|{code}^{name}^LN|{sub}|{value}|{units}^{units}^UCUM|{rng}|{flag}|||{status}|||20240311080000-0500||4444^Pathologist^Pat|||||||Reference Lab^L^^^^CLIA&2.16.840.1.113883.4.7&ISO^XX^^^05D0000000"


LIPIDS = [("2093-3", "Cholesterol", "185", "mg/dL", "<200", "N"), ("2571-8", "Triglyceride", "220", "mg/dL", "<150", "H"),
          ("2085-9", "HDL Cholesterol", "38", "mg/dL", ">40", "L"), ("13457-7", "LDL Cholesterol calc", "103", "mg/dL", "0-99", "H"),
          ("2345-7", "Glucose", "5.6", "mmol/L", "3.9-5.5", "H"), ("2160-0", "Creatinine", "0.9", "mg/dL", "0.6-1.2", "N"),
          ("6299-2", "Urea nitrogen", "14", "mg/dL", "7-20", "N"), ("2951-2", "Sodium", "139", "mmol/L", "135-145", "N"),
          ("2823-3", "Potassium", "3.2", "mmol/L", "3.5-5.1", "L"), ("17861-6", "Calcium", "9.4", "mg/dL", "8.5-10.5", "N")]


def oru(ctrl, p, filler, status="F", version="2.5.1", results=LIPIDS, obr_code="24331-1^Lipid panel^LN", extra=()):
    segs = [msh("REFLAB", ctrl, "ORU^R01^ORU_R01" if version != "2.3" else "ORU^R01", version), pid(p), pv1("V3000")]
    segs.append(f"ORC|RE|PL{filler}^ECW|{filler}^REFLAB||CM")
    segs.append(f"OBR|1|PL{filler}^ECW|{filler}^REFLAB|{obr_code}|R||20240311080000-0500|||||||||1234567890^Doctor^Primary^^^^^^NPI&2.16.840.1.113883.4.6&ISO^^^^NPI||||||20240311120000-0500|||{status}")
    segs.append("NTE|1||Fasting specimen.\\.br\\Collected at clinic.")
    for n, (code, name, value, units, rng, flag) in enumerate(results, 1):
        segs.append(obx_nm(n, code, name, value, units, rng, flag, "C" if status == "C" else "F"))
    segs.extend(extra)
    return segs


for k, p in enumerate(PATIENTS):
    add(f"oru_r01_lipid_{k + 1}.hl7", oru(f"ORU{k}", p, f"F{5000 + k}", version="2.3" if k % 3 == 2 else "2.5.1"))
# Correction of oru_r01_lipid_1: same order, OBX-11 = C, new value.
corr = list(LIPIDS)
corr[0] = ("2093-3", "Cholesterol", "191", "mg/dL", "<200", "N")
add("oru_r01_lipid_1_corrected.hl7", oru("ORU0C", PATIENTS[0], "F5000", status="C", results=corr))
# Value types: SN, ST, TX, FT, CWE, DT, TS, ED, RP, empty value, repeated ST.
add("oru_r01_value_types.hl7", [msh("REFLAB", "VT1", "ORU^R01^ORU_R01"), pid(PATIENTS[1]),
    "ORC|RE|PL77^ECW|F77^REFLAB||CM",
    "OBR|1|PL77^ECW|F77^REFLAB|11502-2^Laboratory report^LN|||20240310101500+0000||||||||BLD&Blood&HL70070||||||||||F",
    "OBX|1|SN|5196-1^HBsAg^LN||<^0.5|IU/mL^IU/mL^UCUM|||||F",
    "OBX|2|SN|33914-3^eGFR^LN||>=^60|mL/min/{1.73_m2}^mL/min/1.73m2^UCUM|>59||||F",
    "OBX|3|SN|5130-0^Titer^LN||^1^:^128||||||F",
    "OBX|4|SN|2514-8^Ketones^LN||^5^-^15|mg/dL^mg/dL^UCUM|||||P",
    "OBX|5|ST|5778-6^Color of Urine^LN||Yellow~pale||||||F",
    "OBX|6|TX|22637-3^Pathology report^LN||Line one\\.br\\Line two with \\T\\ and \\S\\||||||F",
    "OBX|7|FT|11529-5^Surgical pathology^LN||Formatted \\H\\bold\\N\\ text||||||F",
    "OBX|8|CWE|600-7^Bacteria identified^LN||112283007^Escherichia coli^SCT^ECOLI^E coli^L||||||F",
    "OBX|9|DT|21112-8^Birth date^LN||20230505||||||F",
    "OBX|10|TS|82810-3^Pregnancy status recorded^LN||202403101015-0500||||||F",
    "OBX|11|ED|PDF^Report PDF^L||^application^pdf^Base64^JVBERi0xLjQKJcfsj6IKMSAwIG9iago8PC9UeXBlL0NhdGFsb2c+PgplbmRvYmoKdHJhaWxlcgo8PC9Sb290IDEgMCBSPj4KJSVFT0YK||||||F",
    "OBX|12|RP|IMG^Image^L||https://images.example.invalid/study/1^PACS^image^jpeg||||||F",
    "OBX|13|NM|2339-0^Glucose^LN||||||||X",
    "OBX|14|NM|2339-0^Glucose^LN||not done||||||F",
    "NTE|1||Result comment one", "NTE|2||Result comment two"])
# Several OBR groups, SPM, sub-ids, repeated codes without sub-id.
add("oru_r01_multi_obr.hl7", [msh("REFLAB", "MO1", "ORU^R01^ORU_R01"), pid(PATIENTS[2]), pv1("V3100"),
    "ORC|RE|PLA1^ECW|FA1^REFLAB||CM",
    "OBR|1|PLA1^ECW|FA1^REFLAB|58410-2^CBC panel^LN|||20240309070000-0500|||||||||||||||20240309100000-0500|||F",
    "OBX|1|NM|718-7^Hemoglobin^LN|1|13.2|g/dL^g/dL^UCUM|12.0-16.0|N|||F",
    "OBX|2|NM|718-7^Hemoglobin^LN|2|13.4|g/dL^g/dL^UCUM|12.0-16.0|N|||F",
    "OBX|3|NM|789-8^RBC^LN||4.5|10*6/uL^10*6/uL^UCUM|4.2-5.4||||F",
    "OBX|4|NM|789-8^RBC^LN||4.6|10*6/uL^10*6/uL^UCUM|4.2-5.4||||F",
    "SPM|1|SPEC1&ECW^SPFILL1&REFLAB||119297000^Blood specimen^SCT|||||||||||||20240309070000-0500|20240309080000-0500",
    "ORC|RE|PLA2^ECW|FA2^REFLAB||CM",
    "OBR|2|PLA2^ECW|FA2^REFLAB|630-4^Urine culture^LN|||20240309070500-0500|||||||||||||||20240309110000-0500|||P",
    "NTE|1||Preliminary: incubation continues",
    "OBX|1|CWE|630-4^Bacteria identified in Urine by Culture^LN||LOCNEG^No growth at 24h^LOCAL-MICRO||||||P",
    "ORC|RE|PLA3^ECW|FA3^REFLAB||CM",
    "OBR|3|PLA3^ECW|FA3^REFLAB|LOCALTSH^Thyroid stimulating hormone^LOCAL-LAB|||20240309070500-0500|||||||||||||||20240309110000-0500|||F",
    "OBX|1|NM|LOCALTSH^TSH^LOCAL-LAB||2.1|mIU/L^mIU/L^UCUM|0.4-4.0|N|||F",
    "ZLB|1|lab private data"])
# v2.3 ORU with OBR-15 specimen source, no SPM, no ORC, no PV1.
add("oru_r01_v23_obr15.hl7", [msh("REFLAB", "V23A", "ORU^R01", "2.3"), pid(PATIENTS[4]),
    "OBR|1|PL9^ECW|F9^REFLAB|24323-8^Comprehensive metabolic panel^LN|||20240308090000|||||||20240308093000|SER&Serum&HL70070|||||||||||F",
    "OBX|1|NM|2345-7^Glucose^LN||99|mg/dL|70-99||||F", "OBX|2|NM|2951-2^Sodium^LN||141|mmol/L|135-145||||F",
    "OBX|3|ST|8251-1^Service comment^LN||Hemolyzed\\F\\repeat advised||||||F"])
# ORU with many OBX (bench-like) and non-ASCII text in results.
add("oru_r01_unicode_text.hl7", [msh("REFLAB", "UNI1", "ORU^R01^ORU_R01"), pid(PATIENTS[1]),
    "OBR|1|PLU1^ECW|FU1^REFLAB|11526-1^Pathology study^LN|||20240307120000+0100||||||||||||||||||F",
    "OBX|1|TX|22634-0^Pathology report final diagnosis^LN||Befund: unauffällig — keine Malignität; Größe 2×3 mm||||||F",
    "NTE|1||Bemerkung: Probe über Nacht gekühlt"])

# ---------------------------------------------------------------- ORM
for k in range(4):
    p = PATIENTS[k]
    control = ["NW", "NW", "CA", "SC"][k]
    status = ["", "IP", "CA", "CM"][k]
    add(f"orm_o01_{k + 1}.hl7", [msh("ECW", f"ORM{k}", "ORM^O01^ORM_O01" if k != 1 else "ORM^O01", "2.3" if k == 1 else "2.5.1"),
        pid(p), pv1(f"V40{k}"),
        f"ORC|{control}|ORD{400 + k}^ECW|{'' if k < 2 else f'FIL{400 + k}^REFLAB'}||{status}||^^^20240312090000^^R|||20240312090000-0500|||1234567890^Doctor^Primary^^^^^^NPI&2.16.840.1.113883.4.6&ISO^^^^NPI",
        f"OBR|1|ORD{400 + k}^ECW||24331-1^Lipid panel^LN|{'S' if k == 3 else 'R'}|20240312090000-0500|||||||||1234567890^Doctor^Primary||||||||||||||||E78.5^Hyperlipidemia^I10",
        "NTE|1||Patient fasting since midnight",
        "DG1|1|I10|E78.5^Hyperlipidemia, unspecified^I10||20240312|W",
        "OBX|1|NM|3141-9^Body weight^LN||72.5|kg^kg^UCUM||||||F"])
add("orm_o01_two_orders.hl7", [msh("ECW", "ORM9", "ORM^O01^ORM_O01"), pid(PATIENTS[5]), pv1("V409"),
    "ORC|NW|ORD501^ECW|||||||20240312090000-0500|||1234567890^Doctor^Primary",
    "OBR|1|ORD501^ECW||4548-4^Hemoglobin A1c^LN|R",
    "ORC|NW|ORD502^ECW|||||||20240312090000-0500|||1234567890^Doctor^Primary",
    "OBR|2|ORD502^ECW||LOCALVITD^Vitamin D panel^LOCAL-LAB|R",
    "DG1|1|I10|E55.9^Vitamin D deficiency^I10||20240312|A"])

# ---------------------------------------------------------------- VXU
VACCINES = [("08", "Hep B, adolescent or pediatric", "MSD", "Merck"), ("03", "MMR", "MSD", "Merck"),
            ("141", "Influenza, seasonal, injectable", "SKB", "GlaxoSmithKline"), ("208", "COVID-19, mRNA, LNP-S, PF, 30 mcg/0.3 mL dose", "PFR", "Pfizer")]
for k, (cvx, name, mvx, mvx_name) in enumerate(VACCINES):
    p = PATIENTS[k + 2]
    completion = ["CP", "CP", "RE", "PA"][k]
    refusal = "00^Parental decision^NIP002" if completion == "RE" else ""
    amount = "999" if completion == "RE" else "0.5"
    add(f"vxu_v04_{k + 1}.hl7", [msh("ECW", f"VXU{k}", "VXU^V04^VXU_V04" if k != 1 else "VXU^V04", "2.3" if k == 1 else "2.5.1"),
        pid(p), "PD1|||||||||||02^Reminder/Recall - any method^HL70215",
        "NK1|1|Guardian^Gail|MTH^Mother^HL70063",
        f"ORC|RE||IZ{600 + k}^ECW|||||||||7777^Vaccinator^Val^^^^^^ECW",
        f"RXA|0|1|2024030{k + 1}||{cvx}^{name}^CVX|{amount}|mL^mL^UCUM||{'00^New immunization record^NIP001' if k != 1 else '01^Historical information - source unspecified^NIP001'}|7777^Vaccinator^Val^^^^^^ECW|^^^MAINCLINIC||||LOT{k}X|2025123{k}|{mvx}^{mvx_name}^MVX|{refusal}||{completion}|A",
        "RXR|C28161^Intramuscular^NCIT|LD^Left Deltoid^HL70163",
        "OBX|1|CE|64994-7^Vaccine funding program eligibility category^LN|1|V02^VFC eligible - Medicaid^HL70064||||||F|||20240301",
        "OBX|2|CE|30963-3^Vaccine funding source^LN|2|VXC50^Public^CDCPHINVS||||||F|||20240301"])
add("vxu_v04_two_doses.hl7", [msh("ECW", "VXU9", "VXU^V04^VXU_V04"), pid(PATIENTS[6]),
    "ORC|RE||IZ690^ECW", "RXA|0|1|20240105||20^DTaP^CVX|0.5|mL^mL^UCUM||00^New immunization record^NIP001||||||LOTA|20250101|SKB^GlaxoSmithKline^MVX|||CP|A",
    "ORC|RE||IZ691^ECW", "RXA|0|1|20240105||10^IPV^CVX|0.5|mL^mL^UCUM||00^New immunization record^NIP001||||||LOTB|20250101|PMC^Sanofi Pasteur^MVX|||NA|A"])

# ---------------------------------------------------------------- SIU
for k, trig in enumerate(["S12", "S14", "S15", "S12", "S14", "S15"]):
    p = PATIENTS[k % len(PATIENTS)]
    appt = f"APT{700 + k // 3}"
    version = "2.3" if k >= 3 else "2.5.1"
    tq = f"^^30^20240320{10 + k}0000-0500^20240320{10 + k}3000-0500" if version == "2.3" else ""
    segs = [msh("ECW", f"SIU{k}", f"SIU^{trig}^SIU_S12" if version != "2.3" else f"SIU^{trig}", version),
            f"SCH|{appt}^ECW|{appt}F^ECWSCHED||||{'CANC^Patient cancelled^L' if trig == 'S15' else 'NEW^New^L'}|FU^Follow-up visit^L|ROUTINE^Routine^HL70277|30|MIN|{tq}"]
    if version != "2.3":
        segs.append(f"TQ1|1||||||20240320{10 + k}0000-0500|20240320{10 + k}3000-0500")
    segs.append("NTE|1||Bring medication list")
    segs += [pid(p), pv1(f"V80{k}"), "RGS|1|A",
             "AIS|1|A|99213^Office visit, established^C4|20240320100000-0500|||30|MIN",
             "AIL|1|A|CLINIC^EXAM2^^MAINCLINIC",
             "AIP|1|A|1234567890^Doctor^Primary^^^^^^NPI&2.16.840.1.113883.4.6&ISO^^^^NPI|D^Doctor^L"]
    add(f"siu_{trig.lower()}_{k + 1}.hl7", segs)

# ---------------------------------------------------------------- MDM
for k, trig in enumerate(["T02", "T04", "T02", "T04"]):
    p = PATIENTS[k + 1]
    doc = f"DOC{800 + (k // 2)}"
    segs = [msh("ECW", f"MDM{k}", f"MDM^{trig}^MDM_T02" if k < 2 else f"MDM^{trig}", "2.5.1" if k < 2 else "2.3"),
            f"EVN|{trig}|20240315140000-0500", pid(p), pv1(f"V90{k}"),
            f"TXA|1|PN^Progress note^HL70270|TX|20240315133000-0500|1234567890^Doctor^Primary^^^^^^NPI&2.16.840.1.113883.4.6&ISO^^^^NPI||20240315140000-0500|||||{doc}{'A' if trig == 'T04' else ''}^ECW|{doc + '^ECW' if trig == 'T04' else ''}||||AU"]
    if k % 2 == 0:
        segs += ["OBX|1|TX|11506-3^Progress note^LN||Subjective: feels well.||||||F",
                 "OBX|2|TX|11506-3^Progress note^LN||Plan: continue \\T\\ recheck in 3 months.~Second line.||||||F"]
    else:
        segs += ["OBX|1|ED|11506-3^Progress note^LN||ECW^text^plain^A^Addendum: labs reviewed.||||||F"]
    add(f"mdm_{trig.lower()}_{k + 1}.hl7", segs)
add("mdm_t02_pdf.hl7", [msh("ECW", "MDMPDF", "MDM^T02^MDM_T02"), "EVN|T02|20240315", pid(PATIENTS[0]),
    "TXA|1|DS^Discharge summary^HL70270|AP|20240315133000-0500||||||||DOC900^ECW||||LA",
    "OBX|1|ED|18842-5^Discharge summary^LN||ECW^application^pdf^Base64^JVBERi0xLjQKJSVFT0YK||||||F"])
add("mdm_t02_hex.hl7", [msh("ECW", "MDMHEX", "MDM^T02^MDM_T02"), "EVN|T02|20240315", pid(PATIENTS[7]),
    "TXA|1|CN^Consult note^HL70270|TX|20240315133000-0500||||||||DOC901^ECW||||IP",
    "OBX|1|ED|11488-4^Consult note^LN||ECW^TEXT^plain^Hex^48656C6C6F2C20776F726C64||||||F"])

# ---------------------------------------------------------------- DFT
for k in range(4):
    p = PATIENTS[k + 4]
    version = "2.3" if k == 3 else "2.5.1"
    segs = [msh("ECW", f"DFT{k}", "DFT^P03^DFT_P03" if version != "2.3" else "DFT^P03", version),
            f"EVN|P03|20240316100000-0500",
            pid(p).replace("||||||", "||||||", 1) , pv1(f"V95{k}"),
            f"FT1|1|TX{950 + k}||20240316|20240316|CG|99213^Office visit^C4||Office visit|1|125.00&USD||||||||E11.9^Type 2 diabetes^I10~I10^Essential hypertension^I10|1234567890^Doctor^Primary^^^^^^NPI&2.16.840.1.113883.4.6&ISO^^^^NPI|3333^Admitter^Adam||||99213^Office visit^C4|25^Significant, separately identifiable E/M^C4",
            f"FT1|2|||20240316|20240316|CG|LOCAL-INJ^Injection admin^LOCAL-CHG||Injection|2|40&USD||||||||I10^Essential hypertension^I10||||||J3420^Vitamin B12 injection^HCPCS",
            "DG1|1|I10|E11.9^Type 2 diabetes mellitus without complications^I10||20240316|F",
            "DG1|2|I10|I10^Essential (primary) hypertension^I10||20240316|F",
            f"IN1|1|SILVER^Silver Plan|INS02^^^PAYERS|Sample Mutual Insurance|||||||||20240101||||SEL^Self|||||||||||||||||||MEM{960 + k}"]
    # PID-18 account number for the Account.
    segs[2] = segs[2].split("|")
    while len(segs[2]) < 19:
        segs[2].append("")
    segs[2][18] = f"ACCT{970 + k}^^^ECW^AN"
    segs[2] = "|".join(segs[2])
    add(f"dft_p03_{k + 1}.hl7", segs)

add("adt_a31_person_only.hl7", [msh("ECW", "A31X", "ADT^A31^ADT_A05"), "EVN|A31|20240305", pid(PATIENTS[7], extra_ids="999-00-1111^^^SSA^SS")])
add("oru_r01_no_orc_v251.hl7", [msh("REFLAB", "NOORC", "ORU^R01^ORU_R01"), pid(PATIENTS[6]),
    "OBR|1||FX1^REFLAB|2093-3^Cholesterol^LN|||20240301|||||||||||||||||||F",
    "OBX|1|NM|2093-3^Cholesterol^LN||201|mg/dL^mg/dL^UCUM|<200|H|||F"])
add("siu_s12_no_times.hl7", [msh("ECW", "SIUNT", "SIU^S12^SIU_S12"), "SCH||APT999F^ECWSCHED|||||CHECK^Checkup^L", pid(PATIENTS[0])])

# ---------------------------------------------------------------- write
count = 0
for name, text in files.items():
    if text is None:
        continue
    (OUT / name).write_bytes(text.encode("utf-8"))
    count += 1
latin = "\r".join([msh("ECW", "LAT1", "ADT^A08^ADT_A01", charset="8859/1"), "EVN|A08|20240302",
                   "PID|1||MRN2004^^^ECW^MR||Gonçalves^Inês^^^^^L||19850505|F", "PV1|1|O"]) + "\r"
(OUT / "adt_a08_latin1.hl7").write_bytes(latin.encode("latin-1"))
count += 1
print(f"{count} messages written to {OUT}")
