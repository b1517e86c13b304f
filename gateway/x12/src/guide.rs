//! Which implementation guides (GS08 / ST03) the crate knows, and which
//! transaction set (ST01) and functional identifier (GS01) each one carries.

/// A transaction the crate checks and maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// 837 professional claim (005010X222A1).
    Claim837P,
    /// 837 institutional claim (005010X223A2).
    Claim837I,
    /// 835 remittance advice (005010X221A1).
    Remittance835,
    /// 999 implementation acknowledgment (005010X231A1).
    Ack999,
    /// 277CA claim acknowledgment (005010X214).
    ClaimAck277CA,
    /// 270 eligibility inquiry (005010X279A1).
    Eligibility270,
    /// 271 eligibility response (005010X279A1).
    Eligibility271,
    /// 276 claim status request (005010X212).
    Status276,
    /// 277 claim status response (005010X212).
    Status277,
}

impl Kind {
    /// The short name used in JSON and reports (`"835"`, `"837P"`, `"277CA"`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Claim837P => "837P",
            Kind::Claim837I => "837I",
            Kind::Remittance835 => "835",
            Kind::Ack999 => "999",
            Kind::ClaimAck277CA => "277CA",
            Kind::Eligibility270 => "270",
            Kind::Eligibility271 => "271",
            Kind::Status276 => "276",
            Kind::Status277 => "277",
        }
    }

    /// ST01 for this transaction.
    pub fn transaction_set(self) -> &'static str {
        match self {
            Kind::Claim837P | Kind::Claim837I => "837",
            Kind::Remittance835 => "835",
            Kind::Ack999 => "999",
            Kind::ClaimAck277CA | Kind::Status277 => "277",
            Kind::Eligibility270 => "270",
            Kind::Eligibility271 => "271",
            Kind::Status276 => "276",
        }
    }

    /// GS01 for this transaction.
    pub fn functional_id(self) -> &'static str {
        match self {
            Kind::Claim837P | Kind::Claim837I => "HC",
            Kind::Remittance835 => "HP",
            Kind::Ack999 => "FA",
            Kind::ClaimAck277CA | Kind::Status277 => "HN",
            Kind::Eligibility270 => "HS",
            Kind::Eligibility271 => "HB",
            Kind::Status276 => "HR",
        }
    }
}

/// One guide: its GS08/ST03 identifier and the kinds it may carry (the
/// X279 and X212 guides cover a request and its response). The
/// HIPAA-named guides first, then their errata and base versions, then the
/// 004010 predecessors (replaced in 2012, still seen in old test files;
/// they check the same way).
const GUIDES: &[(&[u8], &[Kind])] = &[
    (b"005010X222A1", &[Kind::Claim837P]),
    (b"005010X223A2", &[Kind::Claim837I]),
    (b"005010X221A1", &[Kind::Remittance835]),
    (b"005010X231A1", &[Kind::Ack999]),
    (b"005010X214", &[Kind::ClaimAck277CA]),
    (
        b"005010X279A1",
        &[Kind::Eligibility270, Kind::Eligibility271],
    ),
    (b"005010X212", &[Kind::Status276, Kind::Status277]),
    (b"005010X222", &[Kind::Claim837P]),
    (b"005010X222A2", &[Kind::Claim837P]),
    (b"005010X223", &[Kind::Claim837I]),
    (b"005010X223A1", &[Kind::Claim837I]),
    (b"005010X223A3", &[Kind::Claim837I]),
    (b"005010X221", &[Kind::Remittance835]),
    (b"005010X231", &[Kind::Ack999]),
    (b"005010X279", &[Kind::Eligibility270, Kind::Eligibility271]),
    (b"004010X098A1", &[Kind::Claim837P]),
    (b"004010X096A1", &[Kind::Claim837I]),
    (b"004010X091A1", &[Kind::Remittance835]),
    (
        b"004010X092A1",
        &[Kind::Eligibility270, Kind::Eligibility271],
    ),
    (b"004010X093A1", &[Kind::Status276, Kind::Status277]),
];

/// True when `gs08` names a guide this crate knows.
pub fn is_known(gs08: &[u8]) -> bool {
    GUIDES.iter().any(|(id, _)| *id == gs08)
}

/// The kind a transaction set `st01` is under guide `gs08`, if the pair
/// is consistent.
pub fn kind_of(gs08: &[u8], st01: &[u8]) -> Option<Kind> {
    GUIDES
        .iter()
        .find(|(id, _)| *id == gs08)?
        .1
        .iter()
        .copied()
        .find(|k| k.transaction_set().as_bytes() == st01)
}

/// True when functional identifier `gs01` fits guide `gs08`.
pub fn functional_id_fits(gs08: &[u8], gs01: &[u8]) -> bool {
    GUIDES
        .iter()
        .find(|(id, _)| *id == gs08)
        .is_some_and(|(_, kinds)| kinds.iter().any(|k| k.functional_id().as_bytes() == gs01))
}

/// True for a transaction set id this crate knows at all (any guide).
pub fn is_known_transaction(st01: &[u8]) -> bool {
    matches!(
        st01,
        b"837" | b"835" | b"999" | b"277" | b"270" | b"271" | b"276"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs() {
        assert_eq!(kind_of(b"005010X222A1", b"837"), Some(Kind::Claim837P));
        assert_eq!(kind_of(b"005010X223A2", b"837"), Some(Kind::Claim837I));
        assert_eq!(kind_of(b"005010X279A1", b"271"), Some(Kind::Eligibility271));
        assert_eq!(kind_of(b"005010X214", b"277"), Some(Kind::ClaimAck277CA));
        assert_eq!(kind_of(b"005010X212", b"277"), Some(Kind::Status277));
        assert_eq!(kind_of(b"005010X221A1", b"837"), None);
        assert!(functional_id_fits(b"005010X221A1", b"HP"));
        assert!(!functional_id_fits(b"005010X221A1", b"HC"));
        assert!(functional_id_fits(b"005010X279A1", b"HB"));
        assert!(!is_known(b"005010X999"));
    }
}
