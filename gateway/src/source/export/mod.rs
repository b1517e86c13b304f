//! The FHIR Bulk Data `$export` client (IG STU3, tolerant of STU2 and the
//! STU4 draft): a source that pulls a tenant's population out of an EHR's
//! FHIR server, on a schedule or on `gateway export run`, incrementally by
//! `_since`, into the folder sink `<output>/<tenant>/<transactionTime>/`.
//!
//! Pure parts (`fn(&[u8]) -> ...`, fuzzable): [`manifest`] (the completion
//! manifest), [`poll`] (Retry-After, the poll schedule, OperationOutcome
//! classification, backoff), [`body`] (a download's bytes, inflated if
//! gzip, to lines), [`ndjson`] (the line splitter and the line
//! check, one pass over the line with [`json_check`]), [`tag`] (the tenant
//! `meta.tag`, spliced into the line's bytes from the spans that pass
//! found), [`json_scan`], [`schedule`].
//!
//! The job ([`job`]): kick-off → store the status URL durably (the
//! crash-resume handle; nothing else happens before) → poll → store the
//! manifest's files → download each (streamed: body → gzip → lines →
//! check + tag → a temporary file; atomically renamed when whole, then
//! marked done in the journal's state store) → `manifest.json` and the
//! `done` marker → the next `since` = `transactionTime` → DELETE the status
//! URL. A restart resumes the stored job: it never kicks off a second one
//! while the first status URL is live, skips finished files, and re-fetches
//! a file cut mid-way from its start (servers need not support Range): a
//! file appears in the sink only whole, so no line is written twice or lost.
//! [`runner`] schedules the jobs (one at a time per tenant, a global limit)
//! and answers the admin socket.

pub mod body;
pub mod error_summary;
pub mod http;
pub mod job;
pub mod journal_sink;
pub mod json_check;
pub mod json_scan;
pub mod manifest;
pub mod namespace;
pub mod ndjson;
pub mod poll;
pub mod runner;
pub mod schedule;
pub mod sink;
pub mod tag;
