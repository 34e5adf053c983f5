//! The records' binary encoding: a leading format byte, then fields in order;
//! integers big-endian, strings and byte strings prefixed with a u32 length,
//! options and enums with a tag byte. Decoding is total: bad bytes give a
//! [`CodecError`], never a panic, and lengths are checked against what is left
//! before anything is allocated.

use bytes::Bytes;

use super::records::{
    MessageRecord, PropertiesRecord, QueueEntry, QueueState, SessionRecord, SnTopicsRecord,
    SubscriptionRecord, WillRecord,
};

/// The record format this build writes. A change to any record's layout
/// bumps it; older formats stay readable (see [`Reader::format`]).
///
/// - 1: the first layout.
/// - 2: a message ends with its publisher's client id (an option).
pub const RECORD_FORMAT: u8 = 2;

/// The oldest record format this build still reads.
pub const OLDEST_RECORD_FORMAT: u8 = 1;

/// Why a stored record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The record ends before its last field.
    #[error("record truncated")]
    Truncated,
    /// Bytes are left after the last field.
    #[error("{0} trailing bytes after record")]
    Trailing(usize),
    /// The record's format byte is not one this build reads.
    #[error("record format {0} is unknown")]
    UnknownFormat(u8),
    /// A tag byte (option, bool or enum) has no meaning.
    #[error("invalid tag {tag} for {field}")]
    BadTag {
        /// The field being read.
        field: &'static str,
        /// The byte found.
        tag: u8,
    },
    /// A string is not UTF-8.
    #[error("string is not UTF-8")]
    NotUtf8,
}

/// A record type with a stored form.
pub trait Record: Sized {
    /// Appends the fields (without the format byte).
    fn write(&self, w: &mut Vec<u8>);
    /// Reads the fields back.
    fn read(r: &mut Reader<'_>) -> Result<Self, CodecError>;
}

/// Encodes a record with its leading format byte.
pub fn encode<T: Record>(record: &T) -> Vec<u8> {
    let mut out = vec![RECORD_FORMAT];
    record.write(&mut out);
    out
}

/// Decodes a whole stored record: format byte, fields, nothing after.
pub fn decode<T: Record>(bytes: &[u8]) -> Result<T, CodecError> {
    let mut r = Reader {
        rest: bytes,
        format: RECORD_FORMAT,
    };
    let format = r.u8()?;
    if !(OLDEST_RECORD_FORMAT..=RECORD_FORMAT).contains(&format) {
        return Err(CodecError::UnknownFormat(format));
    }
    r.format = format;
    let record = T::read(&mut r)?;
    if !r.rest.is_empty() {
        return Err(CodecError::Trailing(r.rest.len()));
    }
    Ok(record)
}

/// A cursor over a stored record.
#[derive(Debug)]
pub struct Reader<'a> {
    rest: &'a [u8],
    format: u8,
}

impl<'a> Reader<'a> {
    /// The format byte of the record being read: fields added later are
    /// read only from records that have them.
    pub fn format(&self) -> u8 {
        self.format
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let (head, tail) = self.rest.split_at_checked(n).ok_or(CodecError::Truncated)?;
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, CodecError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, CodecError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, CodecError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn bool(&mut self, field: &'static str) -> Result<bool, CodecError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            tag => Err(CodecError::BadTag { field, tag }),
        }
    }

    /// An option's tag: true when a value follows.
    fn present(&mut self, field: &'static str) -> Result<bool, CodecError> {
        self.bool(field)
    }

