//! MQTT 5 reason codes (§2.4) and MQTT 3.1.1 CONNACK return codes (§3.2.2.3).

macro_rules! reason_codes {
    ($first:ident = $first_value:literal, $first_doc:literal; $($name:ident = $value:literal, $doc:literal;)*) => {
        /// An MQTT 5 reason code. In 3.1.1 SUBACK the values 0x00..0x02 and
        /// 0x80 mean the same (granted QoS / failure).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        #[repr(u8)]
        pub enum ReasonCode {
            #[doc = $first_doc]
            #[default]
            $first = $first_value,
            $(#[doc = $doc] $name = $value,)*
        }

        impl ReasonCode {
            /// Every reason code, in wire order.
            pub const ALL: &'static [ReasonCode] = &[ReasonCode::$first, $(ReasonCode::$name,)*];

            /// Parses a wire value; `None` for values the spec does not define.
            pub fn from_u8(v: u8) -> Option<ReasonCode> {
                match v {
                    $first_value => Some(ReasonCode::$first),
                    $($value => Some(ReasonCode::$name),)*
                    _ => None,
                }
            }
        }
    };
}

reason_codes! {
    Success = 0x00, "Success / Normal disconnection / Granted QoS 0.";
    GrantedQoS1 = 0x01, "Granted QoS 1.";
    GrantedQoS2 = 0x02, "Granted QoS 2.";
    DisconnectWithWillMessage = 0x04, "Disconnect with Will Message.";
    NoMatchingSubscribers = 0x10, "No matching subscribers.";
    NoSubscriptionExisted = 0x11, "No subscription existed.";
    ContinueAuthentication = 0x18, "Continue authentication.";
    ReAuthenticate = 0x19, "Re-authenticate.";
    UnspecifiedError = 0x80, "Unspecified error (3.1.1 SUBACK: Failure).";
    MalformedPacket = 0x81, "Malformed Packet.";
    ProtocolError = 0x82, "Protocol Error.";
    ImplementationSpecificError = 0x83, "Implementation specific error.";
    UnsupportedProtocolVersion = 0x84, "Unsupported Protocol Version.";
    ClientIdentifierNotValid = 0x85, "Client Identifier not valid.";
    BadUserNameOrPassword = 0x86, "Bad User Name or Password.";
    NotAuthorized = 0x87, "Not authorized.";
    ServerUnavailable = 0x88, "Server unavailable.";
    ServerBusy = 0x89, "Server busy.";
    Banned = 0x8A, "Banned.";
    ServerShuttingDown = 0x8B, "Server shutting down.";
    BadAuthenticationMethod = 0x8C, "Bad authentication method.";
    KeepAliveTimeout = 0x8D, "Keep Alive timeout.";
    SessionTakenOver = 0x8E, "Session taken over.";
    TopicFilterInvalid = 0x8F, "Topic Filter invalid.";
    TopicNameInvalid = 0x90, "Topic Name invalid.";
    PacketIdentifierInUse = 0x91, "Packet Identifier in use.";
    PacketIdentifierNotFound = 0x92, "Packet Identifier not found.";
    ReceiveMaximumExceeded = 0x93, "Receive Maximum exceeded.";
    TopicAliasInvalid = 0x94, "Topic Alias invalid.";
    PacketTooLarge = 0x95, "Packet too large.";
    MessageRateTooHigh = 0x96, "Message rate too high.";
    QuotaExceeded = 0x97, "Quota exceeded.";
    AdministrativeAction = 0x98, "Administrative action.";
    PayloadFormatInvalid = 0x99, "Payload format invalid.";
    RetainNotSupported = 0x9A, "Retain not supported.";
    QoSNotSupported = 0x9B, "QoS not supported.";
    UseAnotherServer = 0x9C, "Use another server.";
    ServerMoved = 0x9D, "Server moved.";
    SharedSubscriptionsNotSupported = 0x9E, "Shared Subscriptions not supported.";
    ConnectionRateExceeded = 0x9F, "Connection rate exceeded.";
    MaximumConnectTime = 0xA0, "Maximum connect time.";
    SubscriptionIdentifiersNotSupported = 0xA1, "Subscription Identifiers not supported.";
    WildcardSubscriptionsNotSupported = 0xA2, "Wildcard Subscriptions not supported.";
}

impl ReasonCode {
    /// The wire value.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// True for 0x80 and above (§2.4: codes ≥ 0x80 indicate failure).
    pub fn is_error(self) -> bool {
        self.as_u8() >= 0x80
    }

    /// True when MQTT 5 allows this code in `packet` (§2.4 table 2-6).
    pub fn allowed_in(self, packet: ReasonContext) -> bool {
        use ReasonCode as R;
        match packet {
            ReasonContext::ConnAck => matches!(
                self,
                R::Success
                    | R::UnspecifiedError
                    | R::MalformedPacket
                    | R::ProtocolError
                    | R::ImplementationSpecificError
                    | R::UnsupportedProtocolVersion
                    | R::ClientIdentifierNotValid
                    | R::BadUserNameOrPassword
                    | R::NotAuthorized
                    | R::ServerUnavailable
                    | R::ServerBusy
                    | R::Banned
                    | R::BadAuthenticationMethod
                    | R::TopicNameInvalid
                    | R::PacketTooLarge
                    | R::QuotaExceeded
                    | R::PayloadFormatInvalid
                    | R::RetainNotSupported
                    | R::QoSNotSupported
                    | R::UseAnotherServer
                    | R::ServerMoved
                    | R::ConnectionRateExceeded
            ),
            ReasonContext::PubAck | ReasonContext::PubRec => matches!(
                self,
                R::Success
                    | R::NoMatchingSubscribers
                    | R::UnspecifiedError
                    | R::ImplementationSpecificError
                    | R::NotAuthorized
                    | R::TopicNameInvalid
                    | R::PacketIdentifierInUse
                    | R::QuotaExceeded
                    | R::PayloadFormatInvalid
            ),
            ReasonContext::PubRel | ReasonContext::PubComp => {
                matches!(self, R::Success | R::PacketIdentifierNotFound)
            }
            ReasonContext::SubAck => matches!(
                self,
                R::Success
                    | R::GrantedQoS1
                    | R::GrantedQoS2
                    | R::UnspecifiedError
                    | R::ImplementationSpecificError
                    | R::NotAuthorized
                    | R::TopicFilterInvalid
                    | R::PacketIdentifierInUse
                    | R::QuotaExceeded
                    | R::SharedSubscriptionsNotSupported
                    | R::SubscriptionIdentifiersNotSupported
                    | R::WildcardSubscriptionsNotSupported
            ),
            ReasonContext::UnsubAck => matches!(
                self,
                R::Success
                    | R::NoSubscriptionExisted
                    | R::UnspecifiedError
                    | R::ImplementationSpecificError
                    | R::NotAuthorized
                    | R::TopicFilterInvalid
                    | R::PacketIdentifierInUse
            ),
            ReasonContext::Disconnect => !matches!(
                self,
                R::GrantedQoS1
                    | R::GrantedQoS2
                    | R::NoMatchingSubscribers
                    | R::NoSubscriptionExisted
                    | R::ContinueAuthentication
                    | R::ReAuthenticate
                    | R::UnsupportedProtocolVersion
                    | R::ClientIdentifierNotValid
                    | R::BadUserNameOrPassword
                    | R::ServerUnavailable
                    | R::Banned
                    | R::BadAuthenticationMethod
                    | R::PacketIdentifierInUse
                    | R::PacketIdentifierNotFound
            ),
            ReasonContext::Auth => {
                matches!(
                    self,
                    R::Success | R::ContinueAuthentication | R::ReAuthenticate
                )
            }
        }
    }
}

/// The packet a reason code appears in, for [`ReasonCode::allowed_in`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReasonContext {
    /// CONNACK.
    ConnAck,
    /// PUBACK.
    PubAck,
    /// PUBREC.
    PubRec,
    /// PUBREL.
    PubRel,
    /// PUBCOMP.
    PubComp,
    /// SUBACK.
    SubAck,
    /// UNSUBACK.
    UnsubAck,
    /// DISCONNECT.
    Disconnect,
    /// AUTH.
    Auth,
}

