//! A minimal DER reader and writer: just enough to find the
//! SubjectPublicKeyInfo in an X.509 certificate (for SPKI pins) and to
//! unwrap / wrap private keys (PKCS#8 ⇄ PKCS#1 / SEC1) for the JWT signer.
//!
//! Pure, bounds-checked, no allocation on the read side. Only definite
//! lengths (DER forbids the indefinite form) and single-byte tags (every tag
//! we walk over in certificates and keys is one byte) are accepted.

/// One TLV: its tag, its content and the whole encoding (tag + length + content).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    pub tag: u8,
    pub content: &'a [u8],
    pub whole: &'a [u8],
}

pub const SEQUENCE: u8 = 0x30;
pub const INTEGER: u8 = 0x02;
pub const OCTET_STRING: u8 = 0x04;
pub const OID: u8 = 0x06;
pub const CONTEXT_0: u8 = 0xA0;

/// Reads the TLV at the start of `input`; returns it and the rest.
pub fn read(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), &'static str> {
    let (&tag, rest) = input.split_first().ok_or("truncated DER: no tag")?;
    if tag & 0x1F == 0x1F {
        return Err("unsupported multi-byte DER tag");
    }
    let (&first, mut rest) = rest.split_first().ok_or("truncated DER: no length")?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7F);
        if n == 0 || n > 4 {
            return Err("unsupported DER length encoding");
        }
        if rest.len() < n {
            return Err("truncated DER length");
        }
        let mut len = 0usize;
        for &b in &rest[..n] {
            len = (len << 8) | usize::from(b);
        }
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return Err("truncated DER content");
    }
    let header_len = input.len() - rest.len();
    let tlv = Tlv {
        tag,
        content: &rest[..len],
        whole: &input[..header_len + len],
    };
    Ok((tlv, &rest[len..]))
}

/// Reads a TLV that must carry `tag`.
pub fn expect<'a>(
    input: &'a [u8],
    tag: u8,
    what: &'static str,
) -> Result<(Tlv<'a>, &'a [u8]), &'static str> {
    let (tlv, rest) = read(input)?;
    if tlv.tag != tag {
        return Err(what);
    }
    Ok((tlv, rest))
}

/// The whole DER encoding of the SubjectPublicKeyInfo of an X.509 certificate.
///
/// Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature }
/// TBSCertificate ::= SEQUENCE { [0] version OPTIONAL, serialNumber,
///   signature, issuer, validity, subject, subjectPublicKeyInfo, ... }
pub fn certificate_spki(cert: &[u8]) -> Result<&[u8], &'static str> {
    let (certificate, _) = expect(cert, SEQUENCE, "certificate is not a DER SEQUENCE")?;
    let (tbs, _) = expect(
        certificate.content,
        SEQUENCE,
        "tbsCertificate is not a SEQUENCE",
    )?;
    let mut rest = tbs.content;
    let (first, after) = read(rest)?;
    if first.tag == CONTEXT_0 {
        rest = after; // explicit version
    }
    // serialNumber, signature, issuer, validity, subject
    for _ in 0..5 {
        let (_, after) = read(rest)?;
        rest = after;
    }
    let (spki, _) = expect(rest, SEQUENCE, "subjectPublicKeyInfo is not a SEQUENCE")?;
    Ok(spki.whole)
}

/// The notAfter of an X.509 certificate, in seconds since the Unix epoch
/// (negative before 1970). Validity ::= SEQUENCE { notBefore, notAfter },
/// each a UTCTime (YYMMDDHHMMSSZ, years 1950–2049) or GeneralizedTime
/// (YYYYMMDDHHMMSSZ), as RFC 5280 §4.1.2.5 requires.
pub fn certificate_not_after(cert: &[u8]) -> Result<i64, &'static str> {
    // After serialNumber, signature, issuer.
    let rest = tbs_field(cert, 3)?;
    let (validity, _) = expect(rest, SEQUENCE, "validity is not a SEQUENCE")?;
    let (_not_before, after) = read(validity.content)?;
    let (not_after, _) = read(after)?;
    der_time(not_after.tag, not_after.content)
}

