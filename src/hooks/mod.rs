//! Webhooks: what a delivery from a forge turns into. Pure: no I/O, so every case is a unit
//! test; `api::hooks` does the HTTP side (headers, status codes, the store).
//!
//! - `signature` checks the HMAC-SHA256 a forge computes with the shared secret over the exact
//!   body it sent.
//! - `gitea` turns a push or pull-request delivery into a queue request, or says why not.
//! - A queue's id is derived from the repository, the commit and the environment, so a
//!   redelivery (which Gitea gives a new delivery id), a push and a pull-request update of the
//!   same commit, or a tag on an already queued commit fold into one queue per environment
//!   instead of running twice.

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

/// `<owner>-<name>-<first 12 of the commit>-<environment>`, made a valid queue id: one queue
/// per commit of a repository and environment. The name is shortened to fit an id; the
/// environment to 24 characters.
pub fn queue_id(full_name: &str, commit: &str, environment: &str) -> QueueId {
    let short: String = commit.chars().take(12).collect();
    let env: String = safe(environment).chars().take(24).collect();
    let env = env.trim_matches('-');
    let tail = if env.is_empty() {
        format!("-{short}")
    } else {
        format!("-{short}-{env}")
    };
    let name = safe(full_name);
    // An id starts with a letter or digit.
    let name = name.trim_start_matches(|c: char| !c.is_ascii_alphanumeric());
    let name = name.trim_end_matches('-');
    // Room for the commit and the environment within the 64 characters of an id.
    let name: String = name.chars().take(64 - tail.len()).collect();
    let name = name.trim_end_matches('-');
    let id = if name.is_empty() {
        format!("commit{tail}")
    } else {
        format!("{name}{tail}")
    };
    QueueId::parse(&id).expect("letters, digits, '_' and '-' make a valid id")
}

/// Whether `id` is the id of a webhook queue of `full_name` at `commit` in `environment`, or of
/// one of its re-runs (`<id>.r<N>`, any number of times; a re-run whose id had to be
/// shortened does not count).
pub fn is_webhook_id(id: &QueueId, full_name: &str, commit: &str, environment: &str) -> bool {
    let mut id = id.as_str();
    while let Some((base, n)) = id.rsplit_once(".r")
        && !n.is_empty()
        && n.chars().all(|c| c.is_ascii_digit())
    {
        id = base;
    }
    id == queue_id(full_name, commit, environment).as_str()
}

/// Letters, digits, `_` and `-`; anything else becomes `-`.
fn safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
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
        let id = |name: &str, env: &str| queue_id(name, sha, env).to_string();
        assert_eq!(id("team/fw-app", "esp32"), "team-fw-app-3f2a9c1b7d0e-esp32");
        assert_eq!(id("team/fw.app", "esp32"), "team-fw-app-3f2a9c1b7d0e-esp32");
        assert_eq!(id("..", "esp32"), "commit-3f2a9c1b7d0e-esp32");
        assert_eq!(id("_team/fw", "qemu.s3"), "team-fw-3f2a9c1b7d0e-qemu-s3");
        assert_eq!(id("-_-/x", "..."), "x-3f2a9c1b7d0e");
        let long = format!("{}/{}", "o".repeat(40), "n".repeat(40));
        let long = queue_id(&long, sha, &"e".repeat(40));
        assert!(long.as_str().len() <= 64, "{long}");
        assert!(
            long.as_str()
                .ends_with(&format!("-3f2a9c1b7d0e-{}", "e".repeat(24)))
        );
    }

    #[test]
    fn re_runs_of_a_webhook_queue_count_as_it() {
        let sha = "3f2a9c1b7d0e5a6b8c9d0e1f2a3b4c5d6e7f8091";
        let is = |id: &str| is_webhook_id(&QueueId::parse(id).unwrap(), "team/fw", sha, "esp32");
        assert!(is("team-fw-3f2a9c1b7d0e-esp32"));
        assert!(is("team-fw-3f2a9c1b7d0e-esp32.r1"));
        assert!(is("team-fw-3f2a9c1b7d0e-esp32.r12.r3"));
        assert!(!is("team-fw-3f2a9c1b7d0e-esp32.r"));
        assert!(!is("team-fw-3f2a9c1b7d0e-esp32.rx"));
        assert!(!is("team-fw-3f2a9c1b7d0e-esp32-2"));
        assert!(!is("team-fw-3f2a9c1b7d0e-esp"));
    }
}
