//! The one place that turns records into bytes: postcard, behind a schema version byte.
//!
//! postcard's wire format is frozen and documented, which matters for a file that must stay
//! readable after upgrades. A record starts with [`SCHEMA`]; a change of encoding bumps it and
//! adds a decoder for the old value here, nowhere else.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Version byte written before every record.
pub const SCHEMA: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("record written with schema {found}, this build reads schema {SCHEMA}")]
    Schema { found: u8 },
    #[error("empty record")]
    Empty,
    #[error("corrupt record: {0}")]
    Corrupt(#[from] postcard::Error),
}

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Room for a typical record at once: grown from one byte, the buffer was reallocated
    // about seven times per record, a measurable part of the writer's work per enqueue.
    let mut buf = Vec::with_capacity(ENCODE_CAPACITY);
    buf.push(SCHEMA);
    // Serializing our own plain records into a Vec cannot fail.
    postcard::to_extend(value, buf).expect("postcard encodes into a Vec")
}

/// What [`encode`] reserves up front: a queue record with a few scenarios fits.
const ENCODE_CAPACITY: usize = 512;

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    match bytes.split_first() {
        None => Err(CodecError::Empty),
        Some((&SCHEMA, rest)) => Ok(postcard::from_bytes(rest)?),
        Some((&found, _)) => Err(CodecError::Schema { found }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Status, TestResult, TestStatus};

    #[test]
    fn round_trip_and_version_check() {
        let r = TestResult {
            suite: "s".into(),
            name: "n".into(),
            status: TestStatus::TimedOut,
            duration_ms: 12,
            message: Some("late".into()),
        };
        let bytes = encode(&r);
        assert_eq!(bytes[0], SCHEMA);
        assert_eq!(decode::<TestResult>(&bytes).unwrap(), r);
        let mut other = bytes.clone();
        other[0] = 9;
        assert!(matches!(
            decode::<TestResult>(&other),
            Err(CodecError::Schema { found: 9 })
        ));
        assert!(matches!(decode::<Status>(&[]), Err(CodecError::Empty)));
        assert!(decode::<TestResult>(&bytes[..3]).is_err());
    }
}