    fn bytes(&mut self) -> Result<&'a [u8], CodecError> {
        let len = usize::try_from(self.u32()?).map_err(|_| CodecError::Truncated)?;
        self.take(len)
    }

    fn string(&mut self) -> Result<String, CodecError> {
        let raw = self.bytes()?;
        std::str::from_utf8(raw)
            .map(str::to_owned)
            .map_err(|_| CodecError::NotUtf8)
    }

    /// A list length; every element takes at least one byte, so a count larger
    /// than what is left is corrupt rather than a reason to allocate.
    fn count(&mut self) -> Result<usize, CodecError> {
        let n = usize::try_from(self.u32()?).map_err(|_| CodecError::Truncated)?;
        if n > self.rest.len() {
            return Err(CodecError::Truncated);
        }
        Ok(n)
    }

    fn opt<T>(
        &mut self,
        field: &'static str,
        read: impl FnOnce(&mut Self) -> Result<T, CodecError>,
    ) -> Result<Option<T>, CodecError> {
        if self.present(field)? {
            read(self).map(Some)
        } else {
            Ok(None)
        }
    }

    fn list<T>(
        &mut self,
        mut read: impl FnMut(&mut Self) -> Result<T, CodecError>,
    ) -> Result<Vec<T>, CodecError> {
        let n = self.count()?;
        // No capacity up front: n is only bounded by the bytes left, not by the
        // size of a decoded element.
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(read(self)?);
        }
        Ok(out)
    }
}

fn put_len(w: &mut Vec<u8>, len: usize) {
    // Records are built from MQTT packets, whose fields are far below 4 GiB.
    let len = u32::try_from(len).unwrap_or(u32::MAX);
    w.extend_from_slice(&len.to_be_bytes());
}

fn put_bytes(w: &mut Vec<u8>, b: &[u8]) {
    put_len(w, b.len());
    w.extend_from_slice(b);
}

fn put_str(w: &mut Vec<u8>, s: &str) {
    put_bytes(w, s.as_bytes());
}

fn put_bool(w: &mut Vec<u8>, b: bool) {
    w.push(u8::from(b));
}

fn put_opt<T>(w: &mut Vec<u8>, v: Option<&T>, put: impl FnOnce(&mut Vec<u8>, &T)) {
    put_bool(w, v.is_some());
    if let Some(v) = v {
        put(w, v);
    }
}

fn put_list<T>(w: &mut Vec<u8>, items: &[T], mut put: impl FnMut(&mut Vec<u8>, &T)) {
    put_len(w, items.len());
    for item in items {
        put(w, item);
    }
}

impl Record for PropertiesRecord {
    fn write(&self, w: &mut Vec<u8>) {
        put_opt(w, self.payload_format_utf8.as_ref(), |w, b| put_bool(w, *b));
        put_opt(w, self.content_type.as_ref(), |w, s| put_str(w, s));
        put_opt(w, self.response_topic.as_ref(), |w, s| put_str(w, s));
        put_opt(w, self.correlation_data.as_ref(), |w, b| put_bytes(w, b));
        put_list(w, &self.user_properties, |w, (k, v)| {
            put_str(w, k);
            put_str(w, v);
        });
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(PropertiesRecord {
            payload_format_utf8: r.opt("payload_format", |r| r.bool("payload_format"))?,
            content_type: r.opt("content_type", Reader::string)?,
            response_topic: r.opt("response_topic", Reader::string)?,
            correlation_data: r.opt("correlation_data", |r| {
                r.bytes().map(Bytes::copy_from_slice)
            })?,
            user_properties: r.list(|r| Ok((r.string()?, r.string()?)))?,
        })
    }
}

impl Record for MessageRecord {
    fn write(&self, w: &mut Vec<u8>) {
        put_str(w, &self.topic);
        put_bytes(w, &self.payload);
        w.push(self.qos);
        put_bool(w, self.retain);
        put_opt(w, self.properties.as_ref(), |w, p| p.write(w));
        put_opt(w, self.expires_at_ms.as_ref(), |w, t| {
            w.extend_from_slice(&t.to_be_bytes())
        });
        put_opt(w, self.publisher.as_ref(), |w, s| put_str(w, s));
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(MessageRecord {
            topic: r.string()?,
            payload: Bytes::copy_from_slice(r.bytes()?),
            qos: r.u8()?,
            retain: r.bool("retain")?,
            properties: r.opt("properties", PropertiesRecord::read)?,
            expires_at_ms: r.opt("expires_at", Reader::u64)?,
            publisher: if r.format() >= 2 {
                r.opt("publisher", Reader::string)?
            } else {
                None
            },
        })
    }
}