/// The tbsCertificate from its `skip`-th field on (after the optional
/// `[0]` version, which is not counted).
fn tbs_field(cert: &[u8], skip: usize) -> Result<&[u8], &'static str> {
    let (certificate, _) = expect(cert, SEQUENCE, "certificate is not a DER SEQUENCE")?;
    let (tbs, _) = expect(
        certificate.content,
        SEQUENCE,
        "tbsCertificate is not a SEQUENCE",
    )?;
    let mut rest = tbs.content;
    let (first, after) = read(rest)?;
    if first.tag == CONTEXT_0 {
        rest = after;
    }
    for _ in 0..skip {
        let (_, after) = read(rest)?;
        rest = after;
    }
    Ok(rest)
}

/// The subject's common name (the last CN, OID 2.5.4.3) of an X.509
/// certificate, as text; `None` when it has none. For naming who
/// presented a client certificate (the status page's audit trail).
pub fn certificate_subject_cn(cert: &[u8]) -> Result<Option<String>, &'static str> {
    const CN: &[u8] = &[0x55, 0x04, 0x03];
    // After serialNumber, signature, issuer, validity.
    let rest = tbs_field(cert, 4)?;
    let (subject, _) = expect(rest, SEQUENCE, "subject is not a SEQUENCE")?;
    let mut found = None;
    let mut rdns = subject.content;
    while !rdns.is_empty() {
        let (rdn, after) = read(rdns)?;
        rdns = after;
        let mut atvs = rdn.content;
        while !atvs.is_empty() {
            let (atv, after) = expect(atvs, SEQUENCE, "subject attribute is not a SEQUENCE")?;
            atvs = after;
            let (oid, value) = expect(atv.content, OID, "subject attribute has no type")?;
            if oid.content == CN {
                let (v, _) = read(value)?;
                found = Some(String::from_utf8_lossy(v.content).into_owned());
            }
        }
    }
    Ok(found)
}

const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

fn der_time(tag: u8, text: &[u8]) -> Result<i64, &'static str> {
    let digits = |s: &[u8]| -> Result<i64, &'static str> {
        s.iter().try_fold(0i64, |acc, b| {
            if b.is_ascii_digit() {
                Ok(acc * 10 + i64::from(b - b'0'))
            } else {
                Err("certificate time has a non-digit")
            }
        })
    };
    let (year, rest) = match tag {
        UTC_TIME if text.len() == 13 => {
            let yy = digits(&text[..2])?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &text[2..])
        }
        GENERALIZED_TIME if text.len() == 15 => (digits(&text[..4])?, &text[4..]),
        _ => return Err("certificate time is neither UTCTime nor GeneralizedTime in DER form"),
    };
    if rest.last() != Some(&b'Z') {
        return Err("certificate time is not in UTC (Z)");
    }
    let (month, day) = (digits(&rest[0..2])?, digits(&rest[2..4])?);
    let (h, m, sec) = (
        digits(&rest[4..6])?,
        digits(&rest[6..8])?,
        digits(&rest[8..10])?,
    );
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 {
        return Err("certificate time is out of range");
    }
    Ok(days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + sec)
}

/// (year, month, day) → days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A PKCS#8 PrivateKeyInfo taken apart: the algorithm OID, its parameters
/// (the whole TLV, e.g. the named curve OID) and the inner private key.
pub struct Pkcs8<'a> {
    pub algorithm: &'a [u8],
    pub parameters: Option<&'a [u8]>,
    pub private_key: &'a [u8],
}

pub fn parse_pkcs8(der: &[u8]) -> Result<Pkcs8<'_>, &'static str> {
    let (info, _) = expect(der, SEQUENCE, "PKCS#8 key is not a SEQUENCE")?;
    let (_version, rest) = expect(info.content, INTEGER, "PKCS#8 version missing")?;
    let (alg, rest) = expect(rest, SEQUENCE, "PKCS#8 algorithm missing")?;
    let (oid, params) = expect(alg.content, OID, "PKCS#8 algorithm OID missing")?;
    let parameters = if params.is_empty() {
        None
    } else {
        Some(read(params)?.0.whole)
    };
    let (key, _) = expect(rest, OCTET_STRING, "PKCS#8 private key missing")?;
    Ok(Pkcs8 {
        algorithm: oid.content,
        parameters,
        private_key: key.content,
    })
}

