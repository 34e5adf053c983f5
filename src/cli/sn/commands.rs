//! What each `sngate sn` subcommand does, on top of [`Client`].

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use super::client::{Client, ClientError, ClientOptions, Delivery, Will};
use super::link::Link;
use super::{FramingArg, LinkArgs, PubArgs, SearchArgs, SnCommand, SubArgs};
use crate::config::{
    DataBits, FlowControl, Framing as FramingKind, Parity, SerialConfig, StopBits, XbeeApiMode,
};
use crate::mqttsn::codec::{Frame, Message, SnQos, TopicFilterRef, TopicRef, decode};
use crate::qos::QoS;
use crate::transport::serial::framing::{self, DEFAULT_MAX_MESSAGE, XbeeFraming};
use crate::transport::serial::port::{Backoff, spawn_link_with};

/// How long to wait for each answer before resending, and how often.
const RETRY_INTERVAL: Duration = Duration::from_secs(3);
const RETRIES: u32 = 3;

/// Runs an `sn` subcommand; returns the process exit code (0 success, 1 failure).
pub fn run(command: &SnCommand) -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sngate sn: cannot start the async runtime: {e}");
            return 1;
        }
    };
    let result = runtime.block_on(async {
        match command {
            SnCommand::Pub(args) => publish(args).await,
            SnCommand::Sub(args) => subscribe(args, &mut std::io::stdout()).await,
            SnCommand::Search(args) => search(args, &mut std::io::stdout()).await,
        }
    });
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("sngate sn: {e}");
            1
        }
    }
}

/// Opens the UDP socket or serial link that `args` names.
pub async fn open_link(args: &LinkArgs, any_source: bool) -> Result<Link, ClientError> {
    let Some(device) = &args.serial else {
        let gateway = resolve(&args.host, args.port).await?;
        if let (Some(identity), Some(key)) = (&args.psk_identity, &args.psk) {
            return Link::dtls(gateway, identity, key)
                .await
                .map_err(ClientError::Io);
        }
        if let (Some(ca), Some(cert), Some(key)) = (&args.cafile, &args.cert, &args.key) {
            return Link::dtls_certificate(gateway, &args.host, ca, cert, key)
                .await
                .map_err(ClientError::Io);
        }
        return Ok(Link::udp(gateway, any_source).await?);
    };
    let config = SerialConfig {
        device: device.clone(),
        baud: args.baud,
        data_bits: DataBits::Eight,
        parity: Parity::None,
        stop_bits: StopBits::One,
        flow_control: FlowControl::None,
        framing: match args.framing {
            FramingArg::Raw => FramingKind::Raw,
            FramingArg::Slip => FramingKind::Slip,
            FramingArg::Xbee => FramingKind::Xbee,
        },
        crc: args.crc,
        api_mode: XbeeApiMode::Escaped,
        max_garbage_rate: 0,
    };
    let framing: Box<dyn framing::Framing> = match args.framing {
        FramingArg::Xbee => Box::new(
            XbeeFraming::new(XbeeApiMode::Escaped, DEFAULT_MAX_MESSAGE)
                .with_default_destination(args.xbee_dest.unwrap_or(0)),
        ),
        _ => framing::for_config(&config, DEFAULT_MAX_MESSAGE),
    };
    let shutdown = CancellationToken::new();
    let (link, mut events) = spawn_link_with(config, framing, Backoff::default(), shutdown.clone());
    // A test tool should fail fast: the first event says whether the device opened.
    match tokio::time::timeout(Duration::from_secs(5), events.recv()).await {
        Ok(Some(crate::transport::serial::port::LinkEvent::Up)) => {}
        Ok(Some(crate::transport::serial::port::LinkEvent::Down { reason })) => {
            shutdown.cancel();
            return Err(ClientError::Io(std::io::Error::other(format!(
                "{}: {reason}",
                device.display()
            ))));
        }
        _ => {
            shutdown.cancel();
            return Err(ClientError::Timeout("serial link"));
        }
    }
    Ok(Link::Serial {
        link,
        events,
        shutdown,
        device: device.display().to_string(),
    })
}

async fn resolve(host: &str, port: u16) -> Result<SocketAddr, ClientError> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let mut addrs = tokio::net::lookup_host((host, port)).await?;
    addrs
        .next()
        .ok_or_else(|| ClientError::Io(std::io::Error::other(format!("{host}: no address"))))
}

fn options(link: &LinkArgs, client_id: &str, keepalive: u16, clean: bool) -> ClientOptions {
    ClientOptions {
        client_id: client_id.to_owned(),
        keepalive,
        clean_session: clean,
        will: None,
        retry_interval: RETRY_INTERVAL,
        retries: RETRIES,
        debug: link.debug,
    }
}

fn qos_of(level: u8) -> QoS {
    QoS::from_u8(level).unwrap_or(QoS::AtMostOnce)
}

fn short_name(name: &str) -> Result<[u8; 2], ClientError> {
    <[u8; 2]>::try_from(name.as_bytes()).map_err(|_| {
        ClientError::Io(std::io::Error::other(format!(
            "short topic {name:?} must be exactly two characters"
        )))
    })
}

