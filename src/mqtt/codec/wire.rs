//! Primitive MQTT data types (§1.5): integers, variable byte integers,
//! UTF-8 strings and binary data, read from a frozen packet body and
//! written to any [`Sink`] so lengths can be counted without allocating.

use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::error::{DecodeError, EncodeError};

/// Largest value of a variable byte integer (and of the remaining length).
pub const MAX_VARIABLE_INT: u32 = 268_435_455;

/// Reads fields from one packet body; every read is bounds-checked.
#[derive(Debug)]
pub(crate) struct Reader {
    buf: Bytes,
}

impl Reader {
    pub(crate) fn new(buf: Bytes) -> Reader {
        Reader { buf }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.remaining()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Fails unless every byte of the body was consumed.
    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes)
        }
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        self.buf
            .try_get_u8()
            .map_err(|_| DecodeError::UnexpectedEnd)
    }

    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        self.buf
            .try_get_u16()
            .map_err(|_| DecodeError::UnexpectedEnd)
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        self.buf
            .try_get_u32()
            .map_err(|_| DecodeError::UnexpectedEnd)
    }

    pub(crate) fn var_int(&mut self) -> Result<u32, DecodeError> {
        let mut value = 0u32;
        for i in 0..4 {
            let b = self.u8()?;
            value |= u32::from(b & 0x7F) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::MalformedVariableInteger)
    }

    /// Takes `len` bytes without copying.
    pub(crate) fn take(&mut self, len: usize) -> Result<Bytes, DecodeError> {
        if len > self.buf.remaining() {
            return Err(DecodeError::UnexpectedEnd);
        }
        Ok(self.buf.split_to(len))
    }

    /// Takes everything that is left (a PUBLISH payload).
    pub(crate) fn rest(&mut self) -> Bytes {
        self.buf.split_off(0)
    }

    pub(crate) fn binary(&mut self) -> Result<Bytes, DecodeError> {
        let len = self.u16()?;
        self.take(usize::from(len))
    }

    pub(crate) fn utf8(&mut self) -> Result<String, DecodeError> {
        let raw = self.binary()?;
        checked_str(&raw).map(str::to_owned)
    }

    /// A string straight into an `Arc<str>` (one allocation), for topics.
    pub(crate) fn utf8_arc(&mut self) -> Result<Arc<str>, DecodeError> {
        let raw = self.binary()?;
        checked_str(&raw).map(Arc::from)
    }

    /// A packet identifier that must be non-zero [MQTT-2.3.1-1].
    pub(crate) fn packet_id(&mut self) -> Result<u16, DecodeError> {
        match self.u16()? {
            0 => Err(DecodeError::ZeroPacketId),
            id => Ok(id),
        }
    }
}

// [MQTT-1.5.4-1] well-formed UTF-8, [MQTT-1.5.4-2] no U+0000.
fn checked_str(raw: &[u8]) -> Result<&str, DecodeError> {
    let s = std::str::from_utf8(raw).map_err(|_| DecodeError::InvalidUtf8)?;
    if s.contains('\0') {
        return Err(DecodeError::NullCharacter);
    }
    Ok(s)
}

/// Somewhere encoded bytes go: a real buffer, or a counter for `encoded_len`.
pub(crate) trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for BytesMut {
    fn put(&mut self, bytes: &[u8]) {
        self.put_slice(bytes);
    }
}

/// Counts bytes instead of storing them.
#[derive(Debug, Default)]
pub(crate) struct Counter(pub(crate) usize);

impl Sink for Counter {
    fn put(&mut self, bytes: &[u8]) {
        self.0 += bytes.len();
    }
}

pub(crate) fn put_u8(s: &mut impl Sink, v: u8) {
    s.put(&[v]);
}

pub(crate) fn put_u16(s: &mut impl Sink, v: u16) {
    s.put(&v.to_be_bytes());
}

pub(crate) fn put_u32(s: &mut impl Sink, v: u32) {
    s.put(&v.to_be_bytes());
}

/// Writes a variable byte integer in its shortest form.
pub(crate) fn put_var_int(s: &mut impl Sink, v: u32) -> Result<(), EncodeError> {
    if v > MAX_VARIABLE_INT {
        return Err(EncodeError::VariableIntegerTooLarge(v));
    }
    let mut tmp = [0u8; 4];
    let n = encode_var_int(v, &mut tmp);
    s.put(&tmp[..n]);
    Ok(())
}

/// Shortest encoding of `v` (≤ [`MAX_VARIABLE_INT`]) into `out`; returns its length.
pub(crate) fn encode_var_int(mut v: u32, out: &mut [u8; 4]) -> usize {
    let mut n = 0;
    loop {
        let mut b = (v & 0x7F) as u8;
        v >>= 7;
        if v > 0 {
            b |= 0x80;
        }
        if let Some(slot) = out.get_mut(n) {
            *slot = b;
        }
        n += 1;
        if v == 0 || n == 4 {
            return n;
        }
    }
}

pub(crate) fn put_binary(s: &mut impl Sink, v: &[u8]) -> Result<(), EncodeError> {
    let len = u16::try_from(v.len()).map_err(|_| EncodeError::FieldTooLong(v.len()))?;
    put_u16(s, len);
    s.put(v);
    Ok(())
}

pub(crate) fn put_utf8(s: &mut impl Sink, v: &str) -> Result<(), EncodeError> {
    put_binary(s, v.as_bytes())
}
