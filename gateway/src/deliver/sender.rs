//! One enum over the destination kinds, so the outbox driver is the same
//! for all of them.

use super::folder::FolderSender;
use super::http_sender::HttpSender;
use super::mllp_sender::MllpSender;
use super::payload::{Prepared, Wire};
use super::verdict::Verdict;
use crate::config::{DestinationConfig, DestinationKind};

pub enum Sender {
    Folder(FolderSender),
    Http(HttpSender),
    Mllp(MllpSender),
}

impl Sender {
    pub fn build(d: &DestinationConfig) -> Result<(Sender, Wire), crate::Error> {
        let p = &d.delivery;
        Ok(match &d.kind {
            DestinationKind::Folder { path } => (
                Sender::Folder(FolderSender { path: path.clone() }),
                Wire::Hl7,
            ),
            DestinationKind::Http(h) => {
                (Sender::Http(HttpSender::new(h, false, p)?), h.format.into())
            }
            DestinationKind::Fhir(h) => (Sender::Http(HttpSender::new(h, true, p)?), Wire::Fhir),
            DestinationKind::Mllp(m) => (Sender::Mllp(MllpSender::new(m, p)?), Wire::Hl7),
        })
    }

    /// Access tokens fetched so far (0 for destinations without OAuth).
    pub fn token_refreshes(&self) -> u64 {
        match self {
            Sender::Http(s) => s.token_refreshes(),
            _ => 0,
        }
    }

    pub async fn send(&self, p: &Prepared) -> Verdict {
        match self {
            Sender::Folder(s) => s.send(p).await,
            Sender::Http(s) => s.send(p).await,
            Sender::Mllp(s) => s.send(p).await,
        }
    }
}
