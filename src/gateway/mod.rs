//! The MQTT-SN gateway: per-sensor sessions, topic-id tables, discovery.
