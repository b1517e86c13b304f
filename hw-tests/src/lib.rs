//! Hardware-level test support (see README).
