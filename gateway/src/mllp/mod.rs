//! MLLP: the framing codec (pure), the listener (plain TCP and TLS share one
//! connection handler), and the client used by `gateway send`.

pub mod client;
pub mod codec;
pub mod listener;
pub mod tls;

/// Start of block (VT).
pub const SB: u8 = 0x0B;
/// End of block (FS), always followed by CR.
pub const EB: u8 = 0x1C;
pub const CR: u8 = 0x0D;

/// Wrap a payload in an MLLP frame.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 3);
    out.push(SB);
    out.extend_from_slice(payload);
    out.push(EB);
    out.push(CR);
    out
}
