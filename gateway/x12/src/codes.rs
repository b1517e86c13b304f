//! X12 code lists the crate writes or explains: the TA1 and 999 codes
//! (005010X231A1), and the few 835/277 codes the JSON names in words.
//! Each lookup returns `None` for a code the list does not have.

fn find(table: &[(&'static str, &'static str)], code: &[u8]) -> Option<&'static str> {
    table
        .iter()
        .find(|(c, _)| c.as_bytes() == code)
        .map(|(_, t)| *t)
}

/// TA104 (I17) Interchange Acknowledgment Code.
pub const TA104: &[(&str, &str)] = &[
    ("A", "The Transmitted Interchange Control Structure Header and Trailer Have Been Received and Have No Errors."),
    ("E", "The Transmitted Interchange Control Structure Header and Trailer Have Been Received and Are Accepted But Errors Are Noted. This Means the Sender Must Not Resend This Data."),
    ("R", "The Transmitted Interchange Control Structure Header and Trailer are Rejected Because of Errors."),
];

/// TA105 (I18) Interchange Note Code, 000-031 as 005010 lists them.
pub const TA105: &[(&str, &str)] = &[
    ("000", "No error"),
    ("001", "The Interchange Control Number in the Header and Trailer Do Not Match. The Value From the Header is Used in the Acknowledgment."),
    ("002", "This Standard as Noted in the Control Standards Identifier is Not Supported."),
    ("003", "This Version of the Controls is Not Supported"),
    ("004", "The Segment Terminator is Invalid"),
    ("005", "Invalid Interchange ID Qualifier for Sender"),
    ("006", "Invalid Interchange Sender ID"),
    ("007", "Invalid Interchange ID Qualifier for Receiver"),
    ("008", "Invalid Interchange Receiver ID"),
    ("009", "Unknown Interchange Receiver ID"),
    ("010", "Invalid Authorization Information Qualifier Value"),
    ("011", "Invalid Authorization Information Value"),
    ("012", "Invalid Security Information Qualifier Value"),
    ("013", "Invalid Security Information Value"),
    ("014", "Invalid Interchange Date Value"),
    ("015", "Invalid Interchange Time Value"),
    ("016", "Invalid Interchange Standards Identifier Value"),
    ("017", "Invalid Interchange Version ID Value"),
    ("018", "Invalid Interchange Control Number Value"),
    ("019", "Invalid Acknowledgment Requested Value"),
    ("020", "Invalid Test Indicator Value"),
    ("021", "Invalid Number of Included Groups Value"),
    ("022", "Invalid Control Structure"),
    ("023", "Improper (Premature) End-of-File (Transmission)"),
    ("024", "Invalid Interchange Content (e.g., Invalid GS Segment)"),
    ("025", "Duplicate Interchange Control Number"),
    ("026", "Invalid Data Element Separator"),
    ("027", "Invalid Component Element Separator"),
    ("028", "Invalid Delivery Date in Deferred Delivery Request"),
    ("029", "Invalid Delivery Time in Deferred Delivery Request"),
    ("030", "Invalid Delivery Time Code in Deferred Delivery Request"),
    ("031", "Invalid Grade of Service Code"),
];

/// IK501 (717) Transaction Set Acknowledgment Code.
pub const IK501: &[(&str, &str)] = &[
    ("A", "Accepted"),
    ("E", "Accepted But Errors Were Noted"),
    ("M", "Rejected, Message Authentication Code (MAC) Failed"),
    ("R", "Rejected"),
    ("W", "Rejected, Assurance Failed Validity Tests"),
    (
        "X",
        "Rejected, Content After Decryption Could Not Be Analyzed",
    ),
];

/// AK901 (715) Functional Group Acknowledge Code.
pub const AK901: &[(&str, &str)] = &[
    ("A", "Accepted"),
    ("E", "Accepted, But Errors Were Noted"),
    ("M", "Rejected, Message Authentication Code (MAC) Failed"),
    (
        "P",
        "Partially Accepted, At Least One Transaction Set Was Rejected",
    ),
    ("R", "Rejected"),
    ("W", "Rejected, Assurance Failed Validity Tests"),
    (
        "X",
        "Rejected, Content After Decryption Could Not Be Analyzed",
    ),
];

