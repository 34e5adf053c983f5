use proptest::prelude::*;

use super::*;

fn text() -> impl Strategy<Value = String> {
    "[a-z/#+é]{0,12}"
}

fn bytes() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..32).prop_map(Bytes::from)
}

fn properties() -> impl Strategy<Value = PropertiesRecord> {
    (
        proptest::option::of(any::<bool>()),
        proptest::option::of(text()),
        proptest::option::of(text()),
        proptest::option::of(bytes()),
        proptest::collection::vec((text(), text()), 0..3),
    )
        .prop_map(
            |(payload_format_utf8, content_type, response_topic, correlation_data, user)| {
                PropertiesRecord {
                    payload_format_utf8,
                    content_type,
                    response_topic,
                    correlation_data,
                    user_properties: user,
                }
            },
        )
}

fn message() -> impl Strategy<Value = MessageRecord> {
    (
        text(),
        bytes(),
        0u8..3,
        any::<bool>(),
        proptest::option::of(properties()),
        proptest::option::of(any::<u64>()),
        proptest::option::of(text()),
    )
        .prop_map(
            |(topic, payload, qos, retain, properties, expires_at_ms, publisher)| MessageRecord {
                topic,
                payload,
                qos,
                retain,
                properties,
                expires_at_ms,
                publisher,
            },
        )
}

fn subscription() -> impl Strategy<Value = SubscriptionRecord> {
    (
        text(),
        0u8..3,
        any::<bool>(),
        any::<bool>(),
        0u8..3,
        proptest::option::of(any::<u32>()),
    )
        .prop_map(
            |(filter, qos, no_local, retain_as_published, retain_handling, subscription_id)| {
                SubscriptionRecord {
                    filter,
                    qos,
                    no_local,
                    retain_as_published,
                    retain_handling,
                    subscription_id,
                }
            },
        )
}

fn session() -> impl Strategy<Value = SessionRecord> {
    (
        text(),
        any::<u8>(),
        proptest::option::of(text()),
        any::<u32>(),
        proptest::option::of(any::<u64>()),
        proptest::collection::vec(subscription(), 0..4),
        proptest::option::of((message(), any::<u32>())),
        proptest::option::of(any::<u64>()),
    )
        .prop_map(
            |(client_id, kind, username, expiry_secs, expires_at_ms, subscriptions, will, due)| {
                SessionRecord {
                    client_id,
                    kind,
                    username,
                    expiry_secs,
                    expires_at_ms,
                    subscriptions,
                    will: will.map(|(message, delay_secs)| WillRecord {
                        message,
                        delay_secs,
                    }),
                    will_due_ms: due,
                }
            },
        )
}

fn queue_state() -> impl Strategy<Value = QueueState> {
    prop_oneof![
        Just(QueueState::Queued),
        any::<u16>().prop_map(|packet_id| QueueState::AwaitPubAck { packet_id }),
        any::<u16>().prop_map(|packet_id| QueueState::AwaitPubRec { packet_id }),
        any::<u16>().prop_map(|packet_id| QueueState::AwaitPubComp { packet_id }),
    ]
}

fn queue_entry() -> impl Strategy<Value = QueueEntry> {
    (
        any::<u64>(),
        message(),
        proptest::collection::vec(any::<u32>(), 0..3),
        queue_state(),
    )
        .prop_map(|(seq, message, subscription_ids, state)| QueueEntry {
            seq,
            message,
            subscription_ids,
            state,
        })
}

fn sn_topics() -> impl Strategy<Value = SnTopicsRecord> {
    (
        text(),
        proptest::collection::vec((any::<u16>(), text()), 0..5),
    )
        .prop_map(|(client_id, topics)| SnTopicsRecord { client_id, topics })
}

