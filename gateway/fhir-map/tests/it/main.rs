//! The fhir-map crate's integration tests, one binary: `cargo test -p
//! fhir-map` (`cargo test -p fhir-map --test it -- golden::` runs one
//! module). Shared fixtures are in `support/`.

mod support;

mod adt_breadth;
mod breadth;
mod exact_decimals;
mod golden;
mod invariants;
mod mapping_docs;
mod merges;
mod orders_breadth;
mod profiles;
mod provenance;
mod roundtrip;
mod siu_timing;
mod validate;
