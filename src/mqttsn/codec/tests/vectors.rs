//! One digest example per message type (digest §3): decode, then encode back.

use bytes::Bytes;

use super::assert_vector;
use crate::mqttsn::codec::{
    ConnectFlags, Message, ReturnCode, SnQos, TopicFilterRef, TopicRef, WillTopic,
};
use crate::qos::QoS;

#[test]
fn advertise_gw_1_every_900_seconds() {
    assert_vector(
        "05 00 01 03 84",
        Message::Advertise {
            gw_id: 1,
            duration: 900,
        },
    );
}

#[test]
fn searchgw_radius_1() {
    assert_vector("03 01 01", Message::SearchGw { radius: 1 });
}

#[test]
fn gwinfo_from_gateway_has_no_address() {
    assert_vector(
        "03 02 01",
        Message::GwInfo {
            gw_id: 1,
            gw_add: Bytes::new(),
        },
    );
}

#[test]
fn gwinfo_from_client_carries_the_address() {
    assert_vector(
        "05 02 01 12 34",
        Message::GwInfo {
            gw_id: 1,
            gw_add: Bytes::from_static(&[0x12, 0x34]),
        },
    );
}

#[test]
fn connect_clean_session_without_will() {
    assert_vector(
        "09 04 04 01 00 3C 63 6C 31",
        Message::Connect {
            flags: ConnectFlags {
                will: false,
                clean_session: true,
            },
            protocol_id: 1,
            duration: 60,
            client_id: Bytes::from_static(b"cl1"),
        },
    );
}

#[test]
fn connect_with_will() {
    assert_vector(
        "09 04 0C 01 00 3C 63 6C 31",
        Message::Connect {
            flags: ConnectFlags {
                will: true,
                clean_session: true,
            },
            protocol_id: 1,
            duration: 60,
            client_id: Bytes::from_static(b"cl1"),
        },
    );
}

#[test]
fn connack_accepted() {
    assert_vector(
        "03 05 00",
        Message::ConnAck {
            code: ReturnCode::Accepted,
        },
    );
}

#[test]
fn willtopicreq_is_header_only() {
    assert_vector("02 06", Message::WillTopicReq);
}

#[test]
fn willtopic_qos1_retain() {
    assert_vector(
        "06 07 30 77 2F 74",
        Message::WillTopic(Some(WillTopic {
            qos: QoS::AtLeastOnce,
            retain: true,
            topic: Bytes::from_static(b"w/t"),
        })),
    );
}

#[test]
fn empty_willtopic_is_exactly_two_octets() {
    assert_vector("02 07", Message::WillTopic(None));
}

#[test]
fn willmsgreq_is_header_only() {
    assert_vector("02 08", Message::WillMsgReq);
}

#[test]
fn willmsg_bye() {
    assert_vector(
        "05 09 62 79 65",
        Message::WillMsg {
            message: Bytes::from_static(b"bye"),
        },
    );
}

#[test]
fn register_from_client() {
    assert_vector(
        "09 0A 00 00 00 01 61 2F 62",
        Message::Register {
            topic_id: 0,
            msg_id: 1,
            topic_name: Bytes::from_static(b"a/b"),
        },
    );
}

#[test]
fn regack_accepted() {
    assert_vector(
        "07 0B 00 01 00 01 00",
        Message::RegAck {
            topic_id: 1,
            msg_id: 1,
            code: ReturnCode::Accepted,
        },
    );
}

#[test]
fn publish_qos1_normal_id() {
    assert_vector(
        "09 0C 20 00 01 00 02 68 69",
        Message::Publish {
            dup: false,
            qos: SnQos::Level(QoS::AtLeastOnce),
            retain: false,
            topic: TopicRef::Normal(1),
            msg_id: 2,
            data: Bytes::from_static(b"hi"),
        },
    );
}

#[test]
fn publish_qos0_short_name() {
    assert_vector(
        "09 0C 02 61 62 00 00 68 69",
        Message::Publish {
            dup: false,
            qos: SnQos::Level(QoS::AtMostOnce),
            retain: false,
            topic: TopicRef::Short(*b"ab"),
            msg_id: 0,
            data: Bytes::from_static(b"hi"),
        },
    );
}

#[test]
fn publish_qos_minus_one_predefined_id() {
    assert_vector(
        "09 0C 61 00 05 00 00 68 69",
        Message::Publish {
            dup: false,
            qos: SnQos::MinusOne,
            retain: false,
            topic: TopicRef::Predefined(5),
            msg_id: 0,
            data: Bytes::from_static(b"hi"),
        },
    );
}

#[test]
fn publish_qos2_dup_retain_empty_payload() {
    assert_vector(
        "07 0C D0 01 02 03 04",
        Message::Publish {
            dup: true,
            qos: SnQos::Level(QoS::ExactlyOnce),
            retain: true,
            topic: TopicRef::Normal(0x0102),
            msg_id: 0x0304,
            data: Bytes::new(),
        },
    );
}

