//! The fhir-map crate's integration tests, one binary: `cargo test -p
//! fhir-map` (`cargo test -p fhir-map --test it -- golden::` runs one
//! module). Shared fixtures are in `support/`.

mod support;

mod bytes;
mod golden;
mod roundtrip;
mod validate;
