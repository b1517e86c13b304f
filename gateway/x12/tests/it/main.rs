//! The x12 crate's integration tests, one binary: `cargo test -p x12`
//! (`cargo test -p x12 --test it -- golden::` runs one module). Shared
//! fixtures are in `support/`.

mod support;

mod corpus;
mod golden;
mod props;
mod pyx12_valid;