impl Record for SubscriptionRecord {
    fn write(&self, w: &mut Vec<u8>) {
        put_str(w, &self.filter);
        w.push(self.qos);
        put_bool(w, self.no_local);
        put_bool(w, self.retain_as_published);
        w.push(self.retain_handling);
        put_opt(w, self.subscription_id.as_ref(), |w, id| {
            w.extend_from_slice(&id.to_be_bytes())
        });
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(SubscriptionRecord {
            filter: r.string()?,
            qos: r.u8()?,
            no_local: r.bool("no_local")?,
            retain_as_published: r.bool("retain_as_published")?,
            retain_handling: r.u8()?,
            subscription_id: r.opt("subscription_id", Reader::u32)?,
        })
    }
}

impl Record for WillRecord {
    fn write(&self, w: &mut Vec<u8>) {
        self.message.write(w);
        w.extend_from_slice(&self.delay_secs.to_be_bytes());
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(WillRecord {
            message: MessageRecord::read(r)?,
            delay_secs: r.u32()?,
        })
    }
}

impl Record for SessionRecord {
    fn write(&self, w: &mut Vec<u8>) {
        put_str(w, &self.client_id);
        w.push(self.kind);
        put_opt(w, self.username.as_ref(), |w, s| put_str(w, s));
        w.extend_from_slice(&self.expiry_secs.to_be_bytes());
        put_opt(w, self.expires_at_ms.as_ref(), |w, t| {
            w.extend_from_slice(&t.to_be_bytes())
        });
        put_list(w, &self.subscriptions, |w, s| s.write(w));
        put_opt(w, self.will.as_ref(), |w, will| will.write(w));
        put_opt(w, self.will_due_ms.as_ref(), |w, t| {
            w.extend_from_slice(&t.to_be_bytes())
        });
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(SessionRecord {
            client_id: r.string()?,
            kind: r.u8()?,
            username: r.opt("username", Reader::string)?,
            expiry_secs: r.u32()?,
            expires_at_ms: r.opt("expires_at", Reader::u64)?,
            subscriptions: r.list(SubscriptionRecord::read)?,
            will: r.opt("will", WillRecord::read)?,
            will_due_ms: r.opt("will_due", Reader::u64)?,
        })
    }
}

impl Record for QueueState {
    fn write(&self, w: &mut Vec<u8>) {
        let (tag, packet_id) = match *self {
            QueueState::Queued => (0u8, None),
            QueueState::AwaitPubAck { packet_id } => (1, Some(packet_id)),
            QueueState::AwaitPubRec { packet_id } => (2, Some(packet_id)),
            QueueState::AwaitPubComp { packet_id } => (3, Some(packet_id)),
        };
        w.push(tag);
        if let Some(id) = packet_id {
            w.extend_from_slice(&id.to_be_bytes());
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        match r.u8()? {
            0 => Ok(QueueState::Queued),
            1 => Ok(QueueState::AwaitPubAck {
                packet_id: r.u16()?,
            }),
            2 => Ok(QueueState::AwaitPubRec {
                packet_id: r.u16()?,
            }),
            3 => Ok(QueueState::AwaitPubComp {
                packet_id: r.u16()?,
            }),
            tag => Err(CodecError::BadTag {
                field: "queue_state",
                tag,
            }),
        }
    }
}

impl Record for QueueEntry {
    fn write(&self, w: &mut Vec<u8>) {
        w.extend_from_slice(&self.seq.to_be_bytes());
        self.message.write(w);
        put_list(w, &self.subscription_ids, |w, id| {
            w.extend_from_slice(&id.to_be_bytes())
        });
        self.state.write(w);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(QueueEntry {
            seq: r.u64()?,
            message: MessageRecord::read(r)?,
            subscription_ids: r.list(Reader::u32)?,
            state: QueueState::read(r)?,
        })
    }
}

impl Record for SnTopicsRecord {
    fn write(&self, w: &mut Vec<u8>) {
        put_str(w, &self.client_id);
        put_list(w, &self.topics, |w, (id, name)| {
            w.extend_from_slice(&id.to_be_bytes());
            put_str(w, name);
        });
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(SnTopicsRecord {
            client_id: r.string()?,
            topics: r.list(|r| Ok((r.u16()?, r.string()?)))?,
        })
    }
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
