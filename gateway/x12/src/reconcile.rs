//! 835 balancing, in exact decimals:
//!
//! - per service line: SVC02 (charge) − ΣCAS (its adjustments) = SVC03 (paid);
//! - per claim: CLP03 (charge) − ΣCAS (claim and service-line adjustments)
//!   = CLP04 (paid);
//! - per transaction: BPR02 (payment) = ΣCLP04 − ΣPLB adjustment amounts
//!   (a positive PLB amount reduces the payment).
//!
//! [`reconcile_835`] reports every mismatch; the x12-json transform carries
//! the same verdicts (`balanced`) per line, per claim and in `totals`.

use crate::decimal::Decimal;
use crate::document::TransactionSet;
use crate::reader::{Position, Segment};

/// CAS amounts: CAS03, 06, 09, 12, 15, 18.
pub const CAS_AMOUNTS: [usize; 6] = [3, 6, 9, 12, 15, 18];
/// PLB amounts: PLB04, 06, 08, 10, 12, 14.
pub const PLB_AMOUNTS: [usize; 6] = [4, 6, 8, 10, 12, 14];

/// One claim's balance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimBalance {
    /// 0-based index of the claim in its transaction set.
    pub index: usize,
    /// Where its CLP is.
    pub pos: Position,
    /// CLP03.
    pub charge: Option<Decimal>,
    /// CLP04.
    pub paid: Option<Decimal>,
    /// ΣCAS, claim and service-line level.
    pub adjustments: Decimal,
    /// CLP03 − ΣCAS = CLP04.
    pub balanced: bool,
    /// Positions of service lines (SVC) that do not balance.
    pub unbalanced_lines: Vec<Position>,
    /// Positions of amounts that are not decimals.
    pub unreadable: Vec<Position>,
}

/// A transaction set's balance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reconciliation {
    /// BPR02.
    pub payment: Option<Decimal>,
    /// ΣCLP04.
    pub claims_paid: Decimal,
    /// ΣPLB adjustment amounts.
    pub provider_adjustments: Decimal,
    /// ΣCLP04 − ΣPLB.
    pub expected_payment: Decimal,
    /// BPR02 = ΣCLP04 − ΣPLB.
    pub payment_balanced: bool,
    /// Every claim.
    pub claims: Vec<ClaimBalance>,
    /// Positions of header or PLB amounts that are not decimals.
    pub unreadable: Vec<Position>,
}

impl Reconciliation {
    /// True when the payment, every claim and every line balance.
    pub fn balanced(&self) -> bool {
        self.payment_balanced
            && self
                .claims
                .iter()
                .all(|c| c.balanced && c.unbalanced_lines.is_empty())
    }

    /// One line per mismatch, naming positions and amounts (no names or
    /// identifiers), for a report or log.
    pub fn mismatches(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.payment_balanced {
            out.push(format!(
                "BPR02 {} differs from ΣCLP04 {} − ΣPLB {} = {}",
                self.payment
                    .map_or_else(|| "(missing)".to_string(), |p| p.to_string()),
                self.claims_paid,
                self.provider_adjustments,
                self.expected_payment
            ));
        }
        for c in &self.claims {
            if !c.balanced {
                out.push(format!(
                    "claim {} at {}: CLP03 {} − ΣCAS {} ≠ CLP04 {}",
                    c.index + 1,
                    c.pos,
                    show(c.charge),
                    c.adjustments,
                    show(c.paid)
                ));
            }
            for l in &c.unbalanced_lines {
                out.push(format!(
                    "claim {} service line at {l}: SVC02 − ΣCAS ≠ SVC03",
                    c.index + 1
                ));
            }
        }
        out
    }
}

fn show(d: Option<Decimal>) -> String {
    d.map_or_else(|| "(unreadable)".to_string(), |d| d.to_string())
}

/// Adds `v` to `sum` when it is a decimal; empty values add nothing; a
/// non-decimal records `pos` as unreadable.
fn add(sum: &mut Decimal, v: &[u8], pos: Position, unreadable: &mut Vec<Position>) {
    if v.is_empty() {
        return;
    }
    match Decimal::parse(v).and_then(|d| sum.checked_add(d)) {
        Some(s) => *sum = s,
        None => unreadable.push(pos),
    }
}

/// The sum of a CAS segment's amounts.
pub fn cas_total(cas: &Segment<'_>, unreadable: &mut Vec<Position>) -> Decimal {
    let e = cas.elements();
    let mut sum = Decimal::ZERO;
    for i in CAS_AMOUNTS {
        add(&mut sum, e.get(i), cas.pos, unreadable);
    }
    sum
}

/// The sum of a PLB segment's adjustment amounts.
pub fn plb_total(plb: &Segment<'_>, unreadable: &mut Vec<Position>) -> Decimal {
    let e = plb.elements();
    let mut sum = Decimal::ZERO;
    for i in PLB_AMOUNTS {
        add(&mut sum, e.get(i), plb.pos, unreadable);
    }
    sum
}

/// True when `charge − adjustments = paid` (all read).
fn balances(charge: Option<Decimal>, adjustments: Decimal, paid: Option<Decimal>) -> bool {
    match (charge, paid) {
        (Some(c), Some(p)) => c.checked_sub(adjustments) == Some(p),
        _ => false,
    }
}

