//! The Confluent wire format: magic byte 0, a 4-byte big-endian schema id,
//! then the Avro body.

use thiserror::Error;

pub const MAGIC_BYTE: u8 = 0;
pub const HEADER_LEN: usize = 5;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    #[error("{len} byte(s) is too short for a Confluent frame (magic byte and 4-byte schema id)")]
    TooShort { len: usize },
    #[error("magic byte is {0:#04x}, expected 0x00: not Confluent wire format (was the topic written by another converter, e.g. JSON?)")]
    WrongMagic(u8),
}

/// Splits a framed message into its schema id and Avro body.
#[inline]
pub fn split_frame(bytes: &[u8]) -> Result<(u32, &[u8]), FrameError> {
    let Some((header, body)) = bytes.split_first_chunk::<HEADER_LEN>() else {
        return Err(FrameError::TooShort { len: bytes.len() });
    };
    if header[0] != MAGIC_BYTE {
        return Err(FrameError::WrongMagic(header[0]));
    }
    Ok((
        u32::from_be_bytes([header[1], header[2], header[3], header[4]]),
        body,
    ))
}

/// Prefixes an Avro body with the Confluent header.
pub fn frame(schema_id: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.push(MAGIC_BYTE);
    out.extend_from_slice(&schema_id.to_be_bytes());
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_bad_frames_are_errors() {
        let framed = frame(0x01020304, b"body");
        assert_eq!(split_frame(&framed), Ok((0x01020304, &b"body"[..])));
        assert_eq!(split_frame(&framed[..5]), Ok((0x01020304, &b""[..])));
        assert_eq!(
            split_frame(&framed[..4]),
            Err(FrameError::TooShort { len: 4 })
        );
        assert_eq!(
            split_frame(b"{\"json\":1}"),
            Err(FrameError::WrongMagic(b'{'))
        );
    }
}
