//! Shared by the journal tests: the messages they append (`messages`, also
//! compiled into the re-exec child), the child itself (`child`), and a
//! journal config in a test directory.

pub mod child;
pub mod messages;

use std::path::Path;

use journal::{Appended, Journal, JournalConfig, NewMessage};

pub use messages::{message, nth, raw, sized};

/// A journal in `dir/journal` with the default settings.
pub fn cfg(dir: &Path) -> JournalConfig {
    JournalConfig::new(dir.join("journal"))
}

/// Appends `m`, which must be stored (not a duplicate); returns its id.
pub async fn stored(j: &Journal, m: NewMessage) -> u64 {
    match j.append(m).await {
        Ok(Appended::Stored { id }) => id,
        other => panic!("expected Stored, got {other:?}"),
    }
}