/// Balances one claim from its segments (CLP first, up to the next
/// CLP/LX/PLB/SE, exclusive).
pub fn claim_balance(index: usize, segments: &[Segment<'_>]) -> ClaimBalance {
    let mut unreadable = Vec::new();
    let (pos, charge, paid) = match segments.first() {
        Some(clp) => {
            let e = clp.elements();
            let read = |v: &[u8], unreadable: &mut Vec<Position>| {
                let d = Decimal::parse(v);
                if d.is_none() {
                    unreadable.push(clp.pos);
                }
                d
            };
            let charge = read(e.get(3), &mut unreadable);
            let paid = read(e.get(4), &mut unreadable);
            (clp.pos, charge, paid)
        }
        None => (Position::default(), None, None),
    };
    let mut adjustments = Decimal::ZERO;
    let mut unbalanced_lines = Vec::new();
    // The open service line: its SVC and the sum of its CAS.
    let mut line: Option<(Segment<'_>, Decimal)> = None;
    let close_line = |line: Option<(Segment<'_>, Decimal)>, unbalanced: &mut Vec<Position>| {
        if let Some((svc, adj)) = line {
            let e = svc.elements();
            let charge = Decimal::parse(e.get(2));
            let paid = Decimal::parse(e.get(3));
            if !balances(charge, adj, paid) {
                unbalanced.push(svc.pos);
            }
        }
    };
    for seg in segments.iter().skip(1) {
        match seg.id() {
            b"SVC" => {
                close_line(line.take(), &mut unbalanced_lines);
                line = Some((*seg, Decimal::ZERO));
            }
            b"CAS" => {
                let t = cas_total(seg, &mut unreadable);
                adjustments = adjustments.checked_add(t).unwrap_or(adjustments);
                if let Some((_, adj)) = line.as_mut() {
                    *adj = adj.checked_add(t).unwrap_or(*adj);
                }
            }
            _ => {}
        }
    }
    close_line(line, &mut unbalanced_lines);
    ClaimBalance {
        index,
        pos,
        charge,
        paid,
        adjustments,
        balanced: balances(charge, adjustments, paid),
        unbalanced_lines,
        unreadable,
    }
}

/// Segments that end a claim in an 835.
pub fn ends_claim(id: &[u8]) -> bool {
    matches!(id, b"CLP" | b"LX" | b"PLB" | b"SE")
}

/// Balances an 835 transaction set.
pub fn reconcile_835(set: &TransactionSet<'_>) -> Reconciliation {
    let mut payment = None;
    let mut unreadable = Vec::new();
    let mut claims_paid = Decimal::ZERO;
    let mut provider_adjustments = Decimal::ZERO;
    let mut claims = Vec::new();
    let mut claim: Vec<Segment<'_>> = Vec::new();
    let finish = |claim: &mut Vec<Segment<'_>>, claims: &mut Vec<ClaimBalance>| {
        if !claim.is_empty() {
            claims.push(claim_balance(claims.len(), claim));
            claim.clear();
        }
    };
    for seg in set.body() {
        let id = seg.id();
        if ends_claim(id) {
            finish(&mut claim, &mut claims);
        }
        match id {
            b"BPR" if payment.is_none() => {
                payment = Decimal::parse(seg.element(2));
                if payment.is_none() {
                    unreadable.push(seg.pos);
                }
            }
            b"CLP" => {
                add(&mut claims_paid, seg.element(4), seg.pos, &mut unreadable);
                claim.push(seg);
            }
            b"PLB" => {
                let t = plb_total(&seg, &mut unreadable);
                provider_adjustments = provider_adjustments.checked_add(t).unwrap_or(t);
            }
            _ if !claim.is_empty() => claim.push(seg),
            _ => {}
        }
    }
    finish(&mut claim, &mut claims);
    let expected_payment = claims_paid
        .checked_sub(provider_adjustments)
        .unwrap_or(claims_paid);
    Reconciliation {
        payment,
        claims_paid,
        provider_adjustments,
        expected_payment,
        payment_balanced: payment == Some(expected_payment),
        claims,
        unreadable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{check, CheckOptions};

    const ISA: &str = "ISA*00*          *00*          *ZZ*PAYER          *ZZ*PROVIDER       *240102*1230*^*00501*000000001*0*T*:~";

    fn reconcile(body: &str) -> Reconciliation {
        let s = format!("{ISA}GS*HP*A*B*20240102*1230*1*X*005010X221A1~ST*835*0001~{body}SE*2*0001~GE*1*1~IEA*1*000000001~");
        let d = check(s.as_bytes(), &CheckOptions::default(), &());
        let set = &d.interchanges[0].groups[0].sets[0];
        reconcile_835(set)
    }

    #[test]
    fn balanced_remittance_with_plb_and_reversal() {
        let r = reconcile(
            "BPR*I*50.00*C*ACH~\
             CLP*A1*1*200*150*20*12~CAS*CO*45*30~SVC*HC:99213*200*150~CAS*CO*45*30~CAS*PR*2*20~\
             CLP*A2*22*-100*-80**12~CAS*CR*45*-20~\
             PLB*1234567890*20241231*WO:X1*-10*FB:X2*30~",
        );
        assert_eq!(r.claims_paid.to_string(), "70.00");
        assert_eq!(r.provider_adjustments.to_string(), "20.00");
        assert!(r.payment_balanced, "{:?}", r.mismatches());
        // Claim 1: the claim-level CO 30 plus the line's CO 30 and PR 20
        // are 80: 200 − 80 ≠ 150.
        assert!(!r.claims[0].balanced);
        assert!(r.claims[0].unbalanced_lines.is_empty());
        assert!(r.claims[1].balanced);
        assert!(!r.balanced());
        assert_eq!(r.mismatches().len(), 1, "{:?}", r.mismatches());
    }

    #[test]
    fn unbalanced_payment() {
        let r = reconcile("BPR*I*100*C*CHK~CLP*A1*1*100*90~CAS*CO*45*10~");
        assert!(!r.payment_balanced);
        assert!(r.claims[0].balanced);
        assert!(r.mismatches()[0].starts_with("BPR02 100.00 differs"));
    }
}