proptest! {
    #[test]
    fn message_round_trips(m in message()) {
        prop_assert_eq!(decode::<MessageRecord>(&encode(&m)), Ok(m));
    }

    #[test]
    fn session_round_trips(s in session()) {
        prop_assert_eq!(decode::<SessionRecord>(&encode(&s)), Ok(s));
    }

    #[test]
    fn queue_entry_round_trips(e in queue_entry()) {
        prop_assert_eq!(decode::<QueueEntry>(&encode(&e)), Ok(e));
    }

    #[test]
    fn sn_topics_round_trip(t in sn_topics()) {
        prop_assert_eq!(decode::<SnTopicsRecord>(&encode(&t)), Ok(t));
    }

    #[test]
    fn arbitrary_bytes_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode::<MessageRecord>(&raw);
        let _ = decode::<SessionRecord>(&raw);
        let _ = decode::<QueueEntry>(&raw);
        let _ = decode::<SnTopicsRecord>(&raw);
    }

    #[test]
    fn every_truncation_of_a_session_is_an_error(s in session()) {
        let full = encode(&s);
        for len in 0..full.len() {
            prop_assert!(decode::<SessionRecord>(&full[..len]).is_err());
        }
    }

    #[test]
    fn flipped_bytes_never_panic(e in queue_entry(), at in any::<usize>(), xor in 1u8..) {
        let mut raw = encode(&e);
        let i = at % raw.len();
        raw[i] ^= xor;
        let _ = decode::<QueueEntry>(&raw);
    }
}

fn sample_message() -> MessageRecord {
    MessageRecord {
        topic: "a/b".into(),
        payload: Bytes::from_static(b"hi"),
        qos: 1,
        retain: false,
        properties: None,
        expires_at_ms: None,
        publisher: None,
    }
}

#[test]
fn record_starts_with_the_format_byte() {
    assert_eq!(encode(&sample_message())[0], RECORD_FORMAT);
}

#[test]
fn unknown_format_byte_is_refused() {
    let mut raw = encode(&sample_message());
    raw[0] = RECORD_FORMAT + 1;
    assert_eq!(
        decode::<MessageRecord>(&raw),
        Err(CodecError::UnknownFormat(RECORD_FORMAT + 1))
    );
}

#[test]
fn trailing_bytes_are_refused() {
    let mut raw = encode(&sample_message());
    raw.push(0);
    assert_eq!(decode::<MessageRecord>(&raw), Err(CodecError::Trailing(1)));
}

#[test]
fn huge_list_count_is_refused_without_allocating() {
    // A topic-list count of u32::MAX with nothing behind it.
    let mut raw = vec![RECORD_FORMAT, 0, 0, 0, 1, b'c'];
    raw.extend_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(decode::<SnTopicsRecord>(&raw), Err(CodecError::Truncated));
}

#[test]
fn invalid_utf8_topic_is_refused() {
    let raw = vec![RECORD_FORMAT, 0, 0, 0, 1, 0xff, 0, 0, 0, 0];
    assert_eq!(decode::<SnTopicsRecord>(&raw), Err(CodecError::NotUtf8));
}

#[test]
fn bad_option_tag_is_refused() {
    let mut raw = encode(&sample_message());
    // properties tag sits after topic (4+3), payload (4+2), qos, retain.
    let at = 1 + 7 + 6 + 2;
    raw[at] = 7;
    assert_eq!(
        decode::<MessageRecord>(&raw),
        Err(CodecError::BadTag {
            field: "properties",
            tag: 7
        })
    );
}

#[test]
fn format_1_message_reads_without_a_publisher() {
    // Format 1: topic "t", payload "p", qos 1, no retain, no properties, no expiry.
    let raw = vec![1, 0, 0, 0, 1, b't', 0, 0, 0, 1, b'p', 1, 0, 0, 0];
    let m = decode::<MessageRecord>(&raw).unwrap();
    assert_eq!((m.topic.as_str(), m.qos, m.publisher), ("t", 1, None));
}

#[test]
fn publisher_survives_the_round_trip() {
    let mut m = sample_message();
    m.publisher = Some("sensor-7".into());
    assert_eq!(decode::<MessageRecord>(&encode(&m)), Ok(m));
}
