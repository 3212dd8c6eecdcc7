//! Webhooks: what a delivery from a forge turns into. Pure: no I/O, so every case is a unit
//! test; `api::hooks` does the HTTP side (headers, status codes, the store).
//!
//! - `signature` checks the HMAC-SHA256 a forge computes with the shared secret over the exact
//!   body it sent.
//! - `gitea` turns a push or pull-request delivery into a queue request, or says why not.
//! - A queue's id is derived from the repository and the commit, so a redelivery (which Gitea
//!   gives a new delivery id), a push and a pull-request update of the same commit, or a tag on
//!   an already queued commit fold into one queue instead of running twice.

pub mod gitea;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::model::QueueId;

/// Whether `signature` (lowercase or uppercase hex, as Gitea sends it) is the HMAC-SHA256 of
/// `body` under `secret`. Compared in constant time.
pub fn signature_matches(secret: &[u8], body: &[u8], signature: &str) -> bool {
    let Ok(tag) = hex::decode(signature.trim()) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&tag).is_ok()
}

/// The hex HMAC-SHA256 of `body` under `secret`: what a forge sends (tests, tools).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// `<owner>-<name>-<first 12 of the commit>`, made a valid queue id: one queue per commit of a
/// repository.
pub fn queue_id(full_name: &str, commit: &str) -> QueueId {
    let short: String = commit.chars().take(12).collect();
    let mut name = String::new();
    for c in full_name.chars() {
        let c = if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
            c
        } else {
            '-'
        };
        name.push(c);
    }
    // An id starts with a letter or digit.
    let name = name.trim_start_matches(|c: char| !c.is_ascii_alphanumeric());
    let name = name.trim_end_matches('-');
    // Room for "-" and the commit within the 64 characters of an id.
    let name: String = name.chars().take(64 - 1 - short.len()).collect();
    let name = name.trim_end_matches('-');
    let id = if name.is_empty() {
        format!("commit-{short}")
    } else {
        format!("{name}-{short}")
    };
    QueueId::parse(&id).expect("letters, digits, '_' and '-' make a valid id")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_over_the_exact_bytes() {
        let body = b"{\n  \"ref\": \"refs/heads/main\"\n}";
        let sig = sign(b"s3cret", body);
        assert_eq!(sig.len(), 64);
        assert!(signature_matches(b"s3cret", body, &sig));
        assert!(signature_matches(b"s3cret", body, &sig.to_uppercase()));
        assert!(!signature_matches(b"other", body, &sig));
        assert!(!signature_matches(
            b"s3cret",
            b"{\"ref\":\"refs/heads/main\"}",
            &sig
        ));
        assert!(!signature_matches(b"s3cret", body, ""));
        assert!(!signature_matches(b"s3cret", body, "zz"));
        assert!(!signature_matches(b"s3cret", body, &sig[..62]));
    }

    #[test]
    fn queue_ids_are_valid_and_stable() {
        let sha = "3f2a9c1b7d0e5a6b8c9d0e1f2a3b4c5d6e7f8091";
        assert_eq!(
            queue_id("team/fw-app", sha).as_str(),
            "team-fw-app-3f2a9c1b7d0e"
        );
        assert_eq!(
            queue_id("team/fw.app", sha).as_str(),
            "team-fw-app-3f2a9c1b7d0e"
        );
        assert_eq!(queue_id("..", sha).as_str(), "commit-3f2a9c1b7d0e");
        assert_eq!(queue_id("_team/fw", sha).as_str(), "team-fw-3f2a9c1b7d0e");
        assert_eq!(queue_id("-_-/x", sha).as_str(), "x-3f2a9c1b7d0e");
        let long = format!("{}/{}", "o".repeat(40), "n".repeat(40));
        let id = queue_id(&long, sha);
        assert!(id.as_str().len() <= 64, "{id}");
        assert!(id.as_str().ends_with("-3f2a9c1b7d0e"));
    }
}
