//! The hl7 crate's integration tests, one binary: `cargo test -p hl7`
//! (`cargo test -p hl7 --test it -- ack::` runs one module). The shared
//! corpus comes from `test_support::paths`.

mod ack;
mod corpus;
mod parse;
mod props;
