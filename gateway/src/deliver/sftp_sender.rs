//! The `sftp` destination: each message becomes one file in the server's
//! folder (clearinghouse claim drop). One attempt:
//!
//! 1. the final name comes from the stored message through the
//!    destination's `name_template` (`deliver::name_template`), so every
//!    retry, even after a crash, computes the same name;
//! 2. a final file of that name and the message's size already there is
//!    our own earlier upload whose "delivered" was not recorded: delivered;
//!    one of another size is someone else's file: dead letter, never
//!    overwritten;
//! 3. the temporary `.NAME.part` (a dot name: pollers and clearinghouses
//!    skip those) left by a crash mid-upload is removed, the bytes are
//!    written to it, synced with `fsync@openssh.com` where the server
//!    offers it, the handle closed, and only then renamed to the final name.
//!
//! So the folder never holds a truncated final file, and a file is there
//! at most once. Failures are the destination's, not the message's
//! (network, refused host key, rejected login, permissions): they retry
//! the whole destination, so its circuit opens and the outage alert fires
//! (a rejected password holds everything until an operator fixes it).

use tokio::io::AsyncWriteExt;

use super::name_template::{NameFacts, NameTemplate};
use super::payload::Prepared;
use super::verdict::Verdict;
use crate::config::{DeliveryPolicy, SftpDestination};
use crate::net::ssh_client::{
    is_not_found, remote_path, sftp_error, SessionCache, SftpConnection, SshError, SshTarget,
};

pub struct SftpSender {
    sessions: SessionCache,
    dir: String,
    template: NameTemplate,
}

impl SftpSender {
    pub fn new(dest: &SftpDestination, policy: &DeliveryPolicy) -> SftpSender {
        let target = SshTarget::new(&dest.endpoint, policy.connect_timeout, policy.timeout);
        SftpSender {
            sessions: SessionCache::new(target),
            dir: dest.endpoint.dir.clone(),
            template: dest.name_template.clone(),
        }
    }

    /// The final remote name of a message.
    pub fn final_name(&self, p: &Prepared) -> String {
        self.template.render(&NameFacts {
            id: p.message_id,
            control_id: &p.control_id,
            message_type: &p.message_type,
            received_at_ms: p.received_at_ms,
        })
    }

    pub async fn send(&self, p: &Prepared) -> Verdict {
        let conn = match self.sessions.get().await {
            Ok(c) => c,
            Err(e) => return destination_down(e),
        };
        match self.upload(&conn, p).await {
            Ok(v) => v,
            // The session may be broken: the next attempt reconnects.
            Err(e) => {
                self.sessions.discard(&conn).await;
                destination_down(e)
            }
        }
    }

    async fn upload(&self, c: &SftpConnection, p: &Prepared) -> Result<Verdict, SshError> {
        let t = self.sessions.target();
        let name = self.final_name(p);
        let final_path = remote_path(&self.dir, &name);
        let temp_path = remote_path(&self.dir, &format!(".{name}.part"));
        let size = p.body.len() as u64;
        let fail = |what: &str, path: &str, e: russh_sftp::client::error::Error| {
            sftp_error(t, what, path, e)
        };
        if let Some(found) = self.size_of(c, &final_path).await? {
            return Ok(already_there(&final_path, found, size));
        }
        match c.sftp.remove_file(temp_path.as_str()).await {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(fail("cannot remove the old temporary file", &temp_path, e)),
        }
        let mut file = c
            .sftp
            .create(temp_path.as_str())
            .await
            .map_err(|e| fail("cannot create", &temp_path, e))?;
        let io = |what: &'static str, e: std::io::Error| sftp_error(t, what, &temp_path, e);
        file.write_all(&p.body)
            .await
            .map_err(|e| io("cannot write", e))?;
        // Waits for every write's answer, then fsync@openssh.com if offered.
        file.flush().await.map_err(|e| io("cannot sync", e))?;
        file.close().await.map_err(|e| io("cannot close", e))?;
        match self.size_of(c, &temp_path).await? {
            Some(n) if n == size => {}
            other => {
                return Err(SshError::Sftp(format!(
                "sftp {}: {temp_path} holds {} bytes after the upload of {size}: not renaming it",
                t.label(),
                other.map_or("no".into(), |n| n.to_string())
            )))
            }
        }
        if let Err(e) = c.sftp.rename(temp_path.as_str(), final_path.as_str()).await {
            // A concurrent or earlier attempt may have put it there first.
            if let Some(found) = self.size_of(c, &final_path).await? {
                let _ = c.sftp.remove_file(temp_path.as_str()).await;
                return Ok(already_there(&final_path, found, size));
            }
            return Err(fail("cannot rename the temporary file to", &final_path, e));
        }
        Ok(Verdict::Delivered)
    }

    /// The size of a remote file, `None` if there is none.
    async fn size_of(&self, c: &SftpConnection, path: &str) -> Result<Option<u64>, SshError> {
        match c.sftp.metadata(path).await {
            Ok(m) => Ok(Some(m.size.unwrap_or(0))),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(sftp_error(self.sessions.target(), "cannot stat", path, e)),
        }
    }
}

/// A final file is already there: ours (same size) or a stranger's.
fn already_there(path: &str, found: u64, size: u64) -> Verdict {
    if found == size {
        Verdict::Delivered
    } else {
        Verdict::Reject {
            reason: format!(
                "the server already has {path} with {found} bytes and this message is {size} bytes: \
                 not overwriting another file (check name_template gives unique names)"
            ),
        }
    }
}

/// Network, host key, login or folder trouble: the whole destination waits.
fn destination_down(e: SshError) -> Verdict {
    let reason = if e.needs_operator() {
        format!("{e} (held until fixed)")
    } else {
        e.to_string()
    };
    Verdict::Retry {
        reason,
        retry_after: None,
        whole_destination: true,
        answered: false,
    }
}