#[test]
fn puback_accepted_and_invalid_topic_id() {
    assert_vector(
        "07 0D 00 01 00 02 00",
        Message::PubAck {
            topic_id: 1,
            msg_id: 2,
            code: ReturnCode::Accepted,
        },
    );
    assert_vector(
        "07 0D 00 01 00 02 02",
        Message::PubAck {
            topic_id: 1,
            msg_id: 2,
            code: ReturnCode::InvalidTopicId,
        },
    );
}

#[test]
fn qos2_flow_uses_pubcomp_0e_pubrec_0f_pubrel_10() {
    // G-08
    assert_vector("04 0E 03 04", Message::PubComp { msg_id: 0x0304 });
    assert_vector("04 0F 03 04", Message::PubRec { msg_id: 0x0304 });
    assert_vector("04 10 03 04", Message::PubRel { msg_id: 0x0304 });
}

#[test]
fn subscribe_topic_name() {
    assert_vector(
        "08 12 20 00 03 61 2F 23",
        Message::Subscribe {
            dup: false,
            qos: QoS::AtLeastOnce,
            msg_id: 3,
            topic: TopicFilterRef::Name(Bytes::from_static(b"a/#")),
        },
    );
}

#[test]
fn subscribe_predefined_id() {
    assert_vector(
        "07 12 01 00 04 00 07",
        Message::Subscribe {
            dup: false,
            qos: QoS::AtMostOnce,
            msg_id: 4,
            topic: TopicFilterRef::Predefined(7),
        },
    );
}

#[test]
fn subscribe_short_name() {
    assert_vector(
        "07 12 42 00 05 61 62",
        Message::Subscribe {
            dup: false,
            qos: QoS::ExactlyOnce,
            msg_id: 5,
            topic: TopicFilterRef::Short(*b"ab"),
        },
    );
}

#[test]
fn suback_wildcard_qos1() {
    assert_vector(
        "08 13 20 00 00 00 03 00",
        Message::SubAck {
            qos: QoS::AtLeastOnce,
            topic_id: 0,
            msg_id: 3,
            code: ReturnCode::Accepted,
        },
    );
}

#[test]
fn unsubscribe_topic_name() {
    assert_vector(
        "08 14 00 00 06 61 2F 23",
        Message::Unsubscribe {
            msg_id: 6,
            topic: TopicFilterRef::Name(Bytes::from_static(b"a/#")),
        },
    );
}

#[test]
fn unsubscribe_predefined_and_short() {
    assert_vector(
        "07 14 01 00 06 00 07",
        Message::Unsubscribe {
            msg_id: 6,
            topic: TopicFilterRef::Predefined(7),
        },
    );
    assert_vector(
        "07 14 02 00 06 61 62",
        Message::Unsubscribe {
            msg_id: 6,
            topic: TopicFilterRef::Short(*b"ab"),
        },
    );
}

#[test]
fn unsuback() {
    assert_vector("04 15 00 06", Message::UnsubAck { msg_id: 6 });
}

#[test]
fn pingreq_without_client_id() {
    assert_vector("02 16", Message::PingReq { client_id: None });
}

#[test]
fn pingreq_with_client_id_of_waking_client() {
    assert_vector(
        "05 16 63 6C 31",
        Message::PingReq {
            client_id: Some(Bytes::from_static(b"cl1")),
        },
    );
}

#[test]
fn pingresp_is_header_only() {
    assert_vector("02 17", Message::PingResp);
}

#[test]
fn disconnect_without_duration() {
    assert_vector("02 18", Message::Disconnect { duration: None });
}

#[test]
fn disconnect_with_sleep_duration() {
    assert_vector(
        "04 18 01 2C",
        Message::Disconnect {
            duration: Some(300),
        },
    );
}

#[test]
fn willtopicupd_qos0() {
    assert_vector(
        "06 1A 00 78 2F 79",
        Message::WillTopicUpd(Some(WillTopic {
            qos: QoS::AtMostOnce,
            retain: false,
            topic: Bytes::from_static(b"x/y"),
        })),
    );
}

#[test]
fn empty_willtopicupd_deletes_the_will() {
    assert_vector("02 1A", Message::WillTopicUpd(None));
}

#[test]
fn willtopicresp_accepted() {
    assert_vector(
        "03 1B 00",
        Message::WillTopicResp {
            code: ReturnCode::Accepted,
        },
    );
}

#[test]
fn willmsgupd_z() {
    assert_vector(
        "03 1C 7A",
        Message::WillMsgUpd {
            message: Bytes::from_static(b"z"),
        },
    );
}

#[test]
fn willmsgresp_not_supported() {
    assert_vector(
        "03 1D 03",
        Message::WillMsgResp {
            code: ReturnCode::NotSupported,
        },
    );
}

#[test]
fn reserved_return_codes_are_kept() {
    assert_vector(
        "03 05 80",
        Message::ConnAck {
            code: ReturnCode::Reserved(0x80),
        },
    );
}
