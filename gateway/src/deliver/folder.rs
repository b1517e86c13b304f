//! The `folder` destination: each message becomes `<path>/<id>.hl7`, written
//! atomically (temp file, fsync, rename, fsync the directory) and only then
//! marked delivered. Re-delivering after a crash rewrites the same file name,
//! so the folder holds every message exactly once.

use std::path::PathBuf;

use super::payload::Prepared;
use super::verdict::Verdict;
use journal::durable_fs;

pub struct FolderSender {
    pub path: PathBuf,
}

impl FolderSender {
    pub async fn send(&self, p: &Prepared) -> Verdict {
        let dir = self.path.clone();
        let name = format!("{}.hl7", p.message_id);
        let body = p.body.clone();
        let r = tokio::task::spawn_blocking(move || {
            durable_fs::create_dir_all(&dir)?;
            durable_fs::write_atomically(&dir, &name, &body)
        })
        .await;
        match r {
            Ok(Ok(())) => Verdict::Delivered,
            // Disk full or permissions: the folder's problem, not the message's.
            Ok(Err(e)) => Verdict::Retry {
                reason: format!("cannot write to {}: {e}", self.path.display()),
                retry_after: None,
                whole_destination: true,
                answered: false,
            },
            Err(e) => Verdict::retry(format!("writer task failed: {e}")),
        }
    }
}
