//! How the journal keeps one message: its retention and what a reused
//! de-dup key does. A source picks them per message
//! ([`crate::Journal::append_with`], [`crate::Journal::append_batch`]);
//! [`crate::Journal::append`] uses the defaults, which are the journal's
//! behaviour from before policies existed.

/// How long a message's record (and its de-dup entry) is kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Retention {
    /// Kept after delivery until the retention pass prunes it (older than
    /// the configured retention and held by no outbox or dead letter).
    #[default]
    Default,
    /// Removed in the commit that delivers its last outbox entry, or in its
    /// own append if it has none (then it is never stored). A dead letter
    /// holds it until replayed (then delivered) or purged (then removed).
    /// Released messages are counted (`released`) and audited (`released`).
    ///
    /// `keep_dedup`: its de-dup entry stays, with its length, SHA-256 and
    /// ACK (not its bytes), so a retransmission is still answered as a
    /// `Duplicate` and other bytes under its key as a reuse; the retention
    /// pass removes that entry once it is older than the retention.
    /// Without it the de-dup entry goes with the record: the same bytes
    /// sent again are a new message.
    UntilDelivered { keep_dedup: bool },
}

/// What an append does when its de-dup key is already journaled with
/// different bytes (the sender reused a control id).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum KeyReuse {
    /// Store it as a new message, audit `control_id_reuse`, and point the
    /// de-dup entry at it (HL7: senders do reuse MSH-10).
    #[default]
    StoreNew,
    /// Store nothing and answer [`crate::Appended::KeyReused`] with the id
    /// already holding the key (counted as `key_reuses_refused`; the caller
    /// decides what to do with the input, e.g. quarantine it). X12: a
    /// duplicate ISA13 per sender/receiver pair is refused, while the same
    /// file dropped again is still a `Duplicate`.
    Refuse,
}

/// The policy of one appended message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    pub retention: Retention,
    pub key_reuse: KeyReuse,
}
