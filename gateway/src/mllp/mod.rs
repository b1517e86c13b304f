//! MLLP sockets: the listener (plain TCP and TLS share one connection
//! handler) and the client used by `gateway send`. The framing codec is
//! `hl7::mllp` (pure).

pub mod client;
pub mod listener;
pub mod tls;
