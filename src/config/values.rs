//! Value types of the configuration file: durations, sizes, console locations.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::model::parse_duration;

/// Where a board's serial console is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsoleKind {
    /// The simulator's own stdin/stdout.
    Stdio,
    /// A Unix socket the simulator listens on; the path is relative to the checkout.
    Unix(PathBuf),
    /// A TCP address the simulator listens on, e.g. `127.0.0.1:5555`.
    Tcp(String),
}

impl std::str::FromStr for ConsoleKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad =
            || format!("invalid console {s:?}: use \"stdio\", \"unix:PATH\" or \"tcp:HOST:PORT\"");
        if s == "stdio" {
            Ok(ConsoleKind::Stdio)
        } else if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                Err(bad())
            } else {
                Ok(ConsoleKind::Unix(PathBuf::from(path)))
            }
        } else if let Some(addr) = s.strip_prefix("tcp:") {
            if addr
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
            {
                Ok(ConsoleKind::Tcp(addr.to_owned()))
            } else {
                Err(bad())
            }
        } else {
            Err(bad())
        }
    }
}

/// A duration written as `"20m"` or as whole seconds.
#[derive(Debug, Clone, Copy)]
pub(super) struct Dur(pub(super) Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Secs(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Secs(s) => Ok(Dur(Duration::from_secs(s))),
            Raw::Text(t) => parse_duration(&t)
                .map(Dur)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// A size written as bytes or as `"512KiB"`, `"1MiB"`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Size(pub(super) usize);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bytes(usize),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bytes(b) => Ok(Size(b)),
            Raw::Text(t) => parse_size(&t).map(Size).map_err(serde::de::Error::custom),
        }
    }
}

/// Parses `"1048576"`, `"512KiB"`, `"1MiB"`, `"1GiB"`.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || format!("invalid size {s:?}: use bytes or a number with KiB, MiB or GiB");
    let n: usize = num.parse().map_err(|_| bad())?;
    let mul = match unit {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return Err(bad()),
    };
    n.checked_mul(mul).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("1MB").is_err());
    }

    #[test]
    fn consoles() {
        assert_eq!("stdio".parse(), Ok(ConsoleKind::Stdio));
        assert_eq!(
            "unix:c.sock".parse(),
            Ok(ConsoleKind::Unix(PathBuf::from("c.sock")))
        );
        assert_eq!(
            "tcp:127.0.0.1:5555".parse(),
            Ok(ConsoleKind::Tcp("127.0.0.1:5555".into()))
        );
        for bad in ["serial", "unix:", "tcp:host", "tcp::1", "tcp:h:99999"] {
            assert!(bad.parse::<ConsoleKind>().is_err(), "{bad}");
        }
    }
}