/// IK502..IK506 (718) Implementation Transaction Set Syntax Error Code.
pub const IK502: &[(&str, &str)] = &[
    ("1", "Transaction Set Not Supported"),
    ("2", "Transaction Set Trailer Missing"),
    (
        "3",
        "Transaction Set Control Number in Header and Trailer Do Not Match",
    ),
    (
        "4",
        "Number of Included Segments Does Not Match Actual Count",
    ),
    ("5", "One or More Segments in Error"),
    ("6", "Missing or Invalid Transaction Set Identifier"),
    ("7", "Missing or Invalid Transaction Set Control Number"),
    ("8", "Authentication Key Name Unknown"),
    ("9", "Encryption Key Name Unknown"),
    (
        "10",
        "Requested Service (Authentication or Encrypted) Not Available",
    ),
    ("11", "Unknown Security Recipient"),
    ("12", "Incorrect Message Length (Encryption Only)"),
    ("13", "Message Authentication Code Failed"),
    ("15", "Unknown Security Originator"),
    ("16", "Syntax Error in Decrypted Text"),
    ("17", "Security Not Supported"),
    ("18", "Transaction Set not in Functional Group"),
    (
        "19",
        "Invalid Transaction Set Implementation Convention Reference",
    ),
    (
        "23",
        "Transaction Set Control Number Not Unique within the Functional Group",
    ),
    (
        "24",
        "S3E Security End Segment Missing for S3S Security Start Segment",
    ),
    (
        "25",
        "S3S Security Start Segment Missing for S3E End Segment",
    ),
    (
        "26",
        "S4E Security End Segment Missing for S4S Security Start Segment",
    ),
    (
        "27",
        "S4S Security Start Segment Missing for S4E Security End Segment",
    ),
    ("I5", "Implementation One or More Segments in Error"),
    ("I6", "Implementation Convention Not Supported"),
];

/// AK905..AK909 (716) Functional Group Syntax Error Code.
pub const AK905: &[(&str, &str)] = &[
    ("1", "Functional Group Not Supported"),
    ("2", "Functional Group Version Not Supported"),
    ("3", "Functional Group Trailer Missing"),
    (
        "4",
        "Group Control Number in the Functional Group Header and Trailer Do Not Agree",
    ),
    (
        "5",
        "Number of Included Transaction Sets Does Not Match Actual Count",
    ),
    ("6", "Group Control Number Violates Syntax"),
    ("10", "Authentication Key Name Unknown"),
    ("11", "Encryption Key Name Unknown"),
    (
        "12",
        "Requested Service (Authentication or Encryption) Not Available",
    ),
    ("13", "Unknown Security Recipient"),
    ("14", "Unknown Security Originator"),
    ("15", "Syntax Error in Decrypted Text"),
    ("16", "Security Not Supported"),
    ("17", "Incorrect Message Length (Encryption Only)"),
    ("18", "Message Authentication Code Failed"),
    (
        "19",
        "Functional Group Control Number not Unique within Interchange",
    ),
    (
        "23",
        "S3E Security End Segment Missing for S3S Security Start Segment",
    ),
    (
        "24",
        "S3S Security Start Segment Missing for S3E Security End Segment",
    ),
    (
        "25",
        "S4E Security End Segment Missing for S4S Security Start Segment",
    ),
    (
        "26",
        "S4S Security Start Segment Missing for S4E Security End Segment",
    ),
];

/// IK304 (620) Implementation Segment Syntax Error Code.
pub const IK304: &[(&str, &str)] = &[
    ("1", "Unrecognized segment ID"),
    ("2", "Unexpected segment"),
    ("3", "Required Segment Missing"),
    ("4", "Loop Occurs Over Maximum Times"),
    ("5", "Segment Exceeds Maximum Use"),
    ("6", "Segment Not in Defined Transaction Set"),
    ("7", "Segment Not in Proper Sequence"),
    ("8", "Segment Has Data Element Errors"),
    ("I4", "Implementation \"Not Used\" Segment Present"),
    ("I6", "Implementation Dependent Segment Missing"),
    ("I7", "Implementation Loop Occurs Under Minimum Times"),
    ("I8", "Implementation Segment Below Minimum Use"),
    (
        "I9",
        "Implementation Dependent \"Not Used\" Segment Present",
    ),
];

/// IK403 (621) Implementation Data Element Syntax Error Code.
pub const IK403: &[(&str, &str)] = &[
    ("1", "Required Data Element Missing"),
    ("2", "Conditional Required Data Element Missing"),
    ("3", "Too Many Data Elements"),
    ("4", "Data Element Too Short"),
    ("5", "Data Element Too Long"),
    ("6", "Invalid Character In Data Element"),
    ("7", "Invalid Code Value"),
    ("8", "Invalid Date"),
    ("9", "Invalid Time"),
    ("10", "Exclusion Condition Violated"),
    ("12", "Too Many Repetitions"),
    ("13", "Too Many Components"),
    ("I6", "Code Value Not Used in Implementation"),
    ("I9", "Implementation Dependent Data Element Missing"),
    ("I10", "Implementation \"Not Used\" Data Element Present"),
    ("I11", "Implementation Too Few Repetitions"),
    ("I12", "Implementation Pattern Match Failure"),
    (
        "I13",
        "Implementation Dependent \"Not Used\" Data Element Present",
    ),
];