impl ReasonContext {
    /// Packet name for error messages.
    pub fn name(self) -> &'static str {
        match self {
            ReasonContext::ConnAck => "CONNACK",
            ReasonContext::PubAck => "PUBACK",
            ReasonContext::PubRec => "PUBREC",
            ReasonContext::PubRel => "PUBREL",
            ReasonContext::PubComp => "PUBCOMP",
            ReasonContext::SubAck => "SUBACK",
            ReasonContext::UnsubAck => "UNSUBACK",
            ReasonContext::Disconnect => "DISCONNECT",
            ReasonContext::Auth => "AUTH",
        }
    }
}

/// MQTT 3.1 / 3.1.1 CONNACK return code (3.1.1 §3.2.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ConnectReturnCode {
    /// Connection accepted.
    Accepted = 0,
    /// The server does not support the requested protocol level.
    UnacceptableProtocolVersion = 1,
    /// The client identifier is not allowed.
    IdentifierRejected = 2,
    /// The MQTT service is unavailable.
    ServerUnavailable = 3,
    /// Malformed user name or password.
    BadUserNameOrPassword = 4,
    /// The client is not authorized to connect.
    NotAuthorized = 5,
}

impl ConnectReturnCode {
    /// Parses a wire value; 6..=255 are reserved.
    pub fn from_u8(v: u8) -> Option<ConnectReturnCode> {
        match v {
            0 => Some(ConnectReturnCode::Accepted),
            1 => Some(ConnectReturnCode::UnacceptableProtocolVersion),
            2 => Some(ConnectReturnCode::IdentifierRejected),
            3 => Some(ConnectReturnCode::ServerUnavailable),
            4 => Some(ConnectReturnCode::BadUserNameOrPassword),
            5 => Some(ConnectReturnCode::NotAuthorized),
            _ => None,
        }
    }

    /// The wire value.
    pub fn as_u8(self) -> u8 {
        self as u8
    }
}
