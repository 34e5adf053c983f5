//! MQTT 3.1.1 / 5.0 wire codec (sans-IO).
