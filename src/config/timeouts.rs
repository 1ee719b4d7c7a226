//! `timeouts:`: every one positive.

use std::time::Duration;

use super::raw::RawTimeouts;
use super::{ConfigError, Timeouts};

pub(super) fn validate(t: RawTimeouts) -> Result<Timeouts, ConfigError> {
    let timeouts = Timeouts {
        connect: t.connect.map_or(Duration::from_secs(10), |d| d.0),
        first_byte: t.first_byte.map_or(Duration::from_secs(600), |d| d.0),
        idle: t.idle.map_or(Duration::from_secs(300), |d| d.0),
        total: t.total.map_or(Duration::from_secs(1800), |d| d.0),
        request_header: t.request_header.map_or(Duration::from_secs(30), |d| d.0),
        request_body: t.request_body.map_or(Duration::from_secs(120), |d| d.0),
        client_idle: t.client_idle.map_or(Duration::from_secs(60), |d| d.0),
    };
    for (key, d) in [
        ("timeouts.connect", timeouts.connect),
        ("timeouts.first_byte", timeouts.first_byte),
        ("timeouts.idle", timeouts.idle),
        ("timeouts.total", timeouts.total),
        ("timeouts.request_header", timeouts.request_header),
        ("timeouts.request_body", timeouts.request_body),
        ("timeouts.client_idle", timeouts.client_idle),
    ] {
        if d.is_zero() {
            return Err(ConfigError::new(key, "must be positive"));
        }
    }
    Ok(timeouts)
}