/// CAS01 Claim Adjustment Group Code.
pub const CAS_GROUP: &[(&str, &str)] = &[
    ("CO", "Contractual Obligations"),
    ("CR", "Correction and Reversals"),
    ("OA", "Other adjustments"),
    ("PI", "Payor Initiated Reductions"),
    ("PR", "Patient Responsibility"),
];

/// CLP02 Claim Status Code (835).
pub const CLP02: &[(&str, &str)] = &[
    ("1", "Processed as Primary"),
    ("2", "Processed as Secondary"),
    ("3", "Processed as Tertiary"),
    ("4", "Denied"),
    (
        "19",
        "Processed as Primary, Forwarded to Additional Payer(s)",
    ),
    (
        "20",
        "Processed as Secondary, Forwarded to Additional Payer(s)",
    ),
    (
        "21",
        "Processed as Tertiary, Forwarded to Additional Payer(s)",
    ),
    ("22", "Reversal of Previous Payment"),
    ("23", "Not Our Claim, Forwarded to Additional Payer(s)"),
    ("25", "Predetermination Pricing Only - No Payment"),
];

/// Health Care Claim Status Category Code (code source 507), used in
/// STC01-1 of the 277 and 277CA.
pub const CLAIM_STATUS_CATEGORY: &[(&str, &str)] = &[
    ("A0", "Acknowledgement/Forwarded"),
    ("A1", "Acknowledgement/Receipt"),
    ("A2", "Acknowledgement/Acceptance into adjudication system"),
    ("A3", "Acknowledgement/Returned as unprocessable claim"),
    ("A4", "Acknowledgement/Not Found"),
    ("A5", "Acknowledgement/Split Claim"),
    ("A6", "Acknowledgement/Rejected for Missing Information"),
    ("A7", "Acknowledgement/Rejected for Invalid Information"),
    ("A8", "Acknowledgement/Rejected for relational field in error"),
    ("D0", "Data Search Unsuccessful"),
    ("E0", "Response not possible - error on submitted request data"),
    ("E1", "Response not possible - System Status"),
    ("E2", "Information Holder is not responding; resubmit at a later time."),
    ("E3", "Correction required - relational fields in error."),
    ("E4", "Trading partner agreement specific requirement not met"),
    ("F0", "Finalized"),
    ("F1", "Finalized/Payment"),
    ("F2", "Finalized/Denial"),
    ("F3", "Finalized/Revised"),
    ("F3F", "Finalized/Forwarded"),
    ("F3N", "Finalized/Not Forwarded"),
    ("F4", "Finalized/Adjudication Complete - No payment forthcoming"),
    ("F5", "Finalized/Cannot Process"),
    ("P0", "Pending: Adjudication/Details"),
    ("P1", "Pending/In Process"),
    ("P2", "Pending/Payer Review"),
    ("P3", "Pending/Provider Requested Information"),
    ("P4", "Pending/Patient Requested Information"),
    ("P5", "Pending/Payer Administrative/System hold"),
    ("R0", "Requests for additional Information/General Requests"),
    ("R1", "Requests for additional Information/Entity Requests"),
    ("R3", "Requests for additional Information/Claim/Line"),
    ("R4", "Requests for additional Information/Documentation"),
    ("R5", "Request for additional information/more specific detail"),
    ("R6", "Requests for additional information - Regulatory requirements"),
    ("R7", "Requests for additional information - Confirm care is consistent with Health Plan policy coverage"),
    ("R8", "Requests for additional information - Confirm care is consistent with health plan coverage exceptions"),
    ("R9", "Requests for additional information - Determination of medical necessity"),
    ("R10", "Requests for additional information - Support a filed grievance or appeal"),
    ("R11", "Requests for additional information - Pre-payment review of claims"),
    ("R12", "Requests for additional information - Clarification or justification of use for specified procedure code"),
    ("R13", "Requests for additional information - Original documents submitted are not readable"),
    ("R14", "Requests for additional information - Original documents received are not what was requested"),
    ("R15", "Requests for additional information - Workers Compensation coverage verification"),
    ("R16", "Requests for additional information - Eligibility determination"),
    ("R17", "Response not possible - claim has been finalized"),
];