/// The named-curve parameters (whole OID TLV) of a SEC1 ECPrivateKey, if it
/// carries them: ECPrivateKey ::= SEQUENCE { version, privateKey OCTET
/// STRING, [0] parameters OPTIONAL, [1] publicKey OPTIONAL }.
pub fn sec1_curve(der: &[u8]) -> Result<Option<&[u8]>, &'static str> {
    let (key, _) = expect(der, SEQUENCE, "EC private key is not a SEQUENCE")?;
    let (_version, rest) = expect(key.content, INTEGER, "EC private key version missing")?;
    let (_private, mut rest) = expect(rest, OCTET_STRING, "EC private key missing")?;
    while !rest.is_empty() {
        let (tlv, after) = read(rest)?;
        if tlv.tag == CONTEXT_0 {
            return Ok(Some(
                expect(tlv.content, OID, "EC parameters are not a named curve")?
                    .0
                    .whole,
            ));
        }
        rest = after;
    }
    Ok(None)
}

/// Encodes one TLV.
pub fn encode(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// id-ecPublicKey (1.2.840.10045.2.1), OID content bytes.
pub const OID_EC_PUBLIC_KEY: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
/// rsaEncryption (1.2.840.113549.1.1.1), OID content bytes.
pub const OID_RSA_ENCRYPTION: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01];
/// secp384r1 (1.3.132.0.34), whole OID TLV.
pub const CURVE_P384: &[u8] = &[0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x22];
/// prime256v1 (1.2.840.10045.3.1.7), whole OID TLV.
pub const CURVE_P256: &[u8] = &[0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];

/// Wraps a SEC1 ECPrivateKey into PKCS#8 (what ring and jsonwebtoken accept).
pub fn sec1_to_pkcs8(sec1: &[u8], curve: &[u8]) -> Vec<u8> {
    let mut alg = encode(OID, OID_EC_PUBLIC_KEY);
    alg.extend_from_slice(curve);
    let mut body = encode(INTEGER, &[0]);
    body.extend_from_slice(&encode(SEQUENCE, &alg));
    body.extend_from_slice(&encode(OCTET_STRING, sec1));
    encode(SEQUENCE, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_times() {
        assert_eq!(der_time(UTC_TIME, b"700101000000Z"), Ok(0));
        assert_eq!(der_time(UTC_TIME, b"491231235959Z"), Ok(2_524_607_999));
        assert_eq!(
            der_time(GENERALIZED_TIME, b"20380119031408Z"),
            Ok(2_147_483_648)
        );
        assert_eq!(
            der_time(GENERALIZED_TIME, b"19500101000000Z"),
            Ok(-631_152_000)
        );
        assert!(der_time(UTC_TIME, b"701301000000Z").is_err());
        assert!(der_time(UTC_TIME, b"7001010000Z").is_err());
    }

    #[test]
    fn lengths_round_trip() {
        for len in [0usize, 1, 127, 128, 255, 256, 70_000] {
            let content = vec![7u8; len];
            let enc = encode(OCTET_STRING, &content);
            let (tlv, rest) = read(&enc).unwrap();
            assert!(rest.is_empty());
            assert_eq!(tlv.content.len(), len);
            assert_eq!(tlv.whole, &enc[..]);
        }
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let enc = encode(SEQUENCE, &[1, 2, 3, 4]);
        for cut in 0..enc.len() {
            assert!(read(&enc[..cut]).is_err());
            assert!(certificate_spki(&enc[..cut]).is_err());
        }
        assert!(read(&[0x30, 0x85, 1, 1, 1, 1, 1]).is_err());
    }

    #[test]
    fn sec1_wrap_parses_back() {
        let mut sec1_body = encode(INTEGER, &[1]);
        sec1_body.extend(encode(OCTET_STRING, &[9; 48]));
        sec1_body.extend(encode(CONTEXT_0, CURVE_P384));
        let sec1 = encode(SEQUENCE, &sec1_body);
        assert_eq!(sec1_curve(&sec1).unwrap(), Some(CURVE_P384));
        let p8 = sec1_to_pkcs8(&sec1, CURVE_P384);
        let parsed = parse_pkcs8(&p8).unwrap();
        assert_eq!(parsed.algorithm, OID_EC_PUBLIC_KEY);
        assert_eq!(parsed.parameters, Some(CURVE_P384));
        assert_eq!(parsed.private_key, &sec1[..]);
    }
}