/// `sngate sn pub`.
pub async fn publish(args: &PubArgs) -> Result<(), ClientError> {
    let payload = if args.stdin {
        let mut data = Vec::new();
        std::io::stdin().read_to_end(&mut data)?;
        Bytes::from(data)
    } else {
        Bytes::from(args.message.clone().unwrap_or_default())
    };
    let mut opts = options(&args.link, &args.client_id, args.keepalive, true);
    if let (Some(topic), Some(message)) = (&args.will_topic, &args.will_message) {
        opts.will = Some(Will {
            topic: topic.clone(),
            message: Bytes::from(message.clone()),
            qos: qos_of(args.will_qos),
            retain: args.will_retain,
        });
    }
    let qos = match args.qos {
        -1 => SnQos::MinusOne,
        level => SnQos::Level(qos_of(u8::try_from(level).unwrap_or(0))),
    };
    let mut client = Client::new(open_link(&args.link, false).await?, opts);
    let fixed_topic = match (&args.topic_id, &args.short_topic) {
        (Some(id), _) => Some(TopicRef::Predefined(*id)),
        (None, Some(name)) => Some(TopicRef::Short(short_name(name)?)),
        (None, None) => None,
    };
    if qos == SnQos::MinusOne {
        // QoS −1 needs no connection but only works with ids both sides know (§6.8).
        let Some(topic) = fixed_topic else {
            return Err(ClientError::Io(std::io::Error::other(
                "QoS -1 needs --topic-id or -T (no REGISTER without a connection)",
            )));
        };
        return client.publish(topic, qos, args.retain, payload).await;
    }
    client.connect().await?;
    let topic = match (fixed_topic, &args.topic) {
        (Some(topic), _) => topic,
        (None, Some(name)) => TopicRef::Normal(client.register(name).await?),
        (None, None) => unreachable_topic()?,
    };
    client.publish(topic, qos, args.retain, payload).await?;
    client.disconnect(None).await
}

fn unreachable_topic() -> Result<TopicRef, ClientError> {
    Err(ClientError::Io(std::io::Error::other("no topic given")))
}

fn print_delivery(out: &mut dyn Write, verbose: bool, d: &Delivery) -> Result<(), ClientError> {
    if verbose {
        write!(out, "{} ", d.topic)?;
    }
    out.write_all(&d.payload)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

/// `sngate sn sub`: prints deliveries to `out`.
pub async fn subscribe(args: &SubArgs, out: &mut dyn Write) -> Result<(), ClientError> {
    let opts = options(
        &args.link,
        &args.client_id,
        args.keepalive,
        !args.keep_session,
    );
    let mut client = Client::new(open_link(&args.link, false).await?, opts);
    client.connect().await?;
    for filter in &args.topic {
        let topic = TopicFilterRef::Name(Bytes::from(filter.clone()));
        client.subscribe(topic, qos_of(args.qos)).await?;
    }
    let deadline = args
        .timeout
        .map(|s| Instant::now() + Duration::from_secs(s))
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600));
    let wanted = args.count.unwrap_or(u64::MAX);
    let mut received = 0u64;
    if let Some(sleep) = args.sleep {
        client.disconnect(Some(sleep)).await?;
        // Wake before the gateway's sleep timer would declare us lost (§6.14).
        let nap = Duration::from_millis(u64::from(sleep.max(1)) * 750);
        while received < wanted {
            let wake_at = Instant::now() + nap;
            if wake_at >= deadline {
                tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)).await;
                break;
            }
            tokio::time::sleep_until(tokio::time::Instant::from_std(wake_at)).await;
            for d in client.wake().await? {
                print_delivery(out, args.verbose, &d)?;
                received += 1;
            }
        }
    } else {
        while received < wanted {
            match client.next_delivery(deadline).await? {
                Some(d) => {
                    print_delivery(out, args.verbose, &d)?;
                    received += 1;
                }
                None => break,
            }
        }
    }
    let _ = client.disconnect(None).await;
    let enough = match args.count {
        Some(count) => received >= count,
        None => received > 0 || args.timeout.is_none(),
    };
    if enough {
        Ok(())
    } else {
        Err(ClientError::Timeout("PUBLISH within -W"))
    }
}

/// `sngate sn search`: prints `gateway <id> at <addr>` for each GWINFO or ADVERTISE.
pub async fn search(args: &SearchArgs, out: &mut dyn Write) -> Result<(), ClientError> {
    let mut link = open_link(&args.link, true).await?;
    let mut encoded = bytes::BytesMut::new();
    crate::mqttsn::codec::encode(
        &Message::SearchGw {
            radius: args.radius,
        },
        &mut encoded,
    )
    .map_err(|e| ClientError::Encode(e.to_string()))?;
    link.send(encoded.freeze(), true).await?;
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let mut seen = HashSet::new();
    while seen.len() < args.count.max(1) {
        let Some(received) = link.recv(deadline).await? else {
            break;
        };
        let (gw_id, address) = match decode(&received.datagram) {
            Ok(Frame::Message(Message::GwInfo { gw_id, gw_add })) if !gw_add.is_empty() => {
                (gw_id, format!("{} (via {})", hex(&gw_add), received.from))
            }
            Ok(Frame::Message(Message::GwInfo { gw_id, .. }))
            | Ok(Frame::Message(Message::Advertise { gw_id, .. })) => (gw_id, received.from),
            _ => continue,
        };
        if seen.insert((gw_id, address.clone())) {
            writeln!(out, "gateway {gw_id} at {address}")?;
        }
    }
    if seen.is_empty() {
        return Err(ClientError::Timeout("GWINFO or ADVERTISE"));
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