/// EB01 Eligibility or Benefit Information Code (271), the common ones.
pub const EB01: &[(&str, &str)] = &[
    ("1", "Active Coverage"),
    ("2", "Active - Full Risk Capitation"),
    ("3", "Active - Services Capitated"),
    ("4", "Active - Services Capitated to Primary Care Physician"),
    ("5", "Active - Pending Investigation"),
    ("6", "Inactive"),
    ("7", "Inactive - Pending Eligibility Update"),
    ("8", "Inactive - Pending Investigation"),
    ("A", "Co-Insurance"),
    ("B", "Co-Payment"),
    ("C", "Deductible"),
    ("CB", "Coverage Basis"),
    ("D", "Benefit Description"),
    ("E", "Exclusions"),
    ("F", "Limitations"),
    ("G", "Out of Pocket (Stop Loss)"),
    ("H", "Unlimited"),
    ("I", "Non-Covered"),
    ("J", "Cost Containment"),
    ("K", "Reserve"),
    ("L", "Primary Care Provider"),
    ("M", "Pre-existing Condition"),
    ("MC", "Managed Care Coordinator"),
    ("N", "Services Restricted to Following Provider"),
    ("O", "Not Deemed a Medical Necessity"),
    ("P", "Benefit Disclaimer"),
    ("Q", "Second Surgical Opinion Required"),
    ("R", "Other or Additional Payor"),
    ("S", "Prior Year(s) History"),
    ("T", "Card(s) Reported Lost/Stolen"),
    (
        "U",
        "Contact Following Entity for Eligibility or Benefit Information",
    ),
    ("V", "Cannot Process"),
    ("W", "Other Source of Data"),
    ("X", "Health Care Facility"),
    ("Y", "Spend Down"),
];

/// Text of a TA104 code.
pub fn ta104_text(code: &[u8]) -> Option<&'static str> {
    find(TA104, code)
}
/// Text of a TA105 code.
pub fn ta105_text(code: &[u8]) -> Option<&'static str> {
    find(TA105, code)
}
/// Text of an IK501 code.
pub fn ik501_text(code: &[u8]) -> Option<&'static str> {
    find(IK501, code)
}
/// Text of an AK901 code.
pub fn ak901_text(code: &[u8]) -> Option<&'static str> {
    find(AK901, code)
}
/// Text of an IK502..IK506 code.
pub fn ik502_text(code: &[u8]) -> Option<&'static str> {
    find(IK502, code)
}
/// Text of an AK905..AK909 code.
pub fn ak905_text(code: &[u8]) -> Option<&'static str> {
    find(AK905, code)
}
/// Text of an IK304 code.
pub fn ik304_text(code: &[u8]) -> Option<&'static str> {
    find(IK304, code)
}
/// Text of an IK403 code.
pub fn ik403_text(code: &[u8]) -> Option<&'static str> {
    find(IK403, code)
}
/// Text of a CAS01 group code.
pub fn cas_group_text(code: &[u8]) -> Option<&'static str> {
    find(CAS_GROUP, code)
}
/// Text of a CLP02 claim status code.
pub fn clp02_text(code: &[u8]) -> Option<&'static str> {
    find(CLP02, code)
}
/// Text of a claim status category code (STC01-1).
pub fn claim_status_category_text(code: &[u8]) -> Option<&'static str> {
    find(CLAIM_STATUS_CATEGORY, code)
}
/// Text of an EB01 code.
pub fn eb01_text(code: &[u8]) -> Option<&'static str> {
    find(EB01, code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        assert_eq!(ta105_text(b"022"), Some("Invalid Control Structure"));
        assert_eq!(
            ik502_text(b"4"),
            Some("Number of Included Segments Does Not Match Actual Count")
        );
        assert_eq!(
            ak905_text(b"5"),
            Some("Number of Included Transaction Sets Does Not Match Actual Count")
        );
        assert_eq!(clp02_text(b"22"), Some("Reversal of Previous Payment"));
        assert_eq!(ik403_text(b"99"), None);
        // Every table has unique codes.
        for t in [
            TA104,
            TA105,
            IK501,
            AK901,
            IK502,
            AK905,
            IK304,
            IK403,
            CAS_GROUP,
            CLP02,
            CLAIM_STATUS_CATEGORY,
            EB01,
        ] {
            let mut codes: Vec<_> = t.iter().map(|(c, _)| *c).collect();
            codes.sort_unstable();
            codes.dedup();
            assert_eq!(codes.len(), t.len());
        }
    }
}
